// clipes — CLIP-ES pseudo masks from image-level labels.
// Entry point: builds the CLI from the registered commands and maps errors to
// exit codes (0 ok, 1 partial failure reported by a command, 2 fatal error).
#include <spdlog/sinks/stdout_color_sinks.h>  // declares stderr_color_mt too
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>
#include <thread>

#include "clipes/util/error.h"
#include "command.h"

namespace clipes::cli {

namespace {
std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}
}  // namespace

bool register_command(Command command) {
  registry().push_back(std::move(command));
  return true;
}
const std::vector<Command>& registered_commands() { return registry(); }

void add_runtime_options(CLI::App& sub, RuntimeOptions& options) {
  sub.add_option("--device", options.device, "cpu, cuda or cuda:N")->capture_default_str();
  sub.add_option("--precision", options.precision, "fp32, bf16 or fp16 (fp16 on CUDA only)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  sub.add_option("--threads", options.threads, "intra-op threads (0 = one per core)")
      ->capture_default_str();
}

ModelOptions to_model_options(const RuntimeOptions& options) {
  ModelOptions model;
  model.precision = parse_precision(options.precision);
  model.device = options.device;
  return model;
}

void apply_runtime_options(const RuntimeOptions& options) {
  int threads = options.threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
}

}  // namespace clipes::cli

int main(int argc, char** argv) {
  using namespace clipes::cli;
  CLI::App app{"clipes — pixel-level pseudo masks from image-level labels with CLIP (CLIP-ES)"};
  app.set_version_flag("--version", std::string("clipes ") + CLIPES_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // -q/-v also work after the command name
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "more log output");
  app.add_flag("-q,--quiet", quiet, "only errors");

  std::function<int()> run;
  auto commands = registered_commands();
  std::sort(commands.begin(), commands.end(),
            [](const Command& a, const Command& b) { return a.name < b.name; });
  for (const auto& command : commands) {
    CLI::App* sub = app.add_subcommand(command.name, command.description);
    auto action = command.setup(*sub);
    sub->callback([&run, action] { run = action; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // Logs go to stderr: stdout carries results (tables, JSON, paths) for pipes.
  spdlog::set_default_logger(spdlog::stderr_color_mt("clipes"));
  spdlog::set_pattern("%^[%L]%$ %v");
  spdlog::set_level(quiet ? spdlog::level::err : verbose ? spdlog::level::debug : spdlog::level::info);
  try {
    return run ? run() : 0;
  } catch (const clipes::Error& e) {
    std::cerr << "clipes: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch errors carry a multi-line backtrace; keep the first line.
    std::string msg = e.what_without_backtrace();
    std::cerr << "clipes: error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "clipes: error: " << e.what() << "\n";
    return 2;
  }
}

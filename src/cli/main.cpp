// clipes — CLIP-ES pseudo masks from image-level labels.
// Entry point: builds the CLI from the registered commands and maps errors to
// exit codes (0 ok, 1 partial failure reported by a command, 2 fatal error).
#include <malloc.h>
#include <spdlog/sinks/stdout_color_sinks.h>  // declares stderr_color_mt too
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <thread>

#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/blas_kernel.h"
#include "clipes/util/error.h"
#include "clipes/util/option_error.h"
#include "clipes/util/strings.h"
#include "clipes/util/user_file.h"
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
  sub.add_option("--device", options.device, "cpu, cuda or cuda:N")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            const bool cuda_n = value.rfind("cuda:", 0) == 0 && value.size() > 5 &&
                                value.find_first_not_of("0123456789", 5) == std::string::npos;
            return value == "cpu" || value == "cuda" || cuda_n ? "" : "expected cpu, cuda or cuda:N, got '" + value + "'";
          },
          "DEVICE"))
      ->capture_default_str();
  sub.add_option("--activation", options.activation,
                 "MLP activation when the checkpoint does not say: gelu (OpenCLIP LAION/DataComp) or quick-gelu (OpenAI)")
      ->check(CLI::IsMember({"gelu", "quick-gelu", "quick_gelu"}));
  sub.add_option("--precision", options.precision, "fp32, bf16 or fp16 (fp16 on CUDA only)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  sub.add_option("--engine", options.engine,
                 "vision blocks on the CPU: fused (the engine) or reference (LibTorch, the slower fallback)")
      ->check(CLI::IsMember({"fused", "reference"}))
      ->capture_default_str();
  sub.add_option("--threads", options.threads, "intra-op threads (0 = one per core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
}

void add_max_pixels_option(CLI::App& sub, int64_t& max_pixels) {
  sub.add_option("--max-pixels", max_pixels,
                 "refuse images with more pixels than this (read from the file header, before decoding)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
      ->capture_default_str();
}

ModelOptions to_model_options(const RuntimeOptions& options) {
  ModelOptions model;
  model.precision = parse_precision(options.precision);
  model.device = options.device;
  if (!options.activation.empty()) model.activation = parse_activation(options.activation);
  model.engine = parse_engine(options.engine);
  return model;
}

int thread_count(int requested) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (requested <= 0) return cores;
  if (requested > cores) {
    spdlog::warn("--threads {} is more than the {} core(s) here; using {}", requested, cores, cores);
    return cores;
  }
  return requested;
}

CLI::Validator count_at_least(int64_t minimum) {
  return CLI::Validator(
      [minimum](std::string& text) -> std::string {
        int64_t value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return "'" + text + "' is not a whole number";
        if (value < minimum) return "must be at least " + std::to_string(minimum) + ", got " + text;
        return "";
      },
      "N >= " + std::to_string(minimum));
}

std::string vocab_or_beside_model(const std::string& vocab, const std::string& model) {
  if (!vocab.empty()) return vocab;
  const std::string beside = (std::filesystem::path(model).parent_path() / kOfficialVocabName).string();
  std::error_code ec;
  if (!model.empty() && std::filesystem::is_regular_file(beside, ec)) {
    spdlog::info("vocabulary: {} (beside the model)", printable(beside));
    return beside;
  }
  throw Error(std::string("--vocab: give the BPE vocabulary, ") + kOfficialVocabName +
              " (in openai/CLIP's clip/ folder, or pip's clip package); none beside the model");
}

CLI::Option* add_vocab_option(CLI::App& sub, std::string& vocab) {
  return sub.add_option("--vocab", vocab,
                        std::string("BPE vocabulary (default: ") + kOfficialVocabName + " beside the model, if there)");
}

CLI::Validator positive_real() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return "'" + text + "' is not a number";
        if (!(value > 0) || !std::isfinite(value)) return "must be a number > 0, got " + text;
        return "";
      },
      "X > 0");
}

void apply_runtime_options(const RuntimeOptions& options) {
  // Before anything is loaded or written: LibTorch's own message came after
  // "loading..." and after settings.json (issue 27 item 7).
  if (options.device != "cpu" && !torch::cuda::is_available())
    throw clipes::option_error(
        "--device " + options.device + ": " +
        (at::hasCUDA() ? std::string("no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
                       : std::string("this clipes is built against a CPU-only LibTorch; build it against a CUDA "
                                     "LibTorch (README: \"Using a GPU\")")));
  torch::set_num_threads(thread_count(options.threads));
}

void add_json_option(CLI::App& sub, JsonOutput& out, const std::string& what) {
  out.option = sub.add_option("--json", out.path, what + " as JSON to PATH, or to stdout with - (the default)")
                   ->expected(0, 1);
}

void write_json_output(const JsonOutput& out, const nlohmann::json& j) {
  if (!out.wanted()) return;
  if (out.to_stdout()) {
    std::cout << j.dump(2) << "\n" << std::flush;
  } else {
    clipes::write_user_file(out.path, j.dump(2) + "\n");  // a FIFO or /dev/stdout stays one
  }
}

namespace {
bool& quiet_storage() {
  static bool quiet = false;
  return quiet;
}
}  // namespace
bool quiet_output() { return quiet_storage(); }
void set_quiet_output(bool quiet) { quiet_storage() = quiet; }

namespace {
std::vector<std::string>& args_storage() {
  static std::vector<std::string> args;
  return args;
}
}  // namespace

const std::vector<std::string>& invocation_args() { return args_storage(); }

std::string now_utc_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void check_vocab_fits_model(const BpeTokenizer& tokenizer, const ClipModel& model, const std::string& vocab_path,
                            const std::string& model_path) {
  const int64_t model_vocab = model.config().text.vocab_size;
  if (tokenizer.vocab_size() != model_vocab)
    throw clipes::Error(clipes::printable(vocab_path) + ": vocabulary of " + std::to_string(tokenizer.vocab_size()) +
                        " tokens does not fit " + clipes::printable(model_path) + ", whose token embedding has " +
                        std::to_string(model_vocab) + " rows (pass the vocabulary the model was trained with)");
}

void report_failures(const BatchSummary& summary, bool single_image) {
  using clipes::printable;
  if (!summary.failure_log_written) {
    spdlog::error("{}: cannot write the failure log; its {} record(s) follow", printable(summary.failure_log),
                  summary.failures.size());
    for (const auto& f : summary.failures)
      spdlog::error("failed: {} ({}): {}: {}", printable(f.id), printable(f.image_path), f.stage, printable(f.reason));
    return;
  }
  if (summary.failures.empty()) return;
  if (single_image) {
    for (const auto& f : summary.failures) spdlog::error("{}", printable(f.reason));
    return;
  }
  constexpr size_t kShown = 5;
  for (size_t i = 0; i < summary.failures.size() && i < kShown; ++i)
    spdlog::warn("failed ({}): {}", summary.failures[i].stage, printable(summary.failures[i].reason));
  spdlog::warn("{} image(s) failed{}; every reason is in {}", summary.failures.size(),
               summary.failures.size() > kShown ? " (first " + std::to_string(kShown) + " shown)" : "",
               printable(summary.failure_log));
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The closest of `candidates` to `word` within 2 edits (or a third of its
// length), "" if none is that close.
std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  return best;
}

}  // namespace

// A typo in a command or option name gets "did you mean ...": CLI11 itself
// would only say that --model is required, or that "--modle" was not expected.
std::string suggest_for_typo(const CLI::App& app, const std::vector<std::string>& args) {
  std::vector<std::string> command_names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    command_names.push_back(sub->get_name());
  const CLI::App* command = nullptr;
  size_t first = 1;
  for (; first < args.size(); ++first) {
    if (args[first].rfind("-", 0) == 0) continue;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
      if (sub->get_name() == args[first]) command = sub;
    break;
  }
  if (!command) {
    if (first >= args.size()) return "";
    const std::string guess = closest(args[first], command_names);
    return "unknown command '" + clipes::printable(args[first]) + "'" +
           (guess.empty() ? "" : " (did you mean '" + guess + "'?)") + "; commands: " + [&] {
             std::string all;
             for (const auto& n : command_names) all += (all.empty() ? "" : ", ") + n;
             return all;
           }();
  }
  std::vector<std::string> known;
  for (const CLI::Option* opt : command->get_options())
    for (const auto& n : opt->get_lnames()) known.push_back("--" + n);
  for (const CLI::App* nested : command->get_subcommands([](const CLI::App*) { return true; }))  // prompts rank
    for (const CLI::Option* opt : nested->get_options())
      for (const auto& n : opt->get_lnames()) known.push_back("--" + n);
  for (const CLI::Option* opt : app.get_options())
    for (const auto& n : opt->get_lnames()) known.push_back("--" + n);
  for (size_t i = first + 1; i < args.size(); ++i) {
    if (args[i].rfind("--", 0) != 0 || args[i] == "--") continue;
    const std::string name = args[i].substr(0, args[i].find('='));
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    const std::string guess = closest(name, known);
    return "unknown option " + clipes::printable(name) + " for '" + command->get_name() + "'" +
           (guess.empty() ? "" : " (did you mean " + guess + "?)");
  }
  return "";
}

}  // namespace clipes::cli

// Every image allocates the same large buffers (the engine's per-image
// workspaces, the last block's saved tensors, up to 70 MB each). glibc hands
// blocks over 128 KB back to the kernel on free and maps fresh zeroed pages
// for the next image: measured on the 2-core Zen 5 VM, the page faults took
// half of the last block's 400 ms. Keeping freed memory in the heap (up to
// glibc's 32 MB mmap ceiling, 1 GB before trimming) reuses warm pages; the
// peak RSS is unchanged because the buffers are live at the same time anyway.
// A process-wide allocator policy, so it is set here by the binary, not by
// the library.
void keep_freed_memory_for_the_next_image() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

namespace {
// Results go to stdout (tables, JSON, paths): if they could not be written
// (a full disk behind `> file`, a closed pipe with SIGPIPE ignored), the run
// failed although the command itself succeeded — exit 1, as for any output
// that could not be written, never 0.
int stdout_written(int code) {
  std::cout.flush();
  errno = 0;
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) != 0 || std::cout.fail();
  if (!failed) return code;
  std::cerr << "clipes: error: standard output: " << (errno ? std::strerror(errno) : "write failed")
            << " (the results were not written)\n";
  return code == 0 ? 1 : code;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace clipes::cli;
  // Before anything else: on a CPU that OpenBLAS does not recognise, run again
  // with the right kernel (3x faster matrix products; util/blas_kernel.h).
  clipes::reexec_with_better_openblas_kernel();
  keep_freed_memory_for_the_next_image();
  for (int i = 0; i < argc; ++i) args_storage().push_back(argv[i]);
  // The library names settings by key (util/option_error.h); here they are flags.
  clipes::set_option_spelling(clipes::long_option_spelling);
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
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line like every other error (CLI11 adds a "Run with --help" line);
    // a misspelt option or command is named first, with the likely intent.
    const std::string typo = suggest_for_typo(app, args_storage());
    std::cerr << "clipes: error: " << (typo.empty() ? clipes::printable(e.what()) : typo) << "\n";
    return 2;
  }
  // A file-size limit (ulimit -f) must end a write with EFBIG, which is
  // reported and recorded like a full disk, not kill the process with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  // OpenCV logs its own warnings on stderr ("imdecode_(...): can't read
  // data"); clipes reports every problem itself, in one line naming the file.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  // Logs go to stderr: stdout carries results (tables, JSON, paths) for pipes.
  spdlog::set_default_logger(spdlog::stderr_color_mt("clipes"));
  spdlog::set_pattern("%^[%L]%$ %v");
  spdlog::set_level(quiet ? spdlog::level::err : verbose ? spdlog::level::debug : spdlog::level::info);
  set_quiet_output(quiet);
  try {
    return stdout_written(run ? run() : 0);
  } catch (const clipes::Error& e) {
    std::cerr << "clipes: error: " << clipes::printable(e.what()) << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch errors carry a multi-line backtrace; keep the first line.
    std::string msg = e.what_without_backtrace();
    std::cerr << "clipes: error: " << clipes::printable(msg.substr(0, msg.find('\n'))) << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "clipes: error: out of memory\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "clipes: error: " << clipes::printable(e.what()) << "\n";
    return 2;
  } catch (...) {
    std::cerr << "clipes: error: unknown exception\n";
    return 2;
  }
}

// clipes info — what a checkpoint is (format, architecture, size, dtype,
// SHA-256), and a forward-pass benchmark, with real weights or a ViT-B/16-sized
// random model (so the 512×384 time can be quoted without the 335 MB file).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "clipes/model/checkpoint.h"
#include "clipes/util/blas_kernel.h"
#include "clipes/model/clip_model.h"
#include "clipes/util/error.h"
#include "clipes/util/sha256.h"
#include "command.h"

namespace clipes::cli {
namespace {

// SHA-256 of OpenAI's ViT-B-16.pt (the hash is also its download URL's folder).
constexpr const char* kOfficialVitB16Sha256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f";

struct Options {
  std::string model;
  std::string random_init;
  std::string bench_forward;  // "HxW"
  int runs = 5;
  int warmup = 2;
  JsonOutput json;
  RuntimeOptions runtime;
};

nlohmann::json architecture_json(const ClipConfig& c) {
  return {{"vision",
           {{"width", c.vision.width},
            {"layers", c.vision.layers},
            {"heads", c.vision.heads},
            {"patch_size", c.vision.patch_size},
            {"grid", c.vision.grid},
            {"image_size", c.image_size()}}},
          {"text",
           {{"width", c.text.width},
            {"layers", c.text.layers},
            {"heads", c.text.heads},
            {"context_length", c.text.context_length},
            {"vocab_size", c.text.vocab_size}}},
          {"embed_dim", c.embed_dim},
          {"parameters", c.parameter_count()}};
}

void print_architecture(const ClipConfig& c) {
  std::cout << "vision:         width " << c.vision.width << ", " << c.vision.layers << " layers, " << c.vision.heads
            << " heads, patch " << c.vision.patch_size << ", grid " << c.vision.grid << "x" << c.vision.grid << " ("
            << c.image_size() << " px)\n"
            << "text:           width " << c.text.width << ", " << c.text.layers << " layers, " << c.text.heads
            << " heads, context " << c.text.context_length << ", vocab " << c.text.vocab_size << "\n"
            << "embed dim:      " << c.embed_dim << "\n"
            << "parameters:     " << c.parameter_count() << "\n";
}

std::pair<int, int> parse_size(const std::string& text) {
  const size_t x = text.find_first_of("xX");
  try {
    size_t used_h = 0, used_w = 0;
    if (x == std::string::npos) throw std::invalid_argument("no x");
    const int h = std::stoi(text.substr(0, x), &used_h);
    const int w = std::stoi(text.substr(x + 1), &used_w);
    if (used_h != x || used_w != text.size() - x - 1 || h <= 0 || w <= 0) throw std::invalid_argument("bad");
    return {h, w};
  } catch (const std::exception&) {
    throw Error("--bench-forward \"" + text + "\": expected HxW, e.g. 512x384");
  }
}

double percentile_sorted(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

void synchronize(const ClipModel& model) {
  // Device work is asynchronous; reading one value back waits for it.
  if (!model.device().is_cpu()) torch::zeros({1}, torch::TensorOptions().device(model.device())).cpu();
}

int run_info(const Options& o) {
  // The table is for people: not with --json - (stdout is the JSON) nor with -q.
  const bool show_table = !o.json.to_stdout() && !quiet_output();
  if (o.model.empty() == o.random_init.empty()) throw Error("clipes info: give exactly one of --model or --random-init");
  if (!o.random_init.empty() && o.random_init != "vit-b-16")
    throw Error("--random-init \"" + o.random_init + "\": only vit-b-16 is known");
  apply_runtime_options(o.runtime);

  nlohmann::json report;
  ClipConfig config;
  TensorMap weights;
  if (!o.model.empty()) {
    Checkpoint ckpt = load_checkpoint(o.model, to_model_options(o.runtime).activation);
    config = ClipConfig::infer(ckpt.tensors, o.model);
    config.activation = ckpt.activation;
    const std::string sha = sha256_file(o.model);
    if (std::filesystem::path(o.model).filename() == "ViT-B-16.pt" && sha != kOfficialVitB16Sha256)
      spdlog::warn("{}: SHA-256 {} is not that of OpenAI's ViT-B-16.pt ({}); a different or modified file", o.model,
                   sha, kOfficialVitB16Sha256);
    report = architecture_json(config);
    report["file"] = o.model;
    report["format"] = to_string(ckpt.format);
    report["storage_dtype"] = ckpt.storage_dtype;
    report["activation"] = to_string(ckpt.activation);
    report["activation_source"] = ckpt.activation_source;
    report["sha256"] = sha;
    if (show_table) {
      std::cout << "file:           " << o.model << "\n"
                << "format:         " << to_string(ckpt.format) << "\n";
      print_architecture(config);
      std::cout << "storage dtype:  " << ckpt.storage_dtype << "\n"
                << "activation:     " << to_string(ckpt.activation) << " (" << ckpt.activation_source << ")\n"
                << "sha256:         " << sha << "\n";
    }
    if (!o.bench_forward.empty()) weights = std::move(ckpt.tensors);
  } else {
    config = ClipConfig::vit_b_16();
    report = architecture_json(config);
    report["random_init"] = o.random_init;
    if (show_table) {
      std::cout << "random init:    " << o.random_init << " (no weights file)\n";
      print_architecture(config);
    }
    if (!o.bench_forward.empty()) weights = random_clip_weights(config, 0);
  }

  // The math kernels this process runs: the OpenBLAS trap (util/blas_kernel.h)
  // shows up here first.
  const CpuFeatures cpu = detect_cpu_features();
  report["cpu"] = cpu.describe();
  report["blas_core"] = openblas_core_name();
  report["blas_config"] = openblas_config();
  report["onednn_isa"] = onednn_isa();
  report["math_kernels"] = describe_math_kernels();
  if (show_table)
    std::cout << "cpu:            " << cpu.describe() << "\n"
              << "math kernels:   " << describe_math_kernels() << "\n";

  if (!o.bench_forward.empty()) {
    const auto [h, w] = parse_size(o.bench_forward);
    const int p = config.vision.patch_size;
    if (h % p || w % p)
      throw Error("--bench-forward " + o.bench_forward + ": both sides must be multiples of the patch size " +
                  std::to_string(p));
    if (o.runs < 1 || o.warmup < 0) throw Error("--runs must be >= 1 and --warmup >= 0");
    const ClipModel model(weights, config, {parse_precision(o.runtime.precision), o.runtime.device, false});
    weights.clear();
    c10::InferenceMode inference;
    const at::Tensor input = torch::randn({1, 3, h, w}, torch::TensorOptions().dtype(at::kFloat));
    std::vector<double> ms;
    for (int i = 0; i < o.warmup + o.runs; ++i) {
      const auto start = std::chrono::steady_clock::now();
      const at::Tensor features = model.encode_image(input);
      (void)features;
      synchronize(model);
      const double elapsed =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (i >= o.warmup) ms.push_back(elapsed);
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
    const double median = percentile_sorted(sorted, 0.5);
    report["bench_forward"] = {{"height", h},       {"width", w},
                               {"tokens", 1 + (h / p) * (w / p)},
                               {"precision", o.runtime.precision},
                               {"device", o.runtime.device},
                               {"threads", torch::get_num_threads()},
                               {"warmup", o.warmup},
                               {"runs_ms", ms},
                               {"mean_ms", mean},
                               {"median_ms", median},
                               {"best_ms", sorted.front()}};
    if (show_table)
      std::printf("vision forward %dx%d (%s, %s, %d threads): mean %.1f ms, median %.1f ms, best %.1f ms over %d runs "
                  "after %d warm-up\n",
                  h, w, o.runtime.precision.c_str(), o.runtime.device.c_str(), torch::get_num_threads(), mean, median,
                  sorted.front(), o.runs, o.warmup);
  }
  write_json_output(o.json, report);
  return 0;
}

const bool registered = register_command({
    "info", "describe a checkpoint (format, architecture, dtype, SHA-256) or time the vision forward",
    [](CLI::App& sub) {
      auto o = std::make_shared<Options>();
      sub.add_option("--model", o->model, "checkpoint (OpenAI .pt, torch.save state dict, safetensors)");
      sub.add_option("--random-init", o->random_init, "no file: a randomly initialised model of this size (vit-b-16)");
      sub.add_option("--bench-forward", o->bench_forward, "time the vision forward on an HxW input, e.g. 512x384");
      sub.add_option("--runs", o->runs, "timed runs for --bench-forward")->check(count_at_least(1))->capture_default_str();
      sub.add_option("--warmup", o->warmup, "untimed warm-up runs for --bench-forward")->check(count_at_least(0))->capture_default_str();
      add_json_option(sub, o->json, "the description");
      add_runtime_options(sub, o->runtime);
      return [o]() { return run_info(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

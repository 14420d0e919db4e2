// clipes bench — per-stage timings of the pipeline on synthetic photos, with
// a random-init ViT-B/16 (no weights needed) or a real checkpoint; with
// --method lseg, LSeg's network (random-init at the released sizes, or a
// checkpoint) one forward stage by stage and whole images through its evaluator.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "clipes/model/clip_config.h"
#include "clipes/model/clip_model.h"
#include "clipes/model/lseg_model.h"
#include "clipes/pipeline/lseg_benchmark.h"
#include "clipes/pipeline/benchmark.h"
#include "clipes/methods/clip_es.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/blas_kernel.h"
#include "command.h"
#include "lseg_options.h"

namespace clipes::cli {
namespace {

struct BenchCli {
  std::string method = "clip-es";
  std::string model, vocab;
  JsonOutput json;
  std::vector<std::string> cases;  // default per method: 640x480:2 (CLIP-ES), 480x480:5 + 500x375:5 (LSeg)
  LsegFlags lseg;
  std::vector<std::string> params;  // --set (LSeg: vit_heads=N)
  int runs = 5, warmup = 1, max_tokens = 2500;
  int ops_tokens = 0;  // --ops: per-op table of one block at this many tokens
  RuntimeOptions runtime;
};

// "640x480:2" → {h=480, w=640, K=2}; "640x480" means K = 2.
BenchCase parse_case(const std::string& text) {
  BenchCase c;
  int w = 0, h = 0, k = 2;
  const int n = std::sscanf(text.c_str(), "%dx%d:%d", &w, &h, &k);
  if (n < 2 || w <= 0 || h <= 0 || k <= 0) throw Error("--case: expected WxH[:K], got '" + text + "'");
  c.width = w, c.height = h, c.labels = k;
  return c;
}

// The lines both methods print above their tables, and the JSON fields they share.
void print_machine(const MatmulPeak& peaks, const std::string& engine) {
  std::cout << "cpu: " << detect_cpu_features().describe() << "\nmath kernels: " << describe_math_kernels() << "\n";
  std::cout << "engine: " << engine << "; matmul peak: LibTorch mm " << static_cast<int>(peaks.libtorch)
            << " GFLOP/s, oneDNN " << static_cast<int>(peaks.onednn) << " GFLOP/s (the best is the peak below)\n";
}
nlohmann::json machine_json(const BenchCli& o, const MatmulPeak& peaks, const std::string& engine) {
  return {{"method", o.method}, {"precision", o.runtime.precision}, {"device", o.runtime.device},
          {"threads", torch::get_num_threads()}, {"matmul_peak_gflop_per_s", peaks.best()},
          {"matmul_peak_libtorch_gflop_per_s", peaks.libtorch}, {"matmul_peak_onednn_gflop_per_s", peaks.onednn},
          {"engine", engine}, {"cpu", detect_cpu_features().describe()}, {"math_kernels", describe_math_kernels()},
          {"blas_core", openblas_core_name()}, {"onednn_isa", onednn_isa()}, {"results", nlohmann::json::array()}};
}

// LSeg (lseg-spec): the released sizes with random weights unless --model
// names a checkpoint; text features of K placeholder labels (only K matters).
int run_lseg_bench(const BenchCli& o) {
  if (o.runtime.device != "cpu" || (o.runtime.precision != "fp32" && o.runtime.precision != "bf16"))
    throw Error("--method lseg runs on the CPU in fp32 or bf16 (--device cpu, --precision fp32|bf16)");
  const LsegCli lseg = parse_lseg_cli(o.lseg, o.params);
  const ModelOptions model_options = to_model_options(o.runtime);
  std::unique_ptr<LsegModel> model;
  if (o.model.empty()) {
    spdlog::info("random-init LSeg at the released sizes (clip_vitl16_384; no --model given)");
    model = std::make_unique<LsegModel>(random_lseg_weights(LsegConfig::clip_vitl16_384(), 0), "random-init",
                                        lseg.settings, model_options);
  } else {
    model = std::make_unique<LsegModel>(LsegModel::load(o.model, lseg.settings, model_options));
  }
  const BpeTokenizer tokenizer = o.vocab.empty() ? BpeTokenizer({}) : BpeTokenizer::from_file(o.vocab);
  const std::vector<std::string> cases = o.cases.empty() ? std::vector<std::string>{"480x480:5", "500x375:5"} : o.cases;
  const MatmulPeak peaks = measure_matmul_peaks(precision_dtype(model_options.precision), "cpu");
  auto text_for = [&](int k) {
    std::vector<int64_t> ids;
    for (int i = 0; i < k; ++i) {
      const std::vector<int64_t> t = tokenizer.encode_for_model("object " + std::to_string(i), 77);
      ids.insert(ids.end(), t.begin(), t.end());
    }
    return model->encode_text(torch::tensor(ids, torch::kLong).view({k, 77}));
  };
  std::vector<BenchResult> results;
  const int crop = lseg.options.evaluator.crop_size;
  const BenchCase first = parse_case(cases.front());
  spdlog::info("one forward at {}x{}: {} runs after {} warm-up", crop, crop, o.runs, o.warmup);
  results.push_back(run_lseg_forward_benchmark(*model, text_for(first.labels), crop, o.runs, o.warmup, peaks.best()));
  for (const auto& text : cases) {
    const BenchCase c = parse_case(text);
    spdlog::info("{}: {} runs after {} warm-up", text, o.runs, o.warmup);
    results.push_back(
        run_lseg_image_benchmark(*model, text_for(c.labels), c, lseg.options, o.runs, o.warmup, peaks.best()));
  }
  const std::string engine = model->fused_trunk() ? "fused (ViT trunk)" : "reference";
  if (!o.json.to_stdout() && !quiet_output()) {
    print_machine(peaks, engine);
    std::cout << "model: " << (o.model.empty() ? "random-init " : o.model + ": ") << model->config().describe() << "\n";
    std::cout << format_bench_table(results, peaks.best(), o.runtime.precision);
  }
  if (o.json.wanted()) {
    nlohmann::json j = machine_json(o, peaks, engine);
    j["model"] = o.model.empty() ? "random-init lseg clip_vitl16_384" : o.model;
    for (const auto& r : results) j["results"].push_back(bench_result_json(r));
    write_json_output(o.json, j);
  }
  return 0;
}

int run_bench(const BenchCli& o) {
  apply_runtime_options(o.runtime);
  if (o.method == kLsegMethod) return run_lseg_bench(o);
  if (lseg_flags_given(o.lseg) || !o.params.empty())
    throw Error("--scales, --flip, --single-forward and --set are for --method lseg");
  const ModelOptions model_options = to_model_options(o.runtime);
  std::shared_ptr<ClipModel> model;
  if (o.model.empty()) {
    spdlog::info("random-init ViT-B/16 (no --model given)");
    const ClipConfig config = ClipConfig::vit_b_16();
    model = std::make_shared<ClipModel>(random_clip_weights(config, 0), config, model_options);
  } else {
    model = ClipModel::load(o.model, model_options);
  }
  // Without a vocabulary the byte-level tokenizer (no merges) is enough: text
  // features are computed once and are not what is benchmarked.
  const BpeTokenizer tokenizer = o.vocab.empty() ? BpeTokenizer({}) : BpeTokenizer::from_file(o.vocab);
  ClipEsConfig config;
  for (int i = 0; i < 8; ++i) config.class_prompts.push_back("object " + std::to_string(i));
  config.background_words = {"ground", "grass", "tree", "building", "wall", "sky", "water", "road"};
  config.max_tokens = o.max_tokens;
  const ClipEs clip_es(*model, tokenizer, config);

  const MatmulPeak peaks = measure_matmul_peaks(precision_dtype(model_options.precision), o.runtime.device);
  const double peak = peaks.best();
  const std::string scratch = (std::filesystem::temp_directory_path() / ("clipes-bench-" + std::to_string(getpid()))).string();
  std::vector<BenchResult> results;
  for (const auto& text : o.cases.empty() ? std::vector<std::string>{"640x480:2"} : o.cases) {
    const BenchCase c = parse_case(text);
    spdlog::info("{}: {} runs after {} warm-up", text, o.runs, o.warmup);
    results.push_back(run_benchmark(clip_es, c, o.runs, o.warmup, peak, scratch));
  }
  std::filesystem::remove_all(scratch);
  BlockOpTable op_table;
  if (o.ops_tokens > 0) op_table = time_block_ops(*model, o.ops_tokens, o.runs);
  const std::string engine = model->engine() ? "fused" : "reference";
  if (!o.json.to_stdout() && !quiet_output()) {
    print_machine(peaks, engine);
    std::cout << format_bench_table(results, peak, o.runtime.precision);
    if (o.ops_tokens > 0) std::cout << format_block_op_table(op_table, o.ops_tokens);
  }
  if (o.json.wanted()) {
    nlohmann::json j = machine_json(o, peaks, engine);
    j["model"] = o.model.empty() ? "random-init vit-b-16" : o.model;
    for (const auto& r : results) j["results"].push_back(bench_result_json(r));
    if (o.ops_tokens > 0) {
      j["block_ops"] = {{"tokens", o.ops_tokens}, {"reference", nlohmann::json::array()},
                        {"fused", nlohmann::json::array()}};
      for (const auto& [name, ms] : op_table.reference) j["block_ops"]["reference"].push_back({{"op", name}, {"ms", ms}});
      for (const auto& [name, ms] : op_table.fused) j["block_ops"]["fused"].push_back({{"op", name}, {"ms", ms}});
    }
    write_json_output(o.json, j);
  }
  return 0;
}

const bool registered = register_command({
    "bench", "per-stage timings, GFLOP/s vs the matmul peak, peak memory", [](CLI::App& sub) {
      auto o = std::make_shared<BenchCli>();
      sub.add_option("--method", o->method, "what to time: clip-es (generate's pipeline) or lseg (segment --method lseg)")
          ->check(CLI::IsMember({"clip-es", kLsegMethod}))
          ->capture_default_str();
      sub.add_option("--model", o->model,
                     "checkpoint (default: random-init ViT-B/16; with --method lseg, random-init LSeg at the "
                     "released clip_vitl16_384 sizes)");
      sub.add_option("--vocab", o->vocab, "BPE vocabulary (default: byte-level, enough for timing)");
      sub.add_option("--case", o->cases,
                     "WxH[:K] photo size and label count (repeatable; default 640x480:2, with --method lseg "
                     "480x480:5 and 500x375:5, a VOC-sized photo)");
      add_lseg_flags(sub, o->lseg);
      sub.add_option("--set", o->params, "LSeg: vit_heads=N for a checkpoint whose head dim is not 64");
      sub.add_option("--runs", o->runs, "timed runs per case")->check(count_at_least(1))->capture_default_str();
      sub.add_option("--warmup", o->warmup, "untimed runs first")->check(count_at_least(0))->capture_default_str();
      sub.add_option("--ops", o->ops_tokens,
                     "also time one vision block op by op at this many tokens (1201 = 640x480), both engines")
          ->check(CLI::Range(2, 10000));
      sub.add_option("--max-tokens", o->max_tokens, "cap on the patch grid h·w (0 = none)")->capture_default_str();
      add_json_option(sub, o->json, "the results");
      add_runtime_options(sub, o->runtime);
      return [o]() { return run_bench(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

#include "clipes/pipeline/benchmark.h"

#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <functional>
#include <random>

#include "clipes/cam/mask_from_cams.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/mask_writer.h"
#include "clipes/engine/vit_engine.h"
#include "clipes/model/clip_model.h"
#include "clipes/methods/clip_es.h"
#include "bench_support.h"

namespace clipes {
using namespace bench;

double block_forward_flop(double L, double D) {
  // q,k,v + out projection (8LD²) and the 4× MLP (16LD²): 24LD²; QKᵀ and P·V: 4L²D.
  return 24.0 * L * D * D + 4.0 * L * L * D;
}

double block_input_backward_flop(double L, double D) {
  // Each linear layer: one product for the input gradient (24LD²); attention:
  // dQ, dK, dP, dV are four L×L×D products (8L²D). No weight gradients.
  return 24.0 * L * D * D + 8.0 * L * L * D;
}

double measure_matmul_peak_gflops(at::ScalarType dtype, const std::string& device, int n) {
  torch::NoGradGuard no_grad;
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  const at::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  at::Tensor c = torch::mm(a, b);  // warm-up (thread pool, packing buffers)
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t = Clock::now();
    c = torch::mm(a, b);
    (void)c.sum().item<float>();  // forces completion on asynchronous devices
    best = std::min(best, ms_since(t));
  }
  return 2.0 * n * n * static_cast<double>(n) / (best * 1e6);
}

BlockOpTable time_block_ops(const ClipModel& model, int64_t l, int runs) {
  torch::NoGradGuard no_grad;
  BlockOpTable table;
  if (model.engine()) table.fused = model.engine()->time_block_ops(l, runs);
  const TensorMap w = model.state();
  auto p = [&](const std::string& name) { return w.at("visual.transformer.resblocks.0." + name); };
  const int64_t d = model.config().vision.width, heads = model.config().vision.heads, hd = d / heads;
  const at::ScalarType dtype = model.dtype();
  at::Tensor x = torch::randn({1, l, d}).to(dtype), h, qkv, scores, probs, heads_out, hidden;
  auto ln = [&](const at::Tensor& t, const std::string& prefix) {
    return at::layer_norm(t.to(torch::kFloat), {d}, p(prefix + ".weight").to(torch::kFloat),
                          p(prefix + ".bias").to(torch::kFloat), 1e-5)
        .to(dtype);
  };
  const bool low = dtype != torch::kFloat;
  std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"ln_1", [&] { h = ln(x, "ln_1"); }},
      {"in_proj (q,k,v) + bias", [&] { qkv = at::linear(h, p("attn.in_proj_weight"), p("attn.in_proj_bias")); }},
      {"attention: QK^T",
       [&] {
         const at::Tensor v = qkv.view({1, l, 3, heads, hd}).permute({2, 0, 3, 1, 4});
         scores = at::matmul(v[0] * (1.0 / std::sqrt(static_cast<double>(hd))), v[1].transpose(-2, -1));
       }},
      {"attention: softmax", [&] { probs = low ? at::softmax(scores, -1, torch::kFloat) : at::softmax(scores, -1); }},
      {"attention: PV",
       [&] {
         const at::Tensor v = qkv.view({1, l, 3, heads, hd}).permute({2, 0, 3, 1, 4});
         heads_out = at::matmul(low ? probs.to(dtype) : probs, v[2]);
       }},
      {"out_proj + bias + residual",
       [&] {
         x = x + at::linear(heads_out.transpose(1, 2).reshape({1, l, d}), p("attn.out_proj.weight"),
                            p("attn.out_proj.bias"));
       }},
      {"ln_2", [&] { h = ln(x, "ln_2"); }},
      {"c_fc + bias", [&] { hidden = at::linear(h, p("mlp.c_fc.weight"), p("mlp.c_fc.bias")); }},
      {"activation (QuickGELU)", [&] { hidden = hidden * at::sigmoid(hidden * 1.702); }},
      {"c_proj + bias + residual", [&] { x = x + at::linear(hidden, p("mlp.c_proj.weight"), p("mlp.c_proj.bias")); }},
  };
  std::vector<std::vector<double>> times(ops.size());
  for (int r = 0; r < runs + 1; ++r) {
    x = torch::randn({1, l, d}).to(dtype);
    for (size_t i = 0; i < ops.size(); ++i) {
      const auto t = Clock::now();
      ops[i].second();
      if (r > 0) times[i].push_back(ms_since(t));
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) table.reference.emplace_back(ops[i].first, median(times[i]));
  return table;
}

std::string format_block_op_table(const BlockOpTable& table, int64_t tokens) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "\none block, %lld tokens, median ms\n", static_cast<long long>(tokens));
  out += line;
  auto section = [&](const char* title, const std::vector<std::pair<std::string, double>>& ops) {
    double total = 0;
    std::snprintf(line, sizeof line, "  %-38s %10s\n", title, "ms");
    out += line;
    for (const auto& [name, ms] : ops) {
      std::snprintf(line, sizeof line, "  %-38s %10.1f\n", name.c_str(), ms);
      out += line;
      total += ms;
    }
    std::snprintf(line, sizeof line, "  %-38s %10.1f\n", "total", total);
    out += line;
  };
  section("reference (LibTorch ops)", table.reference);
  if (!table.fused.empty()) section("fused engine", table.fused);
  return out;
}

MatmulPeak measure_matmul_peaks(at::ScalarType dtype, const std::string& device, int n) {
  MatmulPeak peak;
  peak.libtorch = measure_matmul_peak_gflops(dtype, device, n);
  if (at::Device(device).is_cpu() && (dtype == at::kFloat || dtype == at::kBFloat16))
    peak.onednn = measure_engine_matmul_gflops(dtype == at::kBFloat16, n);
  return peak;
}

BenchResult run_benchmark(const ClipEs& clip_es, const BenchCase& bench_case, int runs, int warmup,
                          double peak_gflops, const std::string& scratch_dir) {
  const std::vector<uchar> jpeg = synthetic_jpeg(bench_case.height, bench_case.width);
  std::vector<int> labels;
  for (int k = 0; k < bench_case.labels; ++k) labels.push_back(k % clip_es.num_classes());

  std::vector<double> decode, preprocess, trunk, last, caa, write, total;
  BenchResult result;
  result.bench_case = bench_case;
  for (int i = 0; i < warmup + runs; ++i) {
    const auto t_total = Clock::now();
    auto t = Clock::now();
    const cv::Mat rgb = decode_image_rgb_bytes(jpeg, "bench.jpg");
    const double decode_ms = ms_since(t);
    const ClipEsResult r = clip_es.run(rgb, labels);
    t = Clock::now();
    std::vector<int> values;
    std::vector<int64_t> keys;
    for (int c : r.class_indices) values.push_back(c + 1), keys.push_back(c);
    const PseudoMask mask = make_pseudo_mask(r.refined, values);
    write_mask_outputs(MaskOutputPaths::for_stem(scratch_dir, "bench"), mask, &r.cams, &r.refined, keys, {});
    const double write_ms = ms_since(t) + r.timings.resize_ms;  // resizing to image size belongs to output
    const double total_ms = ms_since(t_total);
    result.input_h = r.input_h;
    result.input_w = r.input_w;
    if (i < warmup) continue;
    decode.push_back(decode_ms);
    preprocess.push_back(r.timings.preprocess_ms);
    trunk.push_back(r.timings.trunk_ms);
    last.push_back(r.timings.last_block_ms);
    caa.push_back(r.timings.affinity_ms);
    write.push_back(write_ms);
    total.push_back(total_ms);
  }

  const auto& cfg = clip_es.model().config();
  const double D = cfg.vision.width, P = cfg.vision.patch_size;
  const double n = (result.input_h / P) * (result.input_w / P);
  const double L = n + 1;
  result.tokens = static_cast<int>(L);
  const double embed_flop = 2.0 * n * (3 * P * P) * D;
  const double trunk_flop = embed_flop + (cfg.vision.layers - 1) * block_forward_flop(L, D);
  const double last_flop = block_forward_flop(L, D) + bench_case.labels * block_input_backward_flop(L, D);
  // CAA: the n×n affinity squared (2n³) and the K refinements (2n²K).
  const double caa_flop = 2.0 * n * n * n + 2.0 * n * n * bench_case.labels;

  auto stage = [&](const std::string& name, const std::vector<double>& ms, double flop) {
    StageStats s;
    s.name = name;
    s.mean_ms = mean(ms);
    s.median_ms = median(ms);
    s.gflop = flop / 1e9;
    if (flop > 0 && s.mean_ms > 0) {
      s.gflop_per_s = s.gflop / (s.mean_ms / 1e3);
      s.peak_fraction = peak_gflops > 0 ? s.gflop_per_s / peak_gflops : 0;
    }
    result.stages.push_back(s);
  };
  stage("decode", decode, 0);
  stage("preprocess", preprocess, 0);
  stage("blocks 1..L-1", trunk, trunk_flop);
  stage("block L + grads", last, last_flop);
  stage("CAA", caa, caa_flop);
  stage("resize+mask+write", write, 0);
  result.total_mean_ms = mean(total);
  result.total_median_ms = median(total);
  result.images_per_s = result.total_mean_ms > 0 ? 1e3 / result.total_mean_ms : 0;
  result.peak_rss_mb = peak_rss_mb();
  return result;
}

nlohmann::json bench_result_json(const BenchResult& r) {
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : r.stages)
    stages.push_back({{"stage", s.name}, {"mean_ms", s.mean_ms}, {"median_ms", s.median_ms}, {"gflop", s.gflop},
                      {"gflop_per_s", s.gflop_per_s}, {"peak_fraction", s.peak_fraction}});
  nlohmann::json j = {{"height", r.bench_case.height}, {"width", r.bench_case.width}, {"labels", r.bench_case.labels},
          {"input_h", r.input_h}, {"input_w", r.input_w}, {"tokens", r.tokens}, {"stages", stages},
          {"total_mean_ms", r.total_mean_ms}, {"total_median_ms", r.total_median_ms},
          {"images_per_s", r.images_per_s}, {"peak_rss_mb", r.peak_rss_mb}};
  if (!r.title.empty()) j["title"] = r.title;
  return j;
}

std::string format_bench_table(const std::vector<BenchResult>& results, double peak_gflops,
                               const std::string& precision) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "precision %s, %d threads, measured matmul peak %.0f GFLOP/s\n",
                precision.c_str(), torch::get_num_threads(), peak_gflops);
  out += line;
  for (const auto& r : results) {
    std::snprintf(line, sizeof line, "\n%s%s%dx%d, K=%d  (input %dx%d, %d tokens)\n", r.title.c_str(),
                  r.title.empty() ? "" : ": ", r.bench_case.width, r.bench_case.height, r.bench_case.labels, r.input_w,
                  r.input_h, r.tokens);
    out += line;
    std::snprintf(line, sizeof line, "  %-18s %10s %10s %8s %9s %6s\n", "stage", "mean ms", "median ms", "GFLOP",
                  "GFLOP/s", "peak");
    out += line;
    for (const auto& s : r.stages) {
      if (s.gflop > 0)
        std::snprintf(line, sizeof line, "  %-18s %10.1f %10.1f %8.1f %9.1f %5.0f%%\n", s.name.c_str(), s.mean_ms,
                      s.median_ms, s.gflop, s.gflop_per_s, 100 * s.peak_fraction);
      else
        std::snprintf(line, sizeof line, "  %-18s %10.1f %10.1f\n", s.name.c_str(), s.mean_ms, s.median_ms);
      out += line;
    }
    std::snprintf(line, sizeof line, "  %-18s %10.1f %10.1f   -> %.2f images/s, peak RSS %.0f MB\n", "total",
                  r.total_mean_ms, r.total_median_ms, r.images_per_s, r.peak_rss_mb);
    out += line;
  }
  return out;
}

}  // namespace clipes

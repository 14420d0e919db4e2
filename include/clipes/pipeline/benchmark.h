// Per-stage benchmark of the CLIP-ES pipeline (`clipes bench`): wall time of
// each stage, FLOPs counted analytically from the architecture, the machine's
// measured matmul peak, and peak memory. Numbers, not pass/fail.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "clipes/model/clip_model.h"

namespace clipes {


class ClipEs;

struct BenchCase {
  int height = 384, width = 512;  // the photo's size (before ceil-16 / max-tokens)
  int labels = 2;                 // K
};

struct StageStats {
  std::string name;
  double mean_ms = 0, median_ms = 0;
  double gflop = 0;           // analytic, per image (0 where not a matmul stage)
  double gflop_per_s = 0;     // gflop / mean time
  double peak_fraction = 0;   // gflop_per_s / measured matmul peak
};

struct BenchResult {
  std::string title;  // what was run, when not CLIP-ES on a photo (LSeg's rows)
  BenchCase bench_case;
  int input_h = 0, input_w = 0, tokens = 0;  // network input and L = 1 + h·w
  std::vector<StageStats> stages;            // decode, preprocess, trunk, last_block+grads, caa, mask+write
  double total_mean_ms = 0, total_median_ms = 0;
  double images_per_s = 0;
  double peak_rss_mb = 0;  // of the whole process so far (getrusage)
};

// FLOPs of one transformer block over L tokens of width D (forward), and of
// its backward pass with respect to the INPUT only (our weights need no grads).
double block_forward_flop(double tokens, double width);
double block_input_backward_flop(double tokens, double width);

// Measured GFLOP/s of an n×n×n matmul in `dtype` on `device` (best of a few runs).
double measure_matmul_peak_gflops(at::ScalarType dtype, const std::string& device = "cpu", int n = 1536);

// The matmul peak a stage is compared with: the best of LibTorch's mm (BLAS)
// and, on the CPU, oneDNN's matmul (the fused engine's products). On the Zen 5
// development machine oneDNN's AVX-512 kernels run fp32 at 2.2× OpenBLAS's
// (which Debian runs with its Haswell kernels there), so a peak from mm alone
// would flatter every stage.
struct MatmulPeak {
  double libtorch = 0, onednn = 0;
  double best() const { return libtorch > onednn ? libtorch : onednn; }
};
// One vision block (block 0) op by op at `tokens` tokens, median ms over
// `runs`: LibTorch's ops as the reference path runs them, and the fused
// engine's steps (empty when the model has none). `clipes bench --ops`.
struct BlockOpTable {
  std::vector<std::pair<std::string, double>> reference, fused;
};
BlockOpTable time_block_ops(const ClipModel& model, int64_t tokens, int runs);
std::string format_block_op_table(const BlockOpTable& table, int64_t tokens);

MatmulPeak measure_matmul_peaks(at::ScalarType dtype, const std::string& device = "cpu", int n = 1536);

// Runs the whole pipeline `runs` times (after `warmup`) on a synthetic photo
// of the case's size: JPEG decode, ClipEs, pseudo mask, PNG encode + write to
// `scratch_dir`. peak_gflops: the matmul peak to compare with.
BenchResult run_benchmark(const ClipEs& clip_es, const BenchCase& bench_case, int runs, int warmup,
                          double peak_gflops, const std::string& scratch_dir);

nlohmann::json bench_result_json(const BenchResult& result);
std::string format_bench_table(const std::vector<BenchResult>& results, double peak_gflops,
                               const std::string& precision);

}  // namespace clipes

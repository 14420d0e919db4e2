#include "clipes/pipeline/lseg_benchmark.h"

#include <torch/torch.h>

#include <numeric>

#include "bench_support.h"
#include "clipes/io/image_decode.h"
#include "clipes/methods/lseg_multi_eval.h"
#include "clipes/model/lseg_model.h"

namespace clipes {
using namespace bench;

namespace {

StageStats stage_stats(const std::string& name, const std::vector<double>& ms, double flop, double peak_gflops) {
  StageStats s;
  s.name = name;
  s.mean_ms = mean(ms);
  s.median_ms = median(ms);
  s.gflop = flop / 1e9;
  if (flop > 0 && s.mean_ms > 0) {
    s.gflop_per_s = s.gflop / (s.mean_ms / 1e3);
    s.peak_fraction = peak_gflops > 0 ? s.gflop_per_s / peak_gflops : 0;
  }
  return s;
}

void finish(BenchResult& r, const std::vector<double>& total) {
  r.total_mean_ms = mean(total);
  r.total_median_ms = median(total);
  r.images_per_s = r.total_mean_ms > 0 ? 1e3 / r.total_mean_ms : 0;
  r.peak_rss_mb = peak_rss_mb();
}

}  // namespace

LsegForwardFlop lseg_forward_flop(const LsegConfig& c, int64_t h, int64_t w, int64_t k) {
  LsegForwardFlop f;
  const double D = c.vit_width, P = c.patch_size, F = c.features, C = c.out_c;
  const double gh = static_cast<double>(h) / P, gw = static_cast<double>(w) / P, n = gh * gw;
  f.trunk = 2.0 * n * (3 * P * P) * D + (c.hooks.back() + 1) * block_forward_flop(n + 1, D);
  // Level k's map: ×4, ×2, ×1, ×½ the token grid (lseg-spec §3).
  const double res[4] = {16 * n, 4 * n, n, n / 4};
  for (size_t i = 0; i < 4; ++i) {
    const double ck = c.reassemble_widths[i];
    f.decoder += 2.0 * n * (2 * D) * D + 2.0 * n * D * ck;  // readout project, 1×1 conv
    if (i == 0) f.decoder += 2.0 * n * ck * ck * 16;        // ×4 transposed conv (kernel 4)
    if (i == 1) f.decoder += 2.0 * n * ck * ck * 4;         // ×2 transposed conv (kernel 2)
    if (i == 3) f.decoder += 2.0 * res[3] * ck * ck * 9;    // 3×3 stride-2 conv
    f.decoder += 2.0 * res[i] * ck * F * 9;                 // layer_rn (3×3)
    const double rcus = i == 3 ? 1 : 2;                     // refinenet4 has one input
    f.decoder += rcus * 2 * (2.0 * res[i] * F * F * 9);     // two 3×3 convs per unit
    f.decoder += 2.0 * (4 * res[i]) * F * F;                // out_conv after ×2
  }
  const double pixels = static_cast<double>(h) * w / 4;     // head1's map is h/2 × w/2
  f.head = 2.0 * pixels * F * C + 2.0 * pixels * C * static_cast<double>(k);
  return f;
}

BenchResult run_lseg_forward_benchmark(const LsegModel& model, const at::Tensor& text, int crop, int runs, int warmup,
                                       double peak_gflops) {
  torch::NoGradGuard no_grad;
  const LsegConfig& c = model.config();
  const at::Tensor x = torch::rand({1, 3, crop, crop}) * 2 - 1;  // normalised pixels are in [-1, 1]
  const int64_t gh = crop / c.patch_size, gw = crop / c.patch_size;
  std::vector<double> trunk, decoder, head, total;
  for (int i = 0; i < warmup + runs; ++i) {
    auto t = Clock::now();
    const std::vector<at::Tensor> hooks = model.vit_hooks(x);
    const double trunk_ms = ms_since(t);
    t = Clock::now();
    const at::Tensor p1 = model.fuse(model.layer_rn(model.reassemble(hooks, gh, gw)))[0];
    const double decoder_ms = ms_since(t);
    t = Clock::now();
    const at::Tensor logits = model.head_logits(p1, text);  // what forward runs
    const double head_ms = ms_since(t);
    if (i < warmup) continue;
    trunk.push_back(trunk_ms);
    decoder.push_back(decoder_ms);
    head.push_back(head_ms);
    total.push_back(trunk_ms + decoder_ms + head_ms);
  }
  const LsegForwardFlop flop = lseg_forward_flop(c, crop, crop, text.size(0));
  BenchResult r;
  r.title = "one LSeg forward";
  r.bench_case = {crop, crop, static_cast<int>(text.size(0))};
  r.input_h = r.input_w = crop;
  r.tokens = static_cast<int>(gh * gw + 1);
  r.stages.push_back(stage_stats("ViT blocks", trunk, flop.trunk, peak_gflops));
  r.stages.push_back(stage_stats("DPT decoder", decoder, flop.decoder, peak_gflops));
  r.stages.push_back(stage_stats("head+logits+x2", head, flop.head, peak_gflops));
  finish(r, total);
  return r;
}

BenchResult run_lseg_image_benchmark(const LsegModel& model, const at::Tensor& text, const BenchCase& bench_case,
                                     const LsegSegmentOptions& options, int runs, int warmup, double peak_gflops) {
  const std::vector<uchar> jpeg = synthetic_jpeg(bench_case.height, bench_case.width);
  const int k = static_cast<int>(text.size(0));
  std::vector<int> query_class(static_cast<size_t>(k));
  std::iota(query_class.begin(), query_class.end(), 0);
  const LsegSegmenter segmenter(model, text, query_class, k, /*background=*/-1, options);
  std::vector<double> decode, preprocess, forward, labels, total;
  for (int i = 0; i < warmup + runs; ++i) {
    const auto t_total = Clock::now();
    const auto t = Clock::now();
    const cv::Mat rgb = decode_image_rgb_bytes(jpeg, "bench.jpg");
    const double decode_ms = ms_since(t);
    const SegmentResult r = segmenter.run(rgb);
    const double total_ms = ms_since(t_total);
    if (i < warmup) continue;
    decode.push_back(decode_ms);
    preprocess.push_back(r.timings.preprocess_ms);
    forward.push_back(r.timings.forward_ms);
    labels.push_back(r.timings.upsample_ms);
    total.push_back(total_ms);
  }
  const int64_t h = bench_case.height, w = bench_case.width, crop = options.evaluator.crop_size;
  const int64_t forwards = options.single_forward ? 1 : lseg_forward_count(h, w, options.evaluator);
  const double flop = options.single_forward ? lseg_forward_flop(model.config(), h, w, k).total()
                                             : static_cast<double>(forwards) * lseg_forward_flop(model.config(), crop, crop, k).total();
  BenchResult r;
  r.bench_case = bench_case;
  r.bench_case.labels = k;
  r.input_h = static_cast<int>(options.single_forward ? h : crop);
  r.input_w = static_cast<int>(options.single_forward ? w : crop);
  r.tokens = static_cast<int>(r.input_h / model.config().patch_size * (r.input_w / model.config().patch_size) + 1);
  r.title = options.single_forward ? "single forward" : "evaluator, " + std::to_string(options.evaluator.scales.size()) +
                                                             " scale(s)" + (options.evaluator.flip ? " + flip" : "");
  r.stages.push_back(stage_stats("decode", decode, 0, peak_gflops));
  r.stages.push_back(stage_stats("preprocess", preprocess, 0, peak_gflops));
  r.stages.push_back(stage_stats(std::to_string(forwards) + " forward(s)", forward, flop, peak_gflops));
  r.stages.push_back(stage_stats("merge+labels", labels, 0, peak_gflops));
  finish(r, total);
  return r;
}

}  // namespace clipes

// `clipes bench --method lseg`: LSeg's network (model/lseg_model.h) timed
// stage by stage against the measured matmul peak, like the CLIP-ES bench
// (pipeline/benchmark.h), whose result and table types it reuses.
//
// Two kinds of rows: one network forward at the crop size broken into its
// stages (ViT trunk, DPT decoder, head + logits), and whole images through
// `segment --method lseg`'s segmenter (decode, preprocess, every forward of
// the evaluator, windows merged + labels). FLOPs are counted analytically
// from the configuration.
#pragma once
#include <ATen/core/Tensor.h>

#include "clipes/methods/lseg_segmenter.h"
#include "clipes/model/lseg_config.h"
#include "clipes/pipeline/benchmark.h"

namespace clipes {

class LsegModel;

// FLOPs of one LSeg forward on an h×w input (multiples of 32) with k labels.
struct LsegForwardFlop {
  double trunk = 0;    // patch embedding + the ViT blocks up to the last hook
  double decoder = 0;  // reassemble, layer_rn, the four fusion blocks
  double head = 0;     // head1 (1×1 conv to C) and the per-pixel logits
  double total() const { return trunk + decoder + head; }
};
LsegForwardFlop lseg_forward_flop(const LsegConfig& config, int64_t h, int64_t w, int64_t k);

// One forward at crop×crop (the evaluator's window), stage by stage.
BenchResult run_lseg_forward_benchmark(const LsegModel& model, const at::Tensor& text_features, int crop, int runs,
                                       int warmup, double peak_gflops);

// Whole synthetic photos of bench_case's size through an LsegSegmenter with
// `options` (bench_case.labels is ignored: the labels are text_features' rows).
BenchResult run_lseg_image_benchmark(const LsegModel& model, const at::Tensor& text_features,
                                     const BenchCase& bench_case, const LsegSegmentOptions& options, int runs,
                                     int warmup, double peak_gflops);

}  // namespace clipes

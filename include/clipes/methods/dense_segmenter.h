// DenseSegmenter — open-vocabulary masks from CLIP alone, no image labels
// (segment-spec §1–§3). The method (MaskCLIP's value path, NACLIP's
// neighbour-aware attention, CLIP-DINOiser's guided pooling + objectness, or
// any other) is a plug-in (methods/dense_method.h, one file per method under
// src/methods/dense/); this class is the runner they share.
//
// Per image: the CLIP-ES ceil-16 stretch of the whole image (default), or a
// short-side resize and mmseg-style sliding windows (resize_short, window,
// stride, as the methods' own evaluations run). The channels of every window
// are bilinearly upsampled to the window, averaged where windows overlap, and
// upsampled to the image in row bands (so a 40 MP photo never holds C
// full-size maps), then the method's rule turns them into class
// probabilities, a label and a confidence per pixel.
#pragma once
#include <opencv2/core.hpp>

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "clipes/methods/image_segmenter.h"

namespace clipes {

class ClipModel;
class DenseMethod;
struct DenseQueries;

// What the runner does around any method.
struct SegmentConfig {
  double logit_scale = 0;              // 0: the method's own (DenseMethod::default_logit_scale)
  int resize_short = 0;                // >0: resize the short side to this first (ratio kept)
  int window = 0, stride = 0;          // >0: sliding window inference on the (resized) image
  int max_tokens = 2500;               // whole-image mode: cap on the patch grid (io/preprocess.h)
  // >= 0: a pixel whose best non-background class probability is <= this is
  // background (the background class, or index num_classes when the set has
  // none, written as 0), with confidence 1 − that probability. The constant
  // background `eval --cams` sweeps on saved scores; < 0: the method decides.
  double bg_threshold = -1;
};

// One forward pass at the patch grid: what the fixtures hold.
struct PatchScores {
  at::Tensor features;       // [h, w, E] the method's dense features, not normalised (DINOiser: pooled)
  at::Tensor probabilities;  // [C, h, w] class probabilities, the method's rule applied
  at::Tensor objectness;     // [h, w] (DINOiser only)
  at::Tensor projections;    // [K, h, w] unit obj_proj outputs (DINOiser only; their products are the correlations)
  at::Tensor channels;       // [S, h, w] what is upsampled (NACLIP: cosines per query; others: probabilities)
};

class DenseSegmenter final : public ImageSegmenter {
 public:
  // method: from the registry (create_dense_method). query_features: [Q, E]
  // unit text features; query_class[q]: its class in [0, num_classes);
  // background: class index of background or -1.
  DenseSegmenter(const ClipModel& model, std::shared_ptr<const DenseMethod> method, at::Tensor query_features,
                 std::vector<int> query_class, int num_classes, int background, SegmentConfig config);
  ~DenseSegmenter();

  // input: [3, H, W] normalised, H and W multiples of the patch size.
  PatchScores score_patches(const at::Tensor& input) const;
  // rgb: CV_8UC3 (R,G,B). keep_probabilities: also return the full-size
  // class probabilities (C·H·W floats; the CLIP-ES CAM layout needs them).
  SegmentResult run(const cv::Mat& rgb, bool keep_probabilities = false) const override;

  const SegmentConfig& config() const { return config_; }
  const DenseMethod& method() const { return *method_; }
  double logit_scale() const override;
  // [S, ...] channels (SegmentResult::scores, PatchScores::channels) → [C, ...]
  // class probabilities, the method's rule applied.
  at::Tensor class_probabilities(const at::Tensor& channels) const override;
  // The class of each channel of the scores (per query or identity, as the method's channels are).
  std::vector<int64_t> channel_classes() const override;
  bool channels_per_query() const override;

 private:
  const ClipModel& model_;
  std::shared_ptr<const DenseMethod> method_;
  std::unique_ptr<DenseQueries> queries_;
  SegmentConfig config_;
};

}  // namespace clipes

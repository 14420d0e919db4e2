// DenseSegmenter — open-vocabulary masks from CLIP alone, no image labels
// (segment-spec §1–§3): MaskCLIP's value path, NACLIP's neighbour-aware
// attention, or CLIP-DINOiser's guided pooling + objectness. Each method is a
// LastBlock variant (model/last_block.h) plus its own head on the features.
//
// Per image: the CLIP-ES ceil-16 stretch of the whole image (default), or a
// short-side resize and mmseg-style sliding windows (--resize-short,
// --window, --stride, as the methods' own evaluations run). The per-channel
// scores of every window are bilinearly upsampled to the window, averaged
// where windows overlap, and upsampled to the image in row bands (so a 40 MP
// photo never holds C full-size maps), then each method's rule turns them
// into class probabilities, a label and a confidence per pixel.
#pragma once
#include <opencv2/core.hpp>

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace clipes {

class ClipModel;
class DinoiserHeads;

enum class SegmentMethod { MaskClip, Naclip, Dinoiser };
// "maskclip" | "naclip" | "dinoiser" → SegmentMethod; throws clipes::Error otherwise.
SegmentMethod parse_segment_method(const std::string& text);
std::string to_string(SegmentMethod method);

struct SegmentConfig {
  SegmentMethod method = SegmentMethod::Naclip;
  double logit_scale = 0;              // 0: the method's own (MaskCLIP, DINOiser 100; NACLIP 40)
  bool maskclip_residual = true;       // MaskCLIP value path keeps residual + FFN (segment-spec §1)
  double naclip_sigma = 5.0;           // σ of NACLIP's Gaussian, in patches
  double naclip_min_probability = 0.1; // NACLIP: below this max probability → background (if any)
  double dinoiser_correlation = 0.2;   // corr < this → 0 (segment-spec §3)
  double dinoiser_confidence = 0.99;   // max prob below this …
  double dinoiser_objectness = 0.5;    // … and objectness ≤ this → background
  int dinoiser_tap = -3;               // block whose ln_2 output the heads read
  int resize_short = 0;                // >0: resize the short side to this first (ratio kept)
  int window = 0, stride = 0;          // >0: sliding window inference on the (resized) image
  int max_tokens = 2500;               // whole-image mode: cap on the patch grid (io/preprocess.h)
};

// One forward pass at the patch grid: what the fixtures hold.
struct PatchScores {
  at::Tensor features;       // [h, w, E] the method's dense features, not normalised (DINOiser: pooled)
  at::Tensor probabilities;  // [C, h, w] class probabilities, the method's rule applied
  at::Tensor objectness;     // [h, w] (DINOiser only)
  at::Tensor projections;    // [K, h, w] unit obj_proj outputs (DINOiser only; their products are the correlations)
  at::Tensor channels;       // [S, h, w] what is upsampled (NACLIP: cosines per query; others: probabilities)
};

struct SegmentResult {
  cv::Mat labels;            // CV_32SC1 class index per pixel of the original image
  cv::Mat confidence;        // CV_32FC1 the winning class probability
  at::Tensor scores;         // [S, hs, ws] float32 CPU, the averaged channels before the final upsampling
  int input_h = 0, input_w = 0;  // network input size (whole image) or resized image size (windows)
};

class DenseSegmenter {
 public:
  // query_features: [Q, E] unit text features; query_class[q]: its class in
  // [0, num_classes); background: class index of background or -1. heads:
  // required for DINOiser, ignored otherwise.
  DenseSegmenter(const ClipModel& model, at::Tensor query_features, std::vector<int> query_class, int num_classes,
                 int background, SegmentConfig config, std::shared_ptr<const DinoiserHeads> heads = nullptr);
  ~DenseSegmenter();

  // input: [3, H, W] normalised, H and W multiples of the patch size.
  PatchScores score_patches(const at::Tensor& input) const;
  // rgb: CV_8UC3 (R,G,B).
  SegmentResult run(const cv::Mat& rgb) const;

  const SegmentConfig& config() const { return config_; }
  double logit_scale() const;
  // [S, ...] channels (SegmentResult::scores, PatchScores::channels) → [C, ...]
  // class probabilities, the method's rule applied.
  at::Tensor class_probabilities(const at::Tensor& channels) const;
  // The class of each channel of the scores (NACLIP: per query; others: identity).
  std::vector<int64_t> channel_classes() const;

 private:
  // [Q, ...] query probabilities → [C, ...] (max over a class's queries).
  at::Tensor per_class_max(const at::Tensor& per_query) const;

  const ClipModel& model_;
  at::Tensor queries_;          // [Q, E]
  std::vector<int> query_class_;
  int num_classes_, background_;
  SegmentConfig config_;
  std::shared_ptr<const DinoiserHeads> heads_;
};

}  // namespace clipes

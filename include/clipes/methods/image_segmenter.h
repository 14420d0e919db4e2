// ImageSegmenter — what `clipes segment` runs per image, whatever the model:
// the CLIP-trunk methods (DenseSegmenter with a DenseMethod plug-in) and
// LSeg's own network (LsegSegmenter). pipeline/segment.h drives any of them
// with the shared batch machinery, writers and contact sheets.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace clipes {

// Where the time of one image went (run.json's stage_ms_mean).
struct SegmentTimings {
  double preprocess_ms = 0;  // resize, crops, normalisation
  double forward_ms = 0;     // the network and the method's head, every window
  double upsample_ms = 0;    // windows merged, channels to the image, class rule, labels
  SegmentTimings& operator+=(const SegmentTimings& o);
};

struct SegmentResult {
  cv::Mat class_index;       // CV_32SC1 class index per pixel of the original image (not yet a mask
                             // value); num_classes = background by bg_threshold in a set without one
  cv::Mat confidence;        // CV_32FC1 the winning class probability
  at::Tensor scores;         // [S, hs, ws] float32 CPU, the channels before the final upsampling
  at::Tensor probabilities;  // [C, H, W] float32 class probabilities at the image (only when asked for)
  int input_h = 0, input_w = 0;  // network input size (whole image) or resized image size (windows)
  SegmentTimings timings;
};

class ImageSegmenter {
 public:
  virtual ~ImageSegmenter();
  // rgb: CV_8UC3 (R,G,B). keep_probabilities: also return the full-size
  // class probabilities (C·H·W floats; the CLIP-ES CAM layout needs them).
  virtual SegmentResult run(const cv::Mat& rgb, bool keep_probabilities = false) const = 0;
  // [S, ...] channels (SegmentResult::scores) → [C, ...] class probabilities.
  virtual at::Tensor class_probabilities(const at::Tensor& channels) const = 0;
  // The class of each channel of the scores.
  virtual std::vector<int64_t> channel_classes() const = 0;
  // How saved scores are read back (run.json: logit_scale, scores_channels;
  // io/saved_cams.h SavedScoreRule): channels per query, softmaxed at this
  // scale, or class probabilities already.
  virtual bool channels_per_query() const = 0;
  virtual double logit_scale() const = 0;
};

// The labels of rows [y0, y0 + rows) of `result` from class probabilities
// probs [C, rows, W]: the argmax and its probability, or, with bg_threshold
// >= 0, the best non-background class unless its probability is <= the
// threshold (then `background`, or index C when background < 0, with
// confidence 1 − that probability). The rule `eval --cams` sweeps.
void label_rows(const at::Tensor& probs, int background, double bg_threshold, int64_t y0, SegmentResult& result);

}  // namespace clipes

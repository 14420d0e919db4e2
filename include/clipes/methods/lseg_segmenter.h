// LsegSegmenter — `clipes segment --method lseg`: LSeg's own network
// (model/lseg_model.h) as an ImageSegmenter, so the batch runner, writers,
// eval and visualize treat it like every other segment method.
//
// Per image (lseg-spec §7): the official normalisation, then either the
// official test-time evaluator (LSeg_MultiEvalModule: base size 520, crop
// 480, sliding windows, optional flips, raw logits summed over the scales;
// default one scale, no flip) or, with single_forward, the network once on
// the image as it is (LSegNet.forward / evaluate_random; sides must be
// multiples of 32). The channels are the logits per label divided by the
// number of forwards summed (a positive constant: the argmax is the
// official one), the class probabilities their softmax over the labels,
// the max over each class's labels, renormalised.
#pragma once
#include <vector>

#include "clipes/methods/image_segmenter.h"
#include "clipes/methods/lseg_multi_eval.h"

namespace clipes {

class LsegModel;

struct LsegSegmentOptions {
  bool single_forward = false;
  LsegMultiEvalOptions evaluator{520, 480, {1.0}, false};
  double bg_threshold = -1;  // as SegmentConfig::bg_threshold
};

class LsegSegmenter final : public ImageSegmenter {
 public:
  // text_features: [Q, C] LsegModel::encode_text of each query's raw text;
  // query_class[q]: its class in [0, num_classes); background: class index or -1.
  LsegSegmenter(const LsegModel& model, at::Tensor text_features, std::vector<int> query_class, int num_classes,
                int background, LsegSegmentOptions options);

  SegmentResult run(const cv::Mat& rgb, bool keep_probabilities = false) const override;
  at::Tensor class_probabilities(const at::Tensor& channels) const override;
  std::vector<int64_t> channel_classes() const override;
  bool channels_per_query() const override { return true; }
  double logit_scale() const override { return 1.0; }  // the channels are logits already

 private:
  const LsegModel& model_;
  at::Tensor text_;
  std::vector<int> query_class_;
  int num_classes_, background_;
  LsegSegmentOptions options_;
};

}  // namespace clipes

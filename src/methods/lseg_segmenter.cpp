#include "clipes/methods/lseg_segmenter.h"

#include <torch/torch.h>

#include <chrono>

#include "clipes/model/lseg_model.h"
#include "clipes/util/error.h"

namespace clipes {

LsegSegmenter::LsegSegmenter(const LsegModel& model, at::Tensor text_features, std::vector<int> query_class,
                             int num_classes, int background, LsegSegmentOptions options)
    : model_(model),
      text_(std::move(text_features)),
      query_class_(std::move(query_class)),
      num_classes_(num_classes),
      background_(background),
      options_(std::move(options)) {
  if (text_.dim() != 2 || text_.size(0) != static_cast<int64_t>(query_class_.size()))
    throw Error("LSeg: one text feature per query expected");
}

std::vector<int64_t> LsegSegmenter::channel_classes() const {
  return std::vector<int64_t>(query_class_.begin(), query_class_.end());
}

at::Tensor LsegSegmenter::class_probabilities(const at::Tensor& channels) const {
  const at::Tensor p = at::softmax(channels.to(torch::kFloat), 0);
  std::vector<at::Tensor> per_class(static_cast<size_t>(num_classes_));
  for (size_t q = 0; q < query_class_.size(); ++q) {
    at::Tensor& c = per_class[static_cast<size_t>(query_class_[q])];
    c = c.defined() ? at::maximum(c, p[static_cast<int64_t>(q)]) : p[static_cast<int64_t>(q)];
  }
  const at::Tensor probs = torch::stack(per_class);
  return probs / probs.sum(0, /*keepdim=*/true);
}

SegmentResult LsegSegmenter::run(const cv::Mat& rgb, bool keep_probabilities) const {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };
  torch::NoGradGuard no_grad;
  if (rgb.empty() || rgb.type() != CV_8UC3) throw Error("segment: expected an 8-bit RGB image");
  SegmentResult result;
  auto t = Clock::now();
  const at::Tensor x = lseg_normalize(rgb);  // lseg-spec §7
  result.input_h = rgb.rows;
  result.input_w = rgb.cols;
  result.timings.preprocess_ms = since(t);
  t = Clock::now();
  at::Tensor logits;  // [1, Q, H, W]
  double forwards = 1;
  if (options_.single_forward) {
    if (rgb.rows % 32 != 0 || rgb.cols % 32 != 0)
      throw Error("LSeg's single forward takes images whose sides are multiples of 32, not " +
                  std::to_string(rgb.cols) + "x" + std::to_string(rgb.rows) + " (use the evaluator instead)");
    logits = model_.forward(x, text_);
  } else {
    logits = lseg_multi_eval(model_, x, text_, options_.evaluator);
    forwards = static_cast<double>(options_.evaluator.scales.size()) * (options_.evaluator.flip ? 2 : 1);
  }
  result.timings.forward_ms = since(t);
  t = Clock::now();
  result.scores = (logits[0] / forwards).contiguous();  // [Q, H, W]
  const at::Tensor probs = class_probabilities(result.scores);
  if (keep_probabilities) result.probabilities = probs;
  result.class_index = cv::Mat(rgb.rows, rgb.cols, CV_32SC1);
  result.confidence = cv::Mat(rgb.rows, rgb.cols, CV_32FC1);
  label_rows(probs, background_, options_.bg_threshold, 0, result);
  result.timings.upsample_ms = since(t);
  return result;
}

}  // namespace clipes

#include "clipes/methods/dense_segmenter.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <tuple>

#include "clipes/io/pil_resize.h"
#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/methods/dense_method.h"
#include "clipes/methods/guided_pooling.h"
#include "clipes/util/error.h"
#include "clipes/util/l2_normalize.h"

namespace clipes {

DenseSegmenter::DenseSegmenter(const ClipModel& model, std::shared_ptr<const DenseMethod> method,
                               at::Tensor query_features, std::vector<int> query_class, int num_classes,
                               int background, SegmentConfig config)
    : model_(model), method_(std::move(method)), queries_(std::make_unique<DenseQueries>()), config_(config) {
  if (!method_) throw Error("segment: no dense method given");
  if (query_features.dim() != 2 || query_features.size(0) != static_cast<int64_t>(query_class.size()))
    throw Error("segment: one class per text query expected");
  for (int c : query_class)
    if (c < 0 || c >= num_classes) throw Error("segment: query class out of range");
  if (config_.window < 0 || config_.stride < 0 || config_.resize_short < 0)
    throw Error("segment: window, stride and short-side size must not be negative");
  if ((config_.window > 0) != (config_.stride > 0)) throw Error("segment: a sliding window needs both a size and a stride");
  queries_->features = query_features.to(torch::kFloat);
  queries_->query_class = std::move(query_class);
  queries_->num_classes = num_classes;
  queries_->background = background;
  queries_->logit_scale = config_.logit_scale > 0 ? config_.logit_scale : method_->default_logit_scale();
}

DenseSegmenter::~DenseSegmenter() = default;

double DenseSegmenter::logit_scale() const { return queries_->logit_scale; }

bool DenseSegmenter::channels_per_query() const { return method_->channels_per_query(); }

at::Tensor DenseSegmenter::class_probabilities(const at::Tensor& channels) const {
  return method_->class_probabilities(channels, *queries_);
}

std::vector<int64_t> DenseSegmenter::channel_classes() const {
  std::vector<int64_t> out;
  if (method_->channels_per_query()) {
    for (int c : queries_->query_class) out.push_back(c);
  } else {
    for (int c = 0; c < queries_->num_classes; ++c) out.push_back(c);
  }
  return out;
}

PatchScores DenseSegmenter::score_patches(const at::Tensor& input) const {
  torch::NoGradGuard no_grad;
  const DenseForward dense =
      model_.dense_forward(input.unsqueeze(0).to(model_.device(), model_.dtype()), method_->forward_options());
  const int64_t h = dense.grid_h, w = dense.grid_w;
  PatchScores out;
  const at::Tensor features = method_->dense_features(dense, out);  // [h·w, E]
  out.features = features.reshape({h, w, -1});
  const at::Tensor queries = queries_->features.to(features.device());
  const at::Tensor cosines = at::matmul(l2_normalize(features, 1, 1e-12), queries.t()).t().reshape({-1, h, w});  // [Q, h, w]
  out.channels = method_->channels(cosines, *queries_, out);
  out.probabilities = method_->class_probabilities(out.channels, *queries_);
  for (at::Tensor* t : {&out.features, &out.probabilities, &out.objectness, &out.projections, &out.channels})
    if (t->defined()) *t = t->to(torch::kCPU);
  return out;
}

namespace {

// mmseg's slide_inference window starts along one axis.
std::vector<std::pair<int, int>> window_spans(int size, int window, int stride) {
  std::vector<std::pair<int, int>> spans;
  const int n = std::max(size - window + stride - 1, 0) / stride + 1;
  for (int i = 0; i < n; ++i) {
    const int end = std::min(i * stride + window, size);
    spans.emplace_back(std::max(end - window, 0), end);
  }
  return spans;
}

}  // namespace

SegmentResult DenseSegmenter::run(const cv::Mat& rgb, bool keep_probabilities) const {
  using Clock = std::chrono::steady_clock;
  if (rgb.empty() || rgb.type() != CV_8UC3) throw Error("segment: expected an 8-bit RGB image");
  SegmentResult result;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };
  auto t = Clock::now();
  cv::Mat image = rgb;
  if (config_.resize_short > 0) {
    const double s = static_cast<double>(config_.resize_short) / std::min(rgb.rows, rgb.cols);
    image = pil_bicubic_resize(rgb, std::max(1, static_cast<int>(std::lround(rgb.cols * s))),
                               std::max(1, static_cast<int>(std::lround(rgb.rows * s))));
  }
  at::Tensor scores;
  if (config_.window > 0) {
    result.input_h = image.rows;
    result.input_w = image.cols;
    at::Tensor count = torch::zeros({1, image.rows, image.cols});
    for (const auto& [y0, y1] : window_spans(image.rows, config_.window, config_.stride)) {
      for (const auto& [x0, x1] : window_spans(image.cols, config_.window, config_.stride)) {
        const cv::Mat crop = image(cv::Range(y0, y1), cv::Range(x0, x1)).clone();
        const at::Tensor input = preprocess_to_patch_multiple(crop, model_.patch_size(), 0);
        result.timings.preprocess_ms += since(t);
        t = Clock::now();
        const at::Tensor ch = score_patches(input).channels;
        result.timings.forward_ms += since(t);
        t = Clock::now();
        const at::Tensor up =
            at::upsample_bilinear2d(ch.unsqueeze(0), {y1 - y0, x1 - x0}, /*align_corners=*/false).squeeze(0);
        if (!scores.defined()) scores = torch::zeros({up.size(0), image.rows, image.cols});
        scores.slice(1, y0, y1).slice(2, x0, x1).add_(up);
        count.slice(1, y0, y1).slice(2, x0, x1).add_(1.0);
        result.timings.upsample_ms += since(t);
        t = Clock::now();
      }
    }
    scores = scores / count;
  } else {
    const at::Tensor input = preprocess_to_patch_multiple(image, model_.patch_size(), config_.max_tokens);
    result.input_h = static_cast<int>(input.size(1));
    result.input_w = static_cast<int>(input.size(2));
    result.timings.preprocess_ms += since(t);
    t = Clock::now();
    scores = score_patches(input).channels;
    result.timings.forward_ms += since(t);
    t = Clock::now();
  }
  result.scores = scores;

  // Bilinear (align_corners=false) to the image, columns first, then rows in
  // bands: the separable form of the same interpolation, with at most ~16 M
  // values of the full-size channels alive at a time.
  const int64_t s = scores.size(0), hs = scores.size(1), out_h = rgb.rows, out_w = rgb.cols;
  const at::Tensor columns =
      at::upsample_bilinear2d(scores.unsqueeze(0), {hs, out_w}, /*align_corners=*/false).squeeze(0);  // [S, hs, W]
  result.class_index = cv::Mat(rgb.rows, rgb.cols, CV_32SC1);
  result.confidence = cv::Mat(rgb.rows, rgb.cols, CV_32FC1);
  if (keep_probabilities) result.probabilities = torch::empty({queries_->num_classes, out_h, out_w});
  const int64_t band = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(1, s * out_w));
  const double scale = static_cast<double>(hs) / static_cast<double>(out_h);
  for (int64_t y0 = 0; y0 < out_h; y0 += band) {
    const int64_t rows = std::min(band, out_h - y0);
    std::vector<int64_t> top(static_cast<size_t>(rows)), bottom(static_cast<size_t>(rows));
    std::vector<float> weight(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const double src = std::max(0.0, scale * (static_cast<double>(y0 + r) + 0.5) - 0.5);
      const auto i0 = static_cast<int64_t>(src);
      top[static_cast<size_t>(r)] = i0;
      bottom[static_cast<size_t>(r)] = i0 + (i0 < hs - 1 ? 1 : 0);
      weight[static_cast<size_t>(r)] = static_cast<float>(src - static_cast<double>(i0));
    }
    const at::Tensor wb = torch::tensor(weight).view({1, rows, 1});
    const at::Tensor band_channels = columns.index_select(1, torch::tensor(top)) * (1 - wb) +
                                     columns.index_select(1, torch::tensor(bottom)) * wb;
    const at::Tensor probs = class_probabilities(band_channels);  // [C, rows, W]
    if (keep_probabilities) result.probabilities.slice(1, y0, y0 + rows).copy_(probs);
    label_rows(probs, queries_->background, config_.bg_threshold, y0, result);
  }
  result.timings.upsample_ms += since(t);
  return result;
}

}  // namespace clipes

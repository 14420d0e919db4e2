#include "clipes/segment/dense_segmenter.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "clipes/io/pil_resize.h"
#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/segment/guided_pooling.h"
#include "clipes/util/error.h"

namespace clipes {

SegmentMethod parse_segment_method(const std::string& text) {
  if (text == "maskclip") return SegmentMethod::MaskClip;
  if (text == "naclip") return SegmentMethod::Naclip;
  if (text == "dinoiser" || text == "clip-dinoiser") return SegmentMethod::Dinoiser;
  throw Error("--method " + text + ": expected maskclip, naclip or dinoiser");
}

std::string to_string(SegmentMethod method) {
  switch (method) {
    case SegmentMethod::MaskClip: return "maskclip";
    case SegmentMethod::Naclip: return "naclip";
    case SegmentMethod::Dinoiser: return "dinoiser";
  }
  return "unknown";
}

DenseSegmenter::DenseSegmenter(const ClipModel& model, at::Tensor query_features, std::vector<int> query_class,
                               int num_classes, int background, SegmentConfig config,
                               std::shared_ptr<const DinoiserHeads> heads)
    : model_(model),
      queries_(std::move(query_features)),
      query_class_(std::move(query_class)),
      num_classes_(num_classes),
      background_(background),
      config_(config),
      heads_(std::move(heads)) {
  if (queries_.dim() != 2 || queries_.size(0) != static_cast<int64_t>(query_class_.size()))
    throw Error("segment: one class per text query expected");
  for (int c : query_class_)
    if (c < 0 || c >= num_classes_) throw Error("segment: query class out of range");
  if (config_.method == SegmentMethod::Dinoiser && !heads_)
    throw Error("--method dinoiser needs --heads (CLIP-DINOiser's last.pt)");
  if (config_.window < 0 || config_.stride < 0 || config_.resize_short < 0)
    throw Error("--window, --stride and --resize-short must not be negative");
  if ((config_.window > 0) != (config_.stride > 0)) throw Error("--window and --stride go together");
  queries_ = queries_.to(torch::kFloat);
}

DenseSegmenter::~DenseSegmenter() = default;

double DenseSegmenter::logit_scale() const {
  if (config_.logit_scale > 0) return config_.logit_scale;
  return config_.method == SegmentMethod::Naclip ? 40.0 : 100.0;
}

at::Tensor DenseSegmenter::per_class_max(const at::Tensor& per_query) const {
  if (static_cast<int64_t>(query_class_.size()) == num_classes_) {
    bool identity = true;
    for (int q = 0; q < num_classes_; ++q) identity = identity && query_class_[static_cast<size_t>(q)] == q;
    if (identity) return per_query;
  }
  std::vector<at::Tensor> classes(static_cast<size_t>(num_classes_));
  for (size_t q = 0; q < query_class_.size(); ++q) {
    at::Tensor& c = classes[static_cast<size_t>(query_class_[q])];
    c = c.defined() ? at::maximum(c, per_query[static_cast<int64_t>(q)]) : per_query[static_cast<int64_t>(q)];
  }
  return torch::stack(classes, 0);
}

// Class probabilities from the upsampled channels. MaskCLIP and DINOiser
// carry probabilities already; NACLIP carries cosines, turned into
// probabilities only now, as its postprocess_result does after upsampling.
at::Tensor DenseSegmenter::class_probabilities(const at::Tensor& channels) const {
  if (config_.method != SegmentMethod::Naclip) return channels;
  at::Tensor probs = per_class_max(at::softmax(channels * logit_scale(), 0));
  const at::Tensor low = std::get<0>(probs.max(0)) < config_.naclip_min_probability;
  probs = probs / probs.sum(0, /*keepdim=*/true);
  // NACLIP labels a pixel whose best probability is below the threshold as
  // background; the probability is kept, so the confidence says it was unsure.
  if (background_ >= 0) {
    // Background wins there, with a probability no higher than the top one.
    const at::Tensor top = std::get<0>(probs.max(0));
    probs[background_] = at::where(low, at::clamp_max(top + 1e-6, 1.0), probs[background_]);
  }
  return probs;
}

std::vector<int64_t> DenseSegmenter::channel_classes() const {
  std::vector<int64_t> out;
  if (config_.method == SegmentMethod::Naclip) {
    for (int c : query_class_) out.push_back(c);
  } else {
    for (int c = 0; c < num_classes_; ++c) out.push_back(c);
  }
  return out;
}

PatchScores DenseSegmenter::score_patches(const at::Tensor& input) const {
  torch::NoGradGuard no_grad;
  DenseForwardOptions options;
  switch (config_.method) {
    case SegmentMethod::MaskClip:
    case SegmentMethod::Dinoiser:
      options.last_block.kind = config_.maskclip_residual ? LastBlockKind::ValuePath : LastBlockKind::ValueOnly;
      options.position = PositionResize::BicubicToSize;
      break;
    case SegmentMethod::Naclip:
      options.last_block.kind = LastBlockKind::NeighbourAware;
      options.last_block.gaussian_std = config_.naclip_sigma;
      options.position = PositionResize::BicubicNaclip;
      break;
  }
  if (config_.method == SegmentMethod::Dinoiser) options.ln2_taps = {config_.dinoiser_tap};
  const DenseForward dense = model_.dense_forward(input.unsqueeze(0).to(model_.device(), model_.dtype()), options);
  const int64_t h = dense.grid_h, w = dense.grid_w;
  at::Tensor features = dense.patch_features[0].to(torch::kFloat);  // [n, E]
  const at::Tensor queries = queries_.to(features.device());

  PatchScores out;
  if (config_.method == SegmentMethod::Dinoiser) {
    const at::Tensor& tap_tokens = dense.ln2_taps.begin()->second[0];  // [L, D]
    const at::Tensor tap = tap_tokens.slice(0, 1).to(torch::kFloat).t().reshape({-1, h, w});
    const at::Tensor projections = heads_->project(tap);
    GuidedPoolingOptions pooling;
    pooling.correlation_threshold = config_.dinoiser_correlation;
    const at::Tensor pooled = guided_pooling(projections, features.t().reshape({-1, h, w}), pooling);  // [E, h, w]
    features = pooled.reshape({pooled.size(0), h * w}).t();
    out.objectness = heads_->objectness(tap);
    out.projections = projections;
  }
  out.features = features.reshape({h, w, -1});
  const at::Tensor cosines = at::matmul(l2_normalize(features, 1), queries.t()).t().reshape({-1, h, w});  // [Q, h, w]
  if (config_.method == SegmentMethod::Naclip) {
    out.channels = cosines;
    out.probabilities = class_probabilities(cosines);
  } else {
    at::Tensor probs = per_class_max(at::softmax(cosines * logit_scale(), 0));
    if (config_.method == SegmentMethod::Dinoiser && background_ >= 0) {
      // Uncertain patches that are not objects become background (segment-spec §3).
      const at::Tensor uncertain = std::get<0>(probs.max(0)) < config_.dinoiser_confidence;
      const at::Tensor not_object = out.objectness.le(config_.dinoiser_objectness);
      probs[background_] = at::where(uncertain.logical_and(not_object), torch::ones_like(probs[background_]),
                                     probs[background_]);
    }
    out.probabilities = probs;
    out.channels = probs;
  }
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

SegmentResult DenseSegmenter::run(const cv::Mat& rgb) const {
  if (rgb.empty() || rgb.type() != CV_8UC3) throw Error("segment: expected an 8-bit RGB image");
  SegmentResult result;
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
        const at::Tensor ch = score_patches(preprocess_ceil16(crop, 0)).channels;
        const at::Tensor up =
            at::upsample_bilinear2d(ch.unsqueeze(0), {y1 - y0, x1 - x0}, /*align_corners=*/false).squeeze(0);
        if (!scores.defined()) scores = torch::zeros({up.size(0), image.rows, image.cols});
        scores.slice(1, y0, y1).slice(2, x0, x1).add_(up);
        count.slice(1, y0, y1).slice(2, x0, x1).add_(1.0);
      }
    }
    scores = scores / count;
  } else {
    const at::Tensor input = preprocess_ceil16(image, config_.max_tokens);
    result.input_h = static_cast<int>(input.size(1));
    result.input_w = static_cast<int>(input.size(2));
    scores = score_patches(input).channels;
  }
  result.scores = scores;

  // Bilinear (align_corners=false) to the image, columns first, then rows in
  // bands: the separable form of the same interpolation, with at most ~16 M
  // values of the full-size channels alive at a time.
  const int64_t s = scores.size(0), hs = scores.size(1), out_h = rgb.rows, out_w = rgb.cols;
  const at::Tensor columns =
      at::upsample_bilinear2d(scores.unsqueeze(0), {hs, out_w}, /*align_corners=*/false).squeeze(0);  // [S, hs, W]
  result.labels = cv::Mat(rgb.rows, rgb.cols, CV_32SC1);
  result.confidence = cv::Mat(rgb.rows, rgb.cols, CV_32FC1);
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
    const auto [value, index] = class_probabilities(band_channels).max(0);  // [rows, W]
    const at::Tensor v = value.clamp(0.0, 1.0).to(torch::kFloat).contiguous();
    const at::Tensor i = index.to(torch::kInt).contiguous();
    std::memcpy(result.confidence.ptr<float>(static_cast<int>(y0)), v.data_ptr<float>(), sizeof(float) * rows * out_w);
    std::memcpy(result.labels.ptr<int>(static_cast<int>(y0)), i.data_ptr<int>(), sizeof(int) * rows * out_w);
  }
  return result;
}

}  // namespace clipes

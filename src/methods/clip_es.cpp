#include "clipes/methods/clip_es.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "clipes/cam/attention_affinity.h"
#include "clipes/cam/cam_resize.h"
#include "clipes/cam/softmax_gradcam.h"
#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

struct ClipEs::Features {
  at::Tensor classes;     // [C, E]
  at::Tensor background;  // [M, E]
};

ClipEs::ClipEs(const ClipModel& model, const BpeTokenizer& tokenizer, ClipEsConfig config)
    : model_(model), config_(std::move(config)), features_(std::make_unique<Features>()) {
  if (config_.class_prompts.empty()) throw Error("class configuration has no classes");
  const TextEncoder encoder(model_, tokenizer);
  features_->classes = encoder.encode_classes(config_.class_prompts, config_.templates, config_.synonyms);
  // Background words are single concepts: no synonym splitting (spec §4).
  if (!config_.background_words.empty())
    features_->background = encoder.encode_classes(config_.background_words, config_.templates);
  else
    features_->background = torch::zeros({0, features_->classes.size(1)}, features_->classes.options());
}

ClipEs::~ClipEs() = default;

ClipEsResult ClipEs::run(const cv::Mat& rgb, const std::vector<int>& class_indices) const {
  ClipEsResult result;
  for (int c : class_indices) {
    if (c < 0 || c >= num_classes())
      throw Error("class index " + std::to_string(c) + " out of range (0.." + std::to_string(num_classes() - 1) + ")");
    if (std::find(result.class_indices.begin(), result.class_indices.end(), c) == result.class_indices.end())
      result.class_indices.push_back(c);
  }
  if (result.class_indices.empty()) throw Error("image has no labels");
  const int num_labels = static_cast<int>(result.class_indices.size());

  auto t0 = Clock::now();
  const at::Tensor input = preprocess_to_patch_multiple(rgb, model_.patch_size(), config_.max_tokens);
  result.input_h = static_cast<int>(input.size(1));
  result.input_w = static_cast<int>(input.size(2));
  result.timings.preprocess_ms = ms_since(t0);

  // T = [the K label features; all M background features] (spec §5).
  std::vector<int64_t> rows(result.class_indices.begin(), result.class_indices.end());
  const at::Tensor label_features =
      features_->classes.index_select(0, torch::tensor(rows, torch::kLong).to(features_->classes.device()));
  const at::Tensor text = torch::cat({label_features, features_->background}, 0);

  SoftmaxGradCamOptions cam_options;
  cam_options.use_softmax = config_.use_softmax;
  cam_options.round_pos_to_fp16 = config_.round_pos_to_fp16;
  const GradCamResult cam = SoftmaxGradCam(model_, cam_options).compute(input, text, num_labels);
  result.probabilities = cam.probabilities.to(torch::kCPU);
  result.timings.trunk_ms = cam.trunk_ms;
  result.timings.last_block_ms = cam.last_block_ms;

  t0 = Clock::now();
  at::Tensor refined_grid;
  if (config_.refine) {
    const AttentionAffinity affinity(cam.attention_sum, cam.attention_count, cam.grid_h, cam.grid_w);
    refined_grid = affinity.refine(cam.cams, config_.box_threshold);
  } else {
    refined_grid = cam.cams;
  }
  result.timings.affinity_ms = ms_since(t0);

  // Both CAMs go back to the ORIGINAL image size with cv2-style bilinear
  // resizing (spec §5–§6). Both are already min-max normalised exactly once,
  // as in the reference: a second normalisation is NOT a no-op here, because
  // the range of S²·(B⊙cam) can be ~1e-5, comparable to the 1e-7 epsilon.
  t0 = Clock::now();
  if (config_.keep_unrefined) {
    const at::Tensor both = torch::cat({cam.cams, refined_grid}, 0).to(torch::kFloat);
    const at::Tensor resized = resize_cams_bilinear(both, rgb.rows, rgb.cols);
    result.cams = resized.slice(0, 0, num_labels);
    result.refined = resized.slice(0, num_labels);
  } else {
    result.refined = resize_cams_bilinear(refined_grid.to(torch::kFloat), rgb.rows, rgb.cols);
  }
  result.timings.resize_ms = ms_since(t0);
  return result;
}

}  // namespace clipes

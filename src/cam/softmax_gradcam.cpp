#include "clipes/cam/softmax_gradcam.h"

#include <torch/torch.h>

#include <chrono>

#include "clipes/model/clip_model.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

// pytorch-grad-cam's scale_cam_image: (x - min) / (max(x - min) + 1e-7).
at::Tensor min_max(const at::Tensor& x) {
  at::Tensor shifted = x - x.min();
  return shifted / (shifted.max() + 1e-7);
}

}  // namespace

SoftmaxGradCam::SoftmaxGradCam(const ClipModel& model, SoftmaxGradCamOptions options)
    : model_(model), options_(options) {}

GradCamResult SoftmaxGradCam::compute(const at::Tensor& image, const at::Tensor& text_features,
                                      int num_labels) const {
  const int patch = model_.patch_size();
  if (image.dim() != 3 || image.size(1) % patch || image.size(2) % patch)
    throw Error("image tensor must be [3, H, W] with H and W multiples of " + std::to_string(patch));
  const int layers = model_.num_vision_layers();
  const int affinity_from = std::max(0, layers - options_.affinity_blocks);

  GradCamResult result;
  result.grid_h = static_cast<int>(image.size(1) / patch);
  result.grid_w = static_cast<int>(image.size(2) / patch);

  using Clock = std::chrono::steady_clock;
  auto elapsed_ms = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  auto t0 = Clock::now();
  // Blocks 1..L-1 once, no graph (spec §5: never rerun the trunk per class).
  at::Tensor x_before_last;
  {
    torch::NoGradGuard no_grad;
    at::Tensor x = model_.embed_image(image.unsqueeze(0).to(model_.device(), model_.dtype()),
                                      options_.round_pos_to_fp16);
    x_before_last = model_.run_blocks(x, 0, layers - 1, &result.attention, affinity_from);
  }

  result.trunk_ms = elapsed_ms(t0);
  t0 = Clock::now();

  // The last block with a graph from its ln_1 output A, the GradCAM activations.
  torch::AutoGradMode grad_mode(true);
  at::Tensor activations;
  {
    torch::NoGradGuard no_grad;
    activations = model_.vision_block_ln1(layers - 1, x_before_last);
  }
  activations.requires_grad_(true);
  at::Tensor last_attention;
  at::Tensor x_last = model_.forward_after_ln1(layers - 1, x_before_last, activations, &last_attention);
  if (layers - 1 >= affinity_from) result.attention.push_back(last_attention.detach());

  // Image embedding from the MEAN of the patch tokens, not the CLS token (spec §5).
  at::Tensor pooled = model_.vision_ln_post(x_last.slice(1, 1)).mean(1);
  at::Tensor g = model_.vision_project(pooled).to(torch::kFloat);
  g = g / g.norm(2, -1, true);
  at::Tensor logits = model_.logit_scale_exp() * torch::matmul(g, text_features.to(g.device()).t());
  at::Tensor scores = options_.use_softmax ? torch::softmax(logits, -1) : logits;
  result.probabilities = torch::softmax(logits, -1).detach().squeeze(0);

  // A as [n, D] float: the patch tokens the CAM is built from.
  const at::Tensor a = activations.detach()[0].slice(0, 1).to(torch::kFloat);
  std::vector<at::Tensor> cams;
  for (int c = 0; c < num_labels; ++c) {
    const bool last = c + 1 == num_labels;
    at::Tensor grad = torch::autograd::grad({scores[0][c]}, {activations}, {}, /*retain_graph=*/!last)[0];
    const at::Tensor weights = grad[0].slice(0, 1).to(torch::kFloat).mean(0);  // [D]
    at::Tensor cam = torch::relu(torch::matmul(a, weights));                      // [n]
    // Normalised twice, as the reference's GradCAM does (spec §5).
    cam = min_max(torch::relu(min_max(cam)));
    cams.push_back(cam.view({result.grid_h, result.grid_w}));
  }
  result.cams = num_labels ? torch::stack(cams) : torch::zeros({0, result.grid_h, result.grid_w}, a.options());
  result.last_block_ms = elapsed_ms(t0);
  return result;
}

}  // namespace clipes

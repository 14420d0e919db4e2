#include "clipes/cam/softmax_gradcam.h"

#include <torch/torch.h>

#include <chrono>

#include "clipes/model/clip_model.h"
#include "clipes/util/error.h"
#include "clipes/util/l2_normalize.h"

namespace clipes {
namespace {

// pytorch-grad-cam's scale_cam_image: (x - min) / (max(x - min) + 1e-7).
at::Tensor min_max(const at::Tensor& x) {
  at::Tensor shifted = x - x.min();
  return shifted / (shifted.max() + 1e-7);
}

}  // namespace

ClipHeadGradient clip_head_gradient(const ClipModel& model, const at::Tensor& x_out, const at::Tensor& text,
                                    int num_labels, bool use_softmax) {
  const int64_t l = x_out.size(0), n = l - 1, d = x_out.size(1);
  const at::Tensor patches = x_out.slice(0, 1).to(torch::kFloat);
  const at::Tensor mu = patches.mean(-1, true);
  const at::Tensor rstd = torch::rsqrt((patches - mu).pow(2).mean(-1, true) + 1e-5);
  const at::Tensor xhat = (patches - mu) * rstd;  // [n, D]
  const at::Tensor gamma = model.vision_ln_post_weight().to(torch::kFloat);
  const at::Tensor pooled = model.vision_ln_post(patches).mean(0);  // as the reference: ln_post, then mean
  const at::Tensor proj = model.vision_proj_fp32();                 // [D, E]
  const at::Tensor g = torch::matmul(pooled, proj);
  const at::Tensor norm = g.norm();
  const at::Tensor gn = g / norm;
  const at::Tensor t = text.to(torch::kFloat);
  const double scale = model.logit_scale_exp();
  const at::Tensor logits = scale * torch::matmul(gn, t.t());  // [K + M]
  const at::Tensor p = torch::softmax(logits, -1);
  at::Tensor d_logits = torch::eye(num_labels, logits.size(0), torch::kFloat);  // [K, K + M]
  if (use_softmax) d_logits = p.slice(0, 0, num_labels).unsqueeze(1) * (d_logits - p.unsqueeze(0));
  const at::Tensor d_gn = scale * torch::matmul(d_logits, t);                                      // [K, E]
  const at::Tensor d_g = (d_gn - gn.unsqueeze(0) * torch::matmul(d_gn, gn).unsqueeze(1)) / norm;  // [K, E]
  const at::Tensor v = torch::matmul(d_g, proj.t()) * gamma / static_cast<double>(n);           // [K, D]
  // ln_post backward with the same v at every patch: rstd·(v − mean(v) − x̂·mean(v⊙x̂)).
  const at::Tensor d_patches =
      rstd.unsqueeze(0) * (v.unsqueeze(1) - v.mean(-1, true).unsqueeze(1) -
                           xhat.unsqueeze(0) * (torch::matmul(v, xhat.t()) / static_cast<double>(d)).unsqueeze(-1));
  ClipHeadGradient out;
  out.grad_output = torch::zeros({num_labels, l, d}, torch::kFloat);
  out.grad_output.slice(1, 1).copy_(d_patches);
  out.probabilities = p;
  return out;
}

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
  TrunkOutput trunk;
  {
    torch::NoGradGuard no_grad;
    const at::Tensor x = model_.embed_image(image.unsqueeze(0).to(model_.device(), model_.dtype()),
                                            options_.round_pos_to_fp16);
    TrunkTaps taps;
    taps.attention_from = affinity_from;
    taps.attention_sum_only = true;
    trunk = model_.run_trunk(x, 0, layers - 1, taps);
  }
  result.attention_sum = trunk.attention_sum.defined() ? trunk.attention_sum.squeeze(0) : trunk.attention_sum;
  result.attention_count = trunk.attention_count;
  result.trunk_ms = elapsed_ms(t0);
  t0 = Clock::now();
  // The last block's map joins the sum when it is an affinity block (spec §6).
  auto add_last_block_map = [&](const at::Tensor& head_mean) {
    if (layers - 1 < affinity_from) return;
    const at::Tensor last = head_mean.to(torch::kDouble);
    result.attention_sum = result.attention_sum.defined() ? result.attention_sum + last : last;
    ++result.attention_count;
  };

  at::Tensor a;  // A as [n, D] float: the patch tokens the CAM is built from
  if (model_.engine() && trunk.x.device().is_cpu()) {
    torch::NoGradGuard no_grad;
    const VitEngine& engine = *model_.engine();
    const SavedBlockForward saved = engine.forward_saved(trunk.x[0]);
    add_last_block_map(saved.head_mean);
    const ClipHeadGradient head = clip_head_gradient(model_, saved.output, text_features, num_labels,
                                                     options_.use_softmax);
    result.probabilities = head.probabilities;
    const double n = static_cast<double>(result.grid_h) * result.grid_w;
    result.weights = engine.last_block_patch_gradient(saved, head.grad_output) / n;
    a = saved.ln1.slice(0, 1);
  } else {
    // The last block with a graph from its ln_1 output A, the GradCAM activations.
    const at::Tensor x_before_last = trunk.x.to(model_.dtype());
    torch::AutoGradMode grad_mode(true);
    at::Tensor activations;
    {
      torch::NoGradGuard no_grad;
      activations = model_.vision_block_ln1(layers - 1, x_before_last);
    }
    activations.requires_grad_(true);
    at::Tensor last_attention;
    at::Tensor x_last = model_.forward_after_ln1(layers - 1, x_before_last, activations, &last_attention);
    add_last_block_map(last_attention.detach()[0]);
    // Image embedding from the MEAN of the patch tokens, not the CLS token (spec §5).
    at::Tensor pooled = model_.vision_ln_post(x_last.slice(1, 1)).mean(1);
    at::Tensor g = model_.vision_project(pooled).to(torch::kFloat);
    g = l2_normalize(g);
    at::Tensor logits = model_.logit_scale_exp() * torch::matmul(g, text_features.to(g.device()).t());
    at::Tensor scores = options_.use_softmax ? torch::softmax(logits, -1) : logits;
    result.probabilities = torch::softmax(logits, -1).detach().squeeze(0);
    std::vector<at::Tensor> weights;
    for (int c = 0; c < num_labels; ++c) {
      const bool last = c + 1 == num_labels;
      at::Tensor grad = torch::autograd::grad({scores[0][c]}, {activations}, {}, /*retain_graph=*/!last)[0];
      weights.push_back(grad[0].slice(0, 1).to(torch::kFloat).mean(0));  // [D]
    }
    result.weights = num_labels ? torch::stack(weights) : torch::zeros({0, activations.size(-1)});
    a = activations.detach()[0].slice(0, 1).to(torch::kFloat);
  }

  std::vector<at::Tensor> cams;
  for (int c = 0; c < num_labels; ++c) {
    at::Tensor cam = torch::relu(torch::matmul(a, result.weights[c].to(a.device())));  // [n]
    // Normalised twice, as the reference's GradCAM does (spec §5).
    cam = min_max(torch::relu(min_max(cam)));
    cams.push_back(cam.view({result.grid_h, result.grid_w}));
  }
  result.cams = num_labels ? torch::stack(cams) : torch::zeros({0, result.grid_h, result.grid_w}, a.options());
  result.last_block_ms = elapsed_ms(t0);
  return result;
}

}  // namespace clipes

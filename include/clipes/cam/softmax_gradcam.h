// Softmax-GradCAM on the last transformer block (spec §5).
//
// The CAM method is separate from the targets and the reshape, as in
// pytorch-grad-cam: the target is "probability of label c after a softmax over
// the image's labels and the background words", the activations are the
// output of the last block's ln_1 (patch tokens reshaped to the h×w grid).
//
// Cost structure (why it is fast): blocks 1..L-1 run once, without gradients
// (ClipModel::run_trunk); the last block runs forward once. On the fused CPU
// engine all K labels then share one hand-derived backward that computes only
// the patch mean GradCAM uses (docs/last-block-backward.md); on the reference
// path (LibTorch, CUDA) each label costs one autograd pass through that block.
// The head-averaged attention of the affinity blocks is summed on the way, for CAA.
#pragma once
#include <vector>

#include <ATen/core/Tensor.h>

namespace clipes {

class ClipModel;

struct SoftmaxGradCamOptions {
  // How many of the last blocks feed the attention affinity (8 of 12 = blocks 5..12).
  int affinity_blocks = 8;
  // false: plain GradCAM on the logits (ablation only; spec §5 uses the softmax).
  bool use_softmax = true;
  // Round the resized position embedding to fp16 as the reference does (spec §3.5).
  bool round_pos_to_fp16 = true;
};

struct GradCamResult {
  at::Tensor cams;                       // [K, h, w] float32 in [0, 1]
  at::Tensor weights;                    // [K, D] GradCAM weights: patch mean of ∂s_c/∂A (float32)
  // Sum of the head-averaged [L, L] attention maps of the affinity blocks
  // (float64, as CAA sums them) and how many maps it holds.
  at::Tensor attention_sum;
  int attention_count = 0;
  at::Tensor probabilities;              // [K + M] softmax over labels + background words
  int grid_h = 0, grid_w = 0;
  double trunk_ms = 0;       // embedding + blocks 1..L-1
  double last_block_ms = 0;  // block L forward, pooling, K gradients
};

// The CLIP-ES head after the last block, forward and backward by hand for
// all K labels at once (docs/last-block-backward.md, "Head"): ln_post on the
// patch tokens, their mean, proj, normalisation, logits, softmax.
struct ClipHeadGradient {
  at::Tensor grad_output;    // [K, L, D]: ∂s_c/∂(last block output), CLS row 0
  at::Tensor probabilities;  // [K + M] softmax over labels + background words
};
// x_out: the last block's output [L, D]; text: [K + M] unit rows (labels
// first). use_softmax false: s_c are the logits (ablation).
ClipHeadGradient clip_head_gradient(const ClipModel& model, const at::Tensor& x_out, const at::Tensor& text,
                                    int num_labels, bool use_softmax);

class SoftmaxGradCam {
 public:
  explicit SoftmaxGradCam(const ClipModel& model, SoftmaxGradCamOptions options = {});

  // image: [3, H, W] normalised (H, W multiples of the patch size), any device.
  // text_features: [K + M, E] unit rows — the image's K label features first,
  // then the M background words. Returns K CAMs.
  GradCamResult compute(const at::Tensor& image, const at::Tensor& text_features, int num_labels) const;

 private:
  const ClipModel& model_;
  SoftmaxGradCamOptions options_;
};

}  // namespace clipes

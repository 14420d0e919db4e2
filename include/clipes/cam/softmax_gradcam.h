// Softmax-GradCAM on the last transformer block (spec §5).
//
// The CAM method is separate from the targets and the reshape, as in
// pytorch-grad-cam: the target is "probability of label c after a softmax over
// the image's labels and the background words", the activations are the
// output of the last block's ln_1 (patch tokens reshaped to the h×w grid).
//
// Cost structure (why it is fast): blocks 1..L-1 run once, without gradients;
// the last block runs forward once; each label then costs one backward pass
// through that block only. The head-averaged attention of the affinity blocks
// is collected on the way, for CAA.
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
  std::vector<at::Tensor> attention;     // head-averaged [L, L] maps of the affinity blocks
  at::Tensor probabilities;              // [K + M] softmax over labels + background words
  int grid_h = 0, grid_w = 0;
  double trunk_ms = 0;       // embedding + blocks 1..L-1
  double last_block_ms = 0;  // block L forward, pooling, K gradients
};

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

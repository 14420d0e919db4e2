// ClipModel — OpenAI CLIP (ViT image tower + text transformer) as our own
// torch::nn modules, built from a canonical tensor map (model/checkpoint.h).
//
// Not a TorchScript forward: CLIP-ES needs to stop before the last block, take
// gradients at that block's ln_1 output, and read attention maps, so the
// vision tower is exposed piece by piece (embed_image → run_blocks →
// vision_block_ln1 / forward_after_ln1 → vision_ln_post → vision_project).
#pragma once
#include <torch/nn/module.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clipes/engine/vit_engine.h"
#include "clipes/model/clip_config.h"
#include "clipes/model/last_block.h"
#include "clipes/model/model_options.h"
#include "clipes/model/residual_attention_block.h"

namespace clipes {

class VisionTransformer;
class TextTransformer;

class ClipModel : public torch::nn::Module {
 public:
  // Builds the model from canonical tensors (any dtype); weights are converted
  // once to the compute dtype (LayerNorms stay float32) and moved to the device.
  ClipModel(const TensorMap& tensors, const ClipConfig& config, const ModelOptions& options = {});

  // Loads any supported checkpoint file (model/checkpoint.h).
  static std::shared_ptr<ClipModel> load(const std::string& path, const ModelOptions& options = {});

  const ClipConfig& config() const { return config_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }
  int patch_size() const { return config_.vision.patch_size; }
  int num_vision_layers() const { return config_.vision.layers; }
  int64_t context_length() const { return config_.text.context_length; }
  double logit_scale_exp() const;

  // Standard CLIP image embedding (CLS token): [B,3,H,W] → [B,E].
  at::Tensor encode_image(const at::Tensor& images) const;
  // Text embedding at the EOT token (largest id): [N,ctx] int64 → [N,E]. Not normalised.
  at::Tensor encode_text(const at::Tensor& tokens) const;

  // --- the vision tower piece by piece (spec §5) ---
  // conv1 → [CLS; patches] + position embedding resized to the h×w grid → ln_pre.
  // round_pos_to_fp16: the CLIP-ES reference stores its resized position
  // embedding as half precision even when it runs in fp32 (spec §3.5 parity).
  at::Tensor embed_image(const at::Tensor& images, bool round_pos_to_fp16 = false,
                         PositionResize resize = PositionResize::Bilinear) const;
  // THE trunk entry point, for every method: blocks [begin, end) on x
  // [B, L, D], handing out what taps asks for (attention maps or their running
  // sum, ln_2 outputs, an additive attention mask). Runs on the fused engine
  // when the model has one and autograd is not recording, else on LibTorch's
  // blocks. Returned tokens are float32 from the engine, the model's dtype
  // from LibTorch.
  TrunkOutput run_trunk(const at::Tensor& x, int begin, int end, const TrunkTaps& taps = {}) const;
  // run_trunk without taps, or appending each kept block's map to *attn (tools, tests).
  at::Tensor run_blocks(const at::Tensor& x, int begin, int end, std::vector<at::Tensor>* attn = nullptr,
                        int keep_attn_from = 0) const;
  // The fused CPU engine, or null (CUDA, training, --engine reference).
  const VitEngine* engine() const { return engine_.get(); }
  at::Tensor vision_block_ln1(int block, const at::Tensor& x) const;
  at::Tensor forward_after_ln1(int block, const at::Tensor& x, const at::Tensor& ln1_out,
                               at::Tensor* head_avg_attn = nullptr) const;
  at::Tensor vision_ln_post(const at::Tensor& x) const;
  at::Tensor vision_project(const at::Tensor& x) const;
  // ln_post's γ and visual.proj [D, E] in float32 (the hand-written GradCAM backward).
  at::Tensor vision_ln_post_weight() const;
  at::Tensor vision_proj_fp32() const;

  // The position embedding [1+h*w, D] for an h×w grid (spec §3.5; each
  // method's own resize, model/last_block.h).
  at::Tensor position_embedding(int64_t grid_h, int64_t grid_w, PositionResize resize = PositionResize::Bilinear) const;

  // One dense pass for the segmentation and tagging methods: embedding,
  // blocks 1..L−1 (standard), the last block as options.last_block says,
  // ln_post and proj on every token. images: [B, 3, H, W] normalised.
  DenseForward dense_forward(const at::Tensor& images, const DenseForwardOptions& options) const;

  // Canonical (OpenAI-named) weights, e.g. to save a trained model.
  TensorMap state() const;

 private:
  ClipConfig config_;
  at::Device device_;
  at::ScalarType dtype_;
  std::shared_ptr<VisionTransformer> visual_;
  std::shared_ptr<TextTransformer> text_;
  at::Tensor logit_scale_;
  // In bf16/fp16: float32 copies of the last vision block and of visual.proj.
  // The CAMs are gradients taken inside that block, and CAA amplifies small
  // errors (spec §6), so the one block per image that matters most runs in
  // float32 while the trunk keeps the fast dtype.
  std::shared_ptr<ResidualAttentionBlock> last_block_fp32_;
  at::Tensor proj_fp32_;
  std::shared_ptr<VitEngine> engine_;
  const ResidualAttentionBlock& vision_block(int block) const;
};

}  // namespace clipes

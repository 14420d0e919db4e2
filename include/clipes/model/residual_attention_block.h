// One pre-LN transformer block of CLIP (spec §1):
//   x = x + MHA(ln_1(x));  x = x + MLP(ln_2(x)),  MLP = c_fc → act → c_proj,
// act = QuickGELU (OpenAI) or exact GELU (OpenCLIP LAION; segment-spec §0).
// Multi-head attention is written out (not nn::MultiheadAttention) because
// CLIP-ES needs the head-averaged softmax attention maps, and GradCAM needs to
// enter the block after its ln_1.
//
// Parameter names match OpenAI's (ln_1.weight, attn.in_proj_weight,
// attn.out_proj.weight, mlp.c_fc.weight, ...) so named_parameters() is the
// canonical tensor map.
#pragma once
#include <torch/nn/module.h>

#include <functional>
#include <string>

#include "clipes/model/clip_config.h"  // Activation

namespace clipes {

// Supplies the tensor of a canonical name, already in the compute dtype and on
// the device (modules are built from loaded weights, never default-initialised).
using WeightSource = std::function<at::Tensor(const std::string& name)>;

// weight + bias under one name (LayerNorm, Linear): keeps OpenAI's names.
struct AffineParams : torch::nn::Module {
  at::Tensor weight, bias;
  AffineParams(const WeightSource& w, const std::string& prefix) {
    weight = register_parameter("weight", w(prefix + "weight"));
    bias = register_parameter("bias", w(prefix + "bias"));
  }
};

struct AttentionParams : torch::nn::Module {
  at::Tensor in_proj_weight, in_proj_bias;
  std::shared_ptr<AffineParams> out_proj;
  AttentionParams(const WeightSource& w, const std::string& prefix);
};

struct MlpParams : torch::nn::Module {
  std::shared_ptr<AffineParams> c_fc, c_proj;
  MlpParams(const WeightSource& w, const std::string& prefix);
};

// LayerNorm in float32 whatever the compute dtype (OpenAI's LayerNorm subclass).
at::Tensor layer_norm_fp32(const at::Tensor& x, const AffineParams& ln);

class ResidualAttentionBlock : public torch::nn::Module {
 public:
  // prefix: e.g. "visual.transformer.resblocks.3."
  ResidualAttentionBlock(const WeightSource& w, const std::string& prefix, int heads,
                         Activation activation = Activation::QuickGelu);

  // x: [B, L, D]. attn_mask: additive [L, L] or undefined. head_avg_attn, if
  // given, receives the head-averaged softmax attention [B, L, L]; ln2_out
  // the ln_2 output (CLIP-DINOiser's tap, segment-spec §3).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& attn_mask = {},
                     at::Tensor* head_avg_attn = nullptr, at::Tensor* ln2_out = nullptr) const;

  at::Tensor ln1(const at::Tensor& x) const { return layer_norm_fp32(x, *ln_1_); }
  // The block after ln_1: x + MHA(ln1_out), then the MLP half. GradCAM takes
  // gradients with respect to ln1_out.
  at::Tensor forward_after_ln1(const at::Tensor& x, const at::Tensor& ln1_out, const at::Tensor& attn_mask = {},
                               at::Tensor* head_avg_attn = nullptr, at::Tensor* ln2_out = nullptr) const;

  at::Tensor attention(const at::Tensor& h, const at::Tensor& attn_mask, at::Tensor* head_avg_attn) const;
  // The head-averaged softmax attention of h = ln_1(x) alone, [B, L, L]
  // float32, attn_mask added when given. TagCLIP's vote needs the last
  // block's attention WITHOUT the mask its output uses (last_block.h).
  at::Tensor attention_weights(const at::Tensor& h, const at::Tensor& attn_mask = {}) const;
  int heads() const { return heads_; }

  // The pieces the last-block variants recombine (model/last_block.h):
  // q, k, v of h = ln_1(x) as [3, B, H, L, hd] (biases included, q unscaled);
  at::Tensor qkv(const at::Tensor& h) const;
  // [B, H, L, hd] head outputs → out_proj (weight and bias) → [B, L, D];
  at::Tensor project_heads(const at::Tensor& heads_out) const;
  // out_proj applied to a [.., D] tensor;
  at::Tensor out_proj(const at::Tensor& y) const;
  // MLP(ln_2(y)), the second residual branch (ln2_out receives ln_2(y)).
  at::Tensor mlp_branch(const at::Tensor& y, at::Tensor* ln2_out = nullptr) const;

 private:
  int heads_;
  Activation activation_;
  std::shared_ptr<AffineParams> ln_1_, ln_2_;
  std::shared_ptr<AttentionParams> attn_;
  std::shared_ptr<MlpParams> mlp_;
};

}  // namespace clipes

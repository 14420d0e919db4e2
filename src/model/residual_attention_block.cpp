#include "clipes/model/residual_attention_block.h"

#include <torch/torch.h>

#include <cmath>

namespace clipes {

AttentionParams::AttentionParams(const WeightSource& w, const std::string& prefix) {
  in_proj_weight = register_parameter("in_proj_weight", w(prefix + "in_proj_weight"));
  in_proj_bias = register_parameter("in_proj_bias", w(prefix + "in_proj_bias"));
  out_proj = register_module("out_proj", std::make_shared<AffineParams>(w, prefix + "out_proj."));
}

MlpParams::MlpParams(const WeightSource& w, const std::string& prefix) {
  c_fc = register_module("c_fc", std::make_shared<AffineParams>(w, prefix + "c_fc."));
  c_proj = register_module("c_proj", std::make_shared<AffineParams>(w, prefix + "c_proj."));
}

at::Tensor layer_norm_fp32(const at::Tensor& x, const AffineParams& ln) {
  const int64_t d = x.size(-1);
  if (x.scalar_type() == at::kFloat) return at::layer_norm(x, {d}, ln.weight, ln.bias, 1e-5);
  return at::layer_norm(x.to(at::kFloat), {d}, ln.weight.to(at::kFloat), ln.bias.to(at::kFloat), 1e-5)
      .to(x.scalar_type());
}

ResidualAttentionBlock::ResidualAttentionBlock(const WeightSource& w, const std::string& prefix, int heads)
    : heads_(heads) {
  ln_1_ = register_module("ln_1", std::make_shared<AffineParams>(w, prefix + "ln_1."));
  attn_ = register_module("attn", std::make_shared<AttentionParams>(w, prefix + "attn."));
  ln_2_ = register_module("ln_2", std::make_shared<AffineParams>(w, prefix + "ln_2."));
  mlp_ = register_module("mlp", std::make_shared<MlpParams>(w, prefix + "mlp."));
}

at::Tensor ResidualAttentionBlock::attention(const at::Tensor& h, const at::Tensor& attn_mask,
                                             at::Tensor* head_avg_attn) const {
  const int64_t b = h.size(0), l = h.size(1), d = h.size(2), hd = d / heads_;
  // One fused matmul for q, k and v, then [3, B, H, L, hd] views.
  const at::Tensor qkv =
      at::linear(h, attn_->in_proj_weight, attn_->in_proj_bias).view({b, l, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
  // Scale q before the product, as PyTorch's multi_head_attention_forward does.
  const at::Tensor q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(hd)));
  at::Tensor scores = at::matmul(q, qkv[1].transpose(-2, -1));  // [B, H, L, L]
  if (attn_mask.defined()) scores = scores + attn_mask;
  // Reduced precision: the softmax and the head average run in float32. CAA
  // min-max normalises S²·(B⊙cam), so bf16-rounded attention maps would move
  // the refined CAMs far more than the bf16 matmuls do.
  const bool low_precision = scores.scalar_type() != at::kFloat && scores.scalar_type() != at::kDouble;
  const at::Tensor probs = low_precision ? at::softmax(scores, -1, at::kFloat) : at::softmax(scores, -1);
  if (head_avg_attn) *head_avg_attn = probs.mean(1);
  const at::Tensor out =
      at::matmul(low_precision ? probs.to(scores.scalar_type()) : probs, qkv[2]).transpose(1, 2).reshape({b, l, d});
  return at::linear(out, attn_->out_proj->weight, attn_->out_proj->bias);
}

at::Tensor ResidualAttentionBlock::forward_after_ln1(const at::Tensor& x, const at::Tensor& ln1_out,
                                                     const at::Tensor& attn_mask, at::Tensor* head_avg_attn) const {
  at::Tensor y = x + attention(ln1_out, attn_mask, head_avg_attn);
  at::Tensor hidden = at::linear(layer_norm_fp32(y, *ln_2_), mlp_->c_fc->weight, mlp_->c_fc->bias);
  hidden = hidden * at::sigmoid(hidden * 1.702);  // QuickGELU
  return y + at::linear(hidden, mlp_->c_proj->weight, mlp_->c_proj->bias);
}

at::Tensor ResidualAttentionBlock::forward(const at::Tensor& x, const at::Tensor& attn_mask,
                                           at::Tensor* head_avg_attn) const {
  return forward_after_ln1(x, ln1(x), attn_mask, head_avg_attn);
}

}  // namespace clipes

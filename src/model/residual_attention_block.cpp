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

ResidualAttentionBlock::ResidualAttentionBlock(const WeightSource& w, const std::string& prefix, int heads,
                                               Activation activation)
    : heads_(heads), activation_(activation) {
  ln_1_ = register_module("ln_1", std::make_shared<AffineParams>(w, prefix + "ln_1."));
  attn_ = register_module("attn", std::make_shared<AttentionParams>(w, prefix + "attn."));
  ln_2_ = register_module("ln_2", std::make_shared<AffineParams>(w, prefix + "ln_2."));
  mlp_ = register_module("mlp", std::make_shared<MlpParams>(w, prefix + "mlp."));
}

at::Tensor ResidualAttentionBlock::qkv(const at::Tensor& h) const {
  const int64_t b = h.size(0), l = h.size(1), d = h.size(2), hd = d / heads_;
  // One fused matmul for q, k and v, then [3, B, H, L, hd] views.
  return at::linear(h, attn_->in_proj_weight, attn_->in_proj_bias).view({b, l, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
}

at::Tensor ResidualAttentionBlock::project_heads(const at::Tensor& heads_out) const {
  const int64_t b = heads_out.size(0), l = heads_out.size(2);
  return out_proj(heads_out.transpose(1, 2).reshape({b, l, -1}));
}

at::Tensor ResidualAttentionBlock::out_proj(const at::Tensor& y) const {
  return at::linear(y, attn_->out_proj->weight, attn_->out_proj->bias);
}

at::Tensor ResidualAttentionBlock::mlp_branch(const at::Tensor& y, at::Tensor* ln2_out) const {
  const at::Tensor h2 = layer_norm_fp32(y, *ln_2_);
  if (ln2_out) *ln2_out = h2;
  at::Tensor hidden = at::linear(h2, mlp_->c_fc->weight, mlp_->c_fc->bias);
  hidden = activation_ == Activation::Gelu ? at::gelu(hidden)                       // exact (erf) GELU
                                           : hidden * at::sigmoid(hidden * 1.702);  // QuickGELU
  return at::linear(hidden, mlp_->c_proj->weight, mlp_->c_proj->bias);
}

namespace {

// q·kᵀ of a [3, B, H, L, hd] qkv, plus the mask: [B, H, L, L]. q is scaled
// before the product, as PyTorch's multi_head_attention_forward does.
at::Tensor attention_scores(const at::Tensor& qkv, const at::Tensor& attn_mask) {
  const at::Tensor q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(qkv.size(-1))));
  at::Tensor scores = at::matmul(q, qkv[1].transpose(-2, -1));
  if (attn_mask.defined()) scores = scores + attn_mask;
  return scores;
}

}  // namespace

at::Tensor ResidualAttentionBlock::attention_weights(const at::Tensor& h, const at::Tensor& attn_mask) const {
  return at::softmax(attention_scores(qkv(h), attn_mask), -1, at::kFloat).mean(1);
}

at::Tensor ResidualAttentionBlock::attention(const at::Tensor& h, const at::Tensor& attn_mask,
                                             at::Tensor* head_avg_attn) const {
  const at::Tensor qkv = this->qkv(h);
  const at::Tensor scores = attention_scores(qkv, attn_mask);  // [B, H, L, L]
  // Reduced precision: the softmax and the head average run in float32. CAA
  // min-max normalises S²·(B⊙cam), so bf16-rounded attention maps would move
  // the refined CAMs far more than the bf16 matmuls do.
  const bool low_precision = scores.scalar_type() != at::kFloat && scores.scalar_type() != at::kDouble;
  const at::Tensor probs = low_precision ? at::softmax(scores, -1, at::kFloat) : at::softmax(scores, -1);
  if (head_avg_attn) *head_avg_attn = probs.mean(1);
  return project_heads(at::matmul(low_precision ? probs.to(scores.scalar_type()) : probs, qkv[2]));
}

at::Tensor ResidualAttentionBlock::forward_after_ln1(const at::Tensor& x, const at::Tensor& ln1_out,
                                                     const at::Tensor& attn_mask, at::Tensor* head_avg_attn,
                                                     at::Tensor* ln2_out) const {
  const at::Tensor y = x + attention(ln1_out, attn_mask, head_avg_attn);
  return y + mlp_branch(y, ln2_out);
}

at::Tensor ResidualAttentionBlock::forward(const at::Tensor& x, const at::Tensor& attn_mask,
                                           at::Tensor* head_avg_attn, at::Tensor* ln2_out) const {
  return forward_after_ln1(x, ln1(x), attn_mask, head_avg_attn, ln2_out);
}

}  // namespace clipes

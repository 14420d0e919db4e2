#include "clipes/model/last_block.h"

#include <torch/torch.h>

#include <cmath>

#include "clipes/model/residual_attention_block.h"
#include "clipes/util/error.h"

namespace clipes {

std::string to_string(LastBlockKind kind) {
  switch (kind) {
    case LastBlockKind::Standard: return "standard";
    case LastBlockKind::ValuePath: return "value-path";
    case LastBlockKind::ValueOnly: return "value-only";
    case LastBlockKind::NeighbourAware: return "neighbour-aware";
    case LastBlockKind::SelfMasked: return "self-masked";
  }
  return "unknown";
}

at::Tensor naclip_neighbourhood_bias(int64_t grid_h, int64_t grid_w, double sigma, const at::TensorOptions& options) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  const at::Tensor idx = torch::arange(grid_h * grid_w, torch::TensorOptions().dtype(torch::kLong));
  const at::Tensor r = at::floor_divide(idx, grid_w).to(torch::kFloat), c = at::remainder(idx, grid_w).to(torch::kFloat);
  const at::Tensor d2 = (r.unsqueeze(1) - r.unsqueeze(0)).pow(2) + (c.unsqueeze(1) - c.unsqueeze(0)).pow(2);
  at::Tensor omega = torch::zeros({1 + grid_h * grid_w, 1 + grid_h * grid_w}, f32);
  // Patches only: the CLS row and column stay 0, as NACLIP's window code leaves them.
  omega.slice(0, 1).slice(1, 1).copy_(torch::exp(-d2 / (2.0 * sigma * sigma)));
  return omega.to(options);
}

at::Tensor self_attention_mask(int64_t tokens, const at::TensorOptions& options) {
  return (1 - torch::eye(tokens, options)) * -100.0;
}

at::Tensor run_last_block(const ResidualAttentionBlock& block, const LastBlock& spec, const at::Tensor& x,
                          int64_t grid_h, int64_t grid_w, at::Tensor* head_avg_attn, const at::Tensor& attn_mask) {
  if (x.size(1) != 1 + grid_h * grid_w)
    throw Error("last block: " + std::to_string(x.size(1)) + " tokens for a " + std::to_string(grid_h) + "x" +
                std::to_string(grid_w) + " grid");
  const bool standard_attention = spec.kind == LastBlockKind::Standard || spec.kind == LastBlockKind::SelfMasked;
  if ((head_avg_attn || attn_mask.defined()) && !standard_attention)
    throw Error("last block: attention maps and masks exist only for the standard and self-masked blocks");
  switch (spec.kind) {
    case LastBlockKind::Standard: return block.forward(x, attn_mask, head_avg_attn);
    case LastBlockKind::SelfMasked: {
      // (1 − I)·(−100): every off-diagonal score −100, i.e. self-attention only
      // (TagCLIP replaces any other mask with this one in its last block).
      // The map handed out is the UNMASKED one: the official attention module
      // returns the pre-mask softmax as its weights whenever a float mask is
      // given, so TagCLIP's vote sees this block's normal attention
      // (segment-spec §5, quirk a).
      const at::Tensor h = block.ln1(x);
      if (head_avg_attn) *head_avg_attn = block.attention_weights(h);
      const at::Tensor y = x + block.attention(h, self_attention_mask(x.size(1), x.options()), nullptr);
      return y + block.mlp_branch(y);
    }
    case LastBlockKind::ValuePath:
    case LastBlockKind::ValueOnly: {
      // MaskCLIP: the value of each token, projected as attention's output
      // would be; no token mixing at all (segment-spec §1).
      const at::Tensor v = block.project_heads(block.qkv(block.ln1(x))[2]);
      if (spec.kind == LastBlockKind::ValueOnly) return v;
      const at::Tensor y = v + x;
      return y + block.mlp_branch(y);
    }
    case LastBlockKind::NeighbourAware: {
      const at::Tensor qkv = block.qkv(block.ln1(x));
      const at::Tensor& k = qkv[1];
      const double scale = 1.0 / std::sqrt(static_cast<double>(k.size(-1)));
      // NACLIP computes k·kᵀ first and scales after (their custom_attn).
      at::Tensor scores = at::matmul(k, k.transpose(-2, -1)) * scale;
      scores = scores + naclip_neighbourhood_bias(grid_h, grid_w, spec.gaussian_std, scores.options());
      const bool low_precision = scores.scalar_type() != at::kFloat && scores.scalar_type() != at::kDouble;
      const at::Tensor probs =
          low_precision ? at::softmax(scores, -1, at::kFloat).to(scores.scalar_type()) : at::softmax(scores, -1);
      return block.project_heads(at::matmul(probs, qkv[2]));
    }
  }
  throw Error("unknown last-block kind");
}

}  // namespace clipes

// LastBlock — how a method runs CLIP's last vision block, and which inner
// tensors it taps on the way. This is the one place the methods differ inside
// the network; everything else (embedding, trunk, ln_post, proj) is shared.
//
//   Standard        x + MHA(ln_1 x), then + MLP(ln_2 ·): CLIP itself, and the
//                   path CLIP-ES takes its gradients in (clip-es spec §5).
//   ValuePath       MaskCLIP (segment-spec §1): attention dropped, residual
//                   and FFN kept: v = out_proj(v(ln_1 x)) + x; v + MLP(ln_2 v).
//   ValueOnly       MaskCLIP as some papers run it: out_proj(v(ln_1 x)) alone.
//   NeighbourAware  NACLIP (segment-spec §2): out_proj(softmax(k·kᵀ/√d + Ω)·v),
//                   Ω a Gaussian over the patch grid; no residual, no FFN.
//   SelfMasked      TagCLIP (segment-spec §5): the standard block with the
//                   additive attention mask (1 − I)·(−100), so each token
//                   attends (almost) only to itself; residual and FFN kept.
//
// Like pytorch-grad-cam separates the CAM method from the target, a method
// here is a LastBlock value plus its own head on the features; no method has
// its own copy of the block forward.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace clipes {

class ResidualAttentionBlock;

enum class LastBlockKind { Standard, ValuePath, ValueOnly, NeighbourAware, SelfMasked };
std::string to_string(LastBlockKind kind);

struct LastBlock {
  LastBlockKind kind = LastBlockKind::Standard;
  double gaussian_std = 5.0;  // NACLIP's σ of Ω, in patches
};

// How the 14×14 (native grid) position embedding is resized to an h×w grid.
// Each method's official code does it its own way, and the differences reach
// 0.04 on the fixtures, so each is reproduced (segment-spec fixture README).
enum class PositionResize {
  Bilinear,         // CLIP-ES: bilinear to (h, w), align_corners=false (clip-es spec §3.5)
  BicubicToSize,    // MaskCLIP / CLIP-DINOiser: mmseg resize, bicubic A=−0.75 to (h, w)
  BicubicNaclip,    // NACLIP: bicubic with scale factors ((h+0.1)/g, (w+0.1)/g), not recomputed
};

// Runs `block` as `spec` says on x [B, L, D] (CLS first, L = 1 + h·w).
// Returns [B, L, D]; CLS row included (its value is only meaningful for
// Standard and SelfMasked). head_avg_attn receives the block's head-averaged
// attention and attn_mask (additive [L, L]) masks it, for Standard and
// SelfMasked only. SelfMasked uses its own mask instead, and hands out the
// attention WITHOUT that mask (official TagCLIP's weights, segment-spec §5 a).
at::Tensor run_last_block(const ResidualAttentionBlock& block, const LastBlock& spec, const at::Tensor& x,
                          int64_t grid_h, int64_t grid_w, at::Tensor* head_avg_attn = nullptr,
                          const at::Tensor& attn_mask = {});

// TagCLIP's last-block mask (1 − I)·(−100) over L tokens: every off-diagonal
// score −100, i.e. each token attends (almost) only to itself (segment-spec §5).
at::Tensor self_attention_mask(int64_t tokens, const at::TensorOptions& options);

// NACLIP's Ω as a [1 + h·w, 1 + h·w] additive attention bias: exp(−d²/(2σ²))
// between patches, 0 on the CLS row and column (segment-spec §2).
at::Tensor naclip_neighbourhood_bias(int64_t grid_h, int64_t grid_w, double sigma, const at::TensorOptions& options);

// What a dense forward pass returns (ClipModel::dense_forward).
struct DenseForwardOptions {
  LastBlock last_block;
  PositionResize position = PositionResize::BicubicToSize;
  bool round_pos_to_fp16 = false;  // CLIP-ES parity only
  std::vector<int> ln2_taps;       // blocks whose ln_2 output to keep (CLIP-DINOiser: L−3); <0 counts from the end
  int keep_attention_from = -1;    // keep head-averaged attention of blocks >= this, the last included
                                   // when it is Standard or SelfMasked (TagCLIP); -1 = none
  // Additive [L, L] mask for every block's attention (TagCLIP's crop
  // re-scoring restricts the CLS row to a region); undefined = none.
  at::Tensor attention_mask;
};

struct DenseForward {
  at::Tensor patch_features;              // [B, h·w, E]: ln_post → proj of the patch tokens, NOT normalised
  at::Tensor cls_feature;                 // [B, E]: the same for the CLS token
  std::map<int, at::Tensor> ln2_taps;     // block index → [B, L, D]
  std::vector<at::Tensor> attention;      // head-averaged [B, L, L] of the kept blocks, in block order
  int64_t grid_h = 0, grid_w = 0;
};

}  // namespace clipes

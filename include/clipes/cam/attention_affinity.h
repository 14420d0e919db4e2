// Class-aware attention affinity, CAA (spec §6): refines grid CAMs by
// propagating them along the ViT's own attention, restricted to each class's
// box mask.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace clipes {

// Sinkhorn-style normalisation as the reference does it: `iterations` times
// S = S / column sums, then S = S / row sums (rows end up summing to 1).
at::Tensor sinkhorn_normalize(const at::Tensor& a, int iterations = 3);

class AttentionAffinity {
 public:
  // attention: head-averaged maps of the affinity blocks (5..12), each [L, L]
  // or [1, L, L] (SoftmaxGradCam keeps the batch dimension), L = 1 + grid_h·grid_w.
  // Builds the symmetrised Sinkhorn matrix once, on the maps' device:
  //   Aff = mean of the maps without the CLS row/column; Sinkhorn 3×;
  //   S = (S + Sᵀ)/2 (the reference then squares it: see transition()).
  // In float64: refine() min-max normalises S²·(B⊙cam), whose range can be as
  // small as 1e-5, so float32 rounding alone moved refined CAMs by up to 2e-3
  // against the reference on coco6 (measured); float64 keeps us at fp16 level.
  AttentionAffinity(const std::vector<at::Tensor>& attention, int grid_h, int grid_w);
  // The same from the maps' running sum [L, L] (float64) and their count, as
  // the trunk hands it out (engine/vit_engine.h, TrunkTaps::attention_sum_only).
  AttentionAffinity(const at::Tensor& attention_sum, int count, int grid_h, int grid_w);

  // The reference's transition matrix S·S [n, n] float64 (formed on demand:
  // refine() never builds it).
  at::Tensor transition() const;

  // cams: [K, h, w] unrefined grid CAMs (any device). Returns [K, h, w] float32
  // on S's device: r_c = S²·(B_c ⊙ cam_c) for all K at once, computed as S·(S·X),
  // each then min-max normalised with eps 1e-7. B_c = box_mask(cam_c, θ).
  at::Tensor refine(const at::Tensor& cams, double box_threshold) const;

  int grid_h() const { return grid_h_; }
  int grid_w() const { return grid_w_; }

 private:
  at::Tensor symmetric_;  // (Sinkhorn(Aff) + its transpose) / 2, float64
  int grid_h_ = 0, grid_w_ = 0;
};

}  // namespace clipes

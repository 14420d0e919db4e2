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
  // Builds S once, in float32, on the maps' device:
  //   Aff = mean of the maps without the CLS row/column; Sinkhorn 3×;
  //   S = (S + Sᵀ)/2; S = S·S.
  AttentionAffinity(const std::vector<at::Tensor>& attention, int grid_h, int grid_w);

  const at::Tensor& transition() const { return transition_; }  // S [n, n] float32

  // cams: [K, h, w] unrefined grid CAMs (any device). Returns [K, h, w] float32
  // on S's device: r_c = S·(B_c ⊙ cam_c) for all K as one (n×n)·(n×K) product,
  // each then min-max normalised with eps 1e-7. B_c = box_mask(cam_c, θ).
  at::Tensor refine(const at::Tensor& cams, double box_threshold) const;

  int grid_h() const { return grid_h_; }
  int grid_w() const { return grid_w_; }

 private:
  at::Tensor transition_;
  int grid_h_ = 0, grid_w_ = 0;
};

}  // namespace clipes

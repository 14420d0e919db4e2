// CLIP-DINOiser's two heads and its guided pooling (segment-spec §3; the
// fixture README gives the exact tap and normalisations).
//
// The heads read the ln_2 output of block L−3 (CLS dropped, [D, h, w]):
//   obj_proj     Conv 3×3 D→256, replicate padding, on the raw tap; its
//                normalised output gives patch-to-patch correlations;
//   bkg_decoder  Conv 1×1 D→1 on the L2-normalised tap; sigmoid = objectness.
// GuidedPooling replaces each MaskCLIP feature by the correlation-weighted
// mean of all of them, which is what makes the masks follow object extents.
#pragma once
#include <string>

#include <ATen/core/Tensor.h>

#include "clipes/util/l2_normalize.h"  // the heads' projections are unit vectors (eps 1e-12)

namespace clipes {

class DinoiserHeads {
 public:
  // Reads CLIP-DINOiser's released heads file (torch.save({'epoch',
  // 'model_state_dict'}); also a bare state dict) and checks every tensor's
  // shape against the backbone width. Errors are one line naming the file.
  static DinoiserHeads load(const std::string& path, int backbone_width);

  // tap: [D, h, w] float32 (the ln_2 output, not normalised) → [K, h, w] normalised projections.
  at::Tensor project(const at::Tensor& tap) const;
  // tap: [D, h, w] → objectness in (0, 1), [h, w].
  at::Tensor objectness(const at::Tensor& tap) const;

  int width() const { return width_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int width_ = 0;
  at::Tensor obj_weight_, obj_bias_, bkg_weight_, bkg_bias_;
};

struct GuidedPoolingOptions {
  double correlation_threshold = 0.2;  // corr < this counts as 0
};

// projections: [K, h, w] unit vectors per patch; features: [E, h, w].
// → [E, h, w], feature_n = Σ_m c[n,m]·feature_m / (Σ_m c[n,m] + 1e-6).
at::Tensor guided_pooling(const at::Tensor& projections, const at::Tensor& features,
                          const GuidedPoolingOptions& options = {});

}  // namespace clipes

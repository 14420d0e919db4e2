// Unit vectors: the one L2 normalisation every method shares.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace clipes {

// x / ‖x‖₂ along `dim`. eps = 0 divides by the norm itself, as CLIP's own
// code does (`x / x.norm(dim=-1, keepdim=True)`); eps > 0 floors the norm
// first, as torch.nn.functional.normalize does (1e-12, CLIP-DINOiser). They
// differ only for a vector of norm below eps; each caller keeps the form its
// official code uses, so results stay bit-identical.
at::Tensor l2_normalize(const at::Tensor& x, int64_t dim = -1, double eps = 0.0);

}  // namespace clipes

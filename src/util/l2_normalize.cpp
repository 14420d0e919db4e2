#include "clipes/util/l2_normalize.h"

#include <ATen/ATen.h>

namespace clipes {

at::Tensor l2_normalize(const at::Tensor& x, int64_t dim, double eps) {
  const at::Tensor norm = x.norm(2, dim, /*keepdim=*/true);
  return eps > 0 ? x / norm.clamp_min(eps) : x / norm;
}

}  // namespace clipes

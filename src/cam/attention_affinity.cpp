#include "clipes/cam/attention_affinity.h"

#include <torch/torch.h>

#include <string>

#include "clipes/cam/box_mask.h"
#include "clipes/util/error.h"

namespace clipes {

at::Tensor sinkhorn_normalize(const at::Tensor& a, int iterations) {
  at::Tensor s = a;
  for (int i = 0; i < iterations; ++i) {
    s = s / s.sum(0, true);  // columns first, as the reference
    s = s / s.sum(1, true);
  }
  return s;
}

namespace {

// The maps' float64 sum [L, L], each checked to be [L, L] for the grid.
at::Tensor sum_of_maps(const std::vector<at::Tensor>& attention, int grid_h, int grid_w) {
  if (attention.empty()) throw Error("attention affinity: no attention maps");
  const int64_t l = static_cast<int64_t>(grid_h) * grid_w + 1;
  at::Tensor sum;
  for (size_t i = 0; i < attention.size(); ++i) {
    const at::Tensor& a = attention[i];
    const bool ok = (a.dim() == 2 || (a.dim() == 3 && a.size(0) == 1)) && a.size(-1) == l && a.size(-2) == l;
    if (!ok)
      throw Error("attention affinity: attention map " + std::to_string(i) + " is not [" + std::to_string(l) +
                  ", " + std::to_string(l) + "] for a " + std::to_string(grid_h) + "x" + std::to_string(grid_w) +
                  " grid");
    const at::Tensor map = a.detach().reshape({l, l}).to(torch::kDouble);
    sum = sum.defined() ? sum + map : map.clone();
  }
  return sum;
}

}  // namespace

AttentionAffinity::AttentionAffinity(const std::vector<at::Tensor>& attention, int grid_h, int grid_w)
    : AttentionAffinity(sum_of_maps(attention, grid_h, grid_w), static_cast<int>(attention.size()), grid_h,
                        grid_w) {}

AttentionAffinity::AttentionAffinity(const at::Tensor& attention_sum, int count, int grid_h, int grid_w)
    : grid_h_(grid_h), grid_w_(grid_w) {
  const int64_t l = static_cast<int64_t>(grid_h) * grid_w + 1;
  if (count <= 0 || !attention_sum.defined()) throw Error("attention affinity: no attention maps");
  if (attention_sum.numel() != l * l)
    throw Error("attention affinity: the attention sum is not [" + std::to_string(l) + ", " + std::to_string(l) +
                "] for a " + std::to_string(grid_h) + "x" + std::to_string(grid_w) + " grid");
  // CLS row and column dropped (spec §6).
  const at::Tensor patches = attention_sum.detach().reshape({l, l}).slice(0, 1).slice(1, 1).to(torch::kDouble);
  at::Tensor s = sinkhorn_normalize(patches / static_cast<double>(count), 3);
  symmetric_ = (s + s.t()) / 2;
}

at::Tensor AttentionAffinity::transition() const { return torch::matmul(symmetric_, symmetric_); }

at::Tensor AttentionAffinity::refine(const at::Tensor& cams, double box_threshold) const {
  if (cams.dim() != 3 || cams.size(1) != grid_h_ || cams.size(2) != grid_w_)
    throw Error("attention affinity: CAMs must be [K, " + std::to_string(grid_h_) + ", " +
                std::to_string(grid_w_) + "]");
  const int64_t k = cams.size(0), n = static_cast<int64_t>(grid_h_) * grid_w_;
  if (k == 0) return torch::zeros({0, grid_h_, grid_w_}, symmetric_.options().dtype(torch::kFloat));
  const at::Tensor cams_f = cams.detach().to(symmetric_.device(), torch::kFloat);
  std::vector<at::Tensor> masks;
  masks.reserve(k);
  for (int64_t c = 0; c < k; ++c) masks.push_back(box_mask(cams_f[c], box_threshold));
  // S·(B ⊙ cam): the box mask zeroes COLUMNS of S (spec §6); all K at once.
  const at::Tensor masked = (torch::stack(masks) * cams_f).reshape({k, n}).t().to(torch::kDouble);  // [n, K]
  // S²·X as S·(S·X): 4n²K operations instead of the 2n³ of forming S².
  at::Tensor r = torch::matmul(symmetric_, torch::matmul(symmetric_, masked)).t();  // [K, n]
  r = r - std::get<0>(r.min(1, true));
  r = r / (std::get<0>(r.max(1, true)) + 1e-7);
  return r.reshape({k, grid_h_, grid_w_}).to(torch::kFloat).contiguous();
}

}  // namespace clipes

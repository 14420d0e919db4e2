#include "fused_attention.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "row_kernels.h"
#include "clipes/util/error.h"

namespace clipes::engine {
namespace {

// Query rows per task. 32–128 measured within 3 % of each other at L = 1201
// (22–24 ms per block, 2 threads); 64 keeps a tile's scores (64·L floats,
// 300 KB at L = 1201) in L2 and still gives 19 tasks for 2 threads.
constexpr int64_t kQueryTile = 64;

void check(dnnl_status_t status) {
  if (status != dnnl_success) throw Error("engine: oneDNN sgemm failed (status " + std::to_string(status) + ")");
}

}  // namespace

void fused_attention(const AttentionIo& io) {
  const int64_t l = io.tokens, d = io.width, h_count = io.heads, hd = d / h_count, ld = 3 * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Kᵀ per head, [H, hd, L]: the score product then streams over contiguous
  // keys (measured 4 % faster than the transposed-operand sgemm on strided k).
  std::vector<float> keys_t(static_cast<size_t>(d) * l);
  const float* key_src = io.qkv + d;
#pragma omp parallel for
  for (int64_t h = 0; h < h_count; ++h)
    for (int64_t i = 0; i < l; ++i)
      for (int64_t c = 0; c < hd; ++c) keys_t[(h * hd + c) * l + i] = key_src[i * ld + h * hd + c];

  const int64_t tiles = (l + kQueryTile - 1) / kQueryTile;
  const bool want_mean = io.head_mean_sum || io.head_mean;
  bool failed = false;
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(kQueryTile) * l);
    std::vector<float> mean(want_mean ? static_cast<size_t>(kQueryTile) * l : 0);
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t r0 = t * kQueryTile, rows = std::min(kQueryTile, l - r0);
      if (want_mean) std::fill(mean.begin(), mean.begin() + rows * l, 0.0f);
      for (int64_t h = 0; h < h_count; ++h) {
        // Scale folded into the product (PyTorch scales q first; the two differ by rounding only).
        const float* q = io.qkv + r0 * ld + (io.key_key ? d : 0) + h * hd;
        if (dnnl_sgemm('N', 'N', rows, l, hd, scale, q, ld, keys_t.data() + h * hd * l, l, 0.0f, scores.data(), l) !=
            dnnl_success)
          failed = true;
        for (int64_t r = 0; r < rows; ++r) {
          float* row = scores.data() + r * l;
          softmax_row(row, io.bias ? io.bias + (r0 + r) * l : nullptr, l);
          if (want_mean) add_row(mean.data() + r * l, row, l);
        }
        if (io.probabilities)
          std::memcpy(io.probabilities + (h * l + r0) * l, scores.data(), sizeof(float) * rows * l);
        if (dnnl_sgemm('N', 'N', rows, hd, l, 1.0f, scores.data(), l, io.qkv + 2 * d + h * hd, ld, 0.0f,
                       io.out + r0 * d + h * hd, d) != dnnl_success)
          failed = true;
      }
      if (want_mean) {
        const float inv_heads = 1.0f / static_cast<float>(h_count);
        for (int64_t r = 0; r < rows; ++r) {
          const float* m = mean.data() + r * l;
          if (io.head_mean_sum) add_row_scaled(io.head_mean_sum + (r0 + r) * l, m, inv_heads, l);
          if (io.head_mean)
            for (int64_t j = 0; j < l; ++j) io.head_mean[(r0 + r) * l + j] = m[j] * inv_heads;
        }
      }
    }
  }
  if (failed) check(dnnl_runtime_error);
}

}  // namespace clipes::engine

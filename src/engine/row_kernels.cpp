#include "row_kernels.h"

#include <cmath>
#include <cstring>

// Each kernel is compiled three times and dispatched on the CPU at load time.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define CLIPES_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLIPES_VECTOR_CLONES
#endif

namespace clipes::engine {
namespace {

// exp(x) for the softmax (x ≤ 0 after the max is subtracted): x = n·ln2 + r,
// 2^n from the exponent bits, e^r by Cephes' degree-6 polynomial. Relative
// error ≤ 1e-7 over [−87, 0] (measured 8.1e-8), branch-free so the loop
// vectorises; std::exp does not, and the softmax over 12·L² scores per block
// was the largest non-matmul cost of the trunk.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504088896341f + 12582912.0f;  // 1.5·2^23: rounds to an integer in the low bits
  const float n = t - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = __builtin_bit_cast(int32_t, t);
  const int32_t e = (bits - 0x4B400000 + 127) << 23;
  return p * __builtin_bit_cast(float, e);
}

}  // namespace

CLIPES_VECTOR_CLONES
void float_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = __builtin_bit_cast(uint32_t, src[i]);
    u += 0x7FFFu + ((u >> 16) & 1u);
    dst[i] = static_cast<uint16_t>(u >> 16);
  }
}

CLIPES_VECTOR_CLONES
void bf16_to_float(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = __builtin_bit_cast(float, static_cast<uint32_t>(src[i]) << 16);
}

CLIPES_VECTOR_CLONES
void layer_norm_row(const float* x, const float* gamma, const float* beta, int64_t d, float eps, float* y_f32,
                    uint16_t* y_bf16, float* mean_out, float* rstd_out) {
  // Two passes over a row in L1: mean, then the centred variance (as ATen's
  // CPU LayerNorm, which is also two-pass in float).
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < d; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(d);
  float sq = 0;
#pragma omp simd reduction(+ : sq)
  for (int64_t i = 0; i < d; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(d) + eps);
  if (mean_out) *mean_out = mean;
  if (rstd_out) *rstd_out = rstd;
  if (y_f32) {
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) y_f32[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) {
      uint32_t u = __builtin_bit_cast(uint32_t, (x[i] - mean) * rstd * gamma[i] + beta[i]);
      u += 0x7FFFu + ((u >> 16) & 1u);
      y_bf16[i] = static_cast<uint16_t>(u >> 16);
    }
  }
}

CLIPES_VECTOR_CLONES
void softmax_row(float* row, const float* bias, int64_t n) {
  if (bias) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
  }
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    const float e = exp_nonpositive(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
}

CLIPES_VECTOR_CLONES
void add_row(float* acc, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) acc[j] += x[j];
}

CLIPES_VECTOR_CLONES
void add_row_scaled(double* acc, const float* x, float scale, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(x[j] * scale);
}

}  // namespace clipes::engine

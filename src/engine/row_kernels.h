// Row kernels of the CPU engine: the elementwise work between matmuls, one
// pass over each row while it is in L1 (LayerNorm, softmax, bf16 rounding).
//
// Written as plain loops the compiler vectorises: every function is compiled
// for AVX-512, AVX2 and baseline x86-64 and picked at load time (GCC
// target_clones), so one binary runs on any x86-64 and uses the widest
// vectors there. Private to src/engine.
#pragma once
#include <cstdint>

namespace clipes::engine {

// round-to-nearest-even float → bfloat16 bits, as c10::BFloat16 rounds.
void float_to_bf16(const float* src, uint16_t* dst, int64_t n);
void bf16_to_float(const uint16_t* src, float* dst, int64_t n);

// y = (x − mean)·rstd·gamma + beta over one row of d floats, rstd =
// 1/√(var + eps) (eps 1e-5 in OpenAI's LayerNorm, 1e-6 in timm's ViTs). Writes float (y_f32) or bf16 bits (y_bf16), whichever
// is non-null; mean_out/rstd_out (may be null) receive the row statistics the
// hand-written backward needs.
void layer_norm_row(const float* x, const float* gamma, const float* beta, int64_t d, float eps, float* y_f32,
                    uint16_t* y_bf16, float* mean_out, float* rstd_out);

// row[j] = softmax_j(row + bias) in place over n scores; bias may be null.
void softmax_row(float* row, const float* bias, int64_t n);

// acc[j] += x[j] for n floats.
void add_row(float* acc, const float* x, int64_t n);
// acc[j] += scale·x[j], accumulating floats into doubles.
void add_row_scaled(double* acc, const float* x, float scale, int64_t n);

}  // namespace clipes::engine

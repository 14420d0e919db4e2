// PackedLinear — y = act(x·Wᵀ + b) (+ y when accumulating) as one oneDNN
// matmul: bias, activation and the residual add are post-ops, so nothing
// elementwise makes its own pass over memory. Private to src/engine.
//
// Weights: fp32 runs straight on the model's own [out, in] tensor (oneDNN's
// plain "ba" layout, no copy: measured 7 % slower than a blocked layout, but a
// second copy of ViT-B's 86 M vision weights would cost 344 MB); bf16 weights
// are converted once into the blocked layout oneDNN asks for, which the
// conversion needs anyway. Primitives are created once per row count and kept.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

namespace clipes::engine {

enum class LinearType { F32, BF16 };  // operand type of src and weights (accumulation is fp32)
enum class PostActivation { None, QuickGelu, Gelu };

class PackedLinear {
 public:
  // weight [out, in] (or [in, out] with transposed = true: the backward's
  // products by Wᵀ) and bias [out] or undefined: any float type; kept alive
  // (fp32 runs on them).
  PackedLinear(const at::Tensor& weight, const at::Tensor& bias, LinearType type, PostActivation activation,
               bool transposed = false);
  ~PackedLinear();
  PackedLinear(PackedLinear&&) noexcept;

  // src: [m, in] of the operand type, rows contiguous; dst: [m, out] float32
  // (dst_bf16 = false) or bf16 bits. accumulate: dst += result (residual).
  void run(const void* src, int64_t m, void* dst, bool dst_bf16, bool accumulate) const;

  int64_t in_features() const;
  int64_t out_features() const;
  LinearType type() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Best fp32 / bf16 matmul throughput of oneDNN on this machine, GFLOP/s, for
// an n×n×n product (the figure `clipes bench` divides by).
double measure_onednn_matmul_gflops(LinearType type, int n);

}  // namespace clipes::engine

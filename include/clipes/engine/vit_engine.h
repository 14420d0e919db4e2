// VitEngine — CLIP's vision transformer blocks on the CPU without LibTorch's
// op-by-op round trips (docs/performance.md). Per block and image:
//
//   ln_1 (vectorised row kernel) → in_proj (oneDNN matmul, bias post-op)
//   → fused attention (score rows, softmax, P·V per query tile in L2; the
//     head-averaged maps only where asked, straight into a running sum)
//   → out_proj with the residual add as a post-op
//   → ln_2 → c_fc with QuickGELU/GELU as a post-op → c_proj with the residual add.
//
// The residual stream stays float32 in every precision; in bf16 the matmul
// operands are bf16 with fp32 accumulation, attention and softmax fp32.
// LibTorch's blocks (model/residual_attention_block.h) remain the reference
// path and the CUDA path; tests compare the two (tests/test_engine.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace clipes {

// Which implementation runs the vision blocks on the CPU (--engine).
enum class EngineKind { Reference, Fused };
EngineKind parse_engine(const std::string& text);  // "reference" | "fused"; throws clipes::Error
std::string to_string(EngineKind kind);

// What a trunk run hands out besides the tokens (ClipModel::run_trunk).
struct TrunkTaps {
  // Blocks with index >= attention_from give their head-averaged attention;
  // -1: none. attention_sum_only: one running sum over those blocks (what CAA
  // needs, spec §6) instead of one [L, L] map per block.
  int attention_from = -1;
  bool attention_sum_only = false;
  std::vector<int> ln2_taps;  // absolute block indices whose ln_2 output to keep
  at::Tensor attention_mask;  // additive [L, L] score bias for every block, or undefined
};

struct TrunkOutput {
  at::Tensor x;                       // [B, L, D]
  std::vector<at::Tensor> attention;  // per kept block [B, L, L] float32 (unless sum only)
  at::Tensor attention_sum;           // [B, L, L] float64 sum of the kept maps (sum only)
  int attention_count = 0;            // how many maps are in attention_sum
  std::map<int, at::Tensor> ln2;      // block → [B, L, D]
};

enum class EngineActivation { QuickGelu, Gelu };

// One block's canonical tensors (OpenAI names, [out, in] linears), any float type.
struct EngineBlockWeights {
  at::Tensor ln_1_weight, ln_1_bias, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias;
  at::Tensor ln_2_weight, ln_2_bias, c_fc_weight, c_fc_bias, c_proj_weight, c_proj_bias;
};

// Everything the hand-written backward of the last block needs (one image,
// float32, engine/last_block_gradient.h).
struct SavedBlockForward {
  at::Tensor input;         // [L, D] x, the block's input
  at::Tensor ln1;           // [L, D] A = ln_1(x): GradCAM's activations
  at::Tensor qkv;           // [L, 3D] q | k | v (q unscaled)
  at::Tensor probabilities; // [H, L, L]
  at::Tensor heads_out;     // [L, D] P·V, heads concatenated
  at::Tensor mid;           // [L, D] y = x + out_proj(heads_out)
  at::Tensor ln2_mean, ln2_rstd;  // [L]
  at::Tensor fc_pre;        // [L, 4D] c_fc(ln_2 y) before the activation
  at::Tensor output;        // [L, D] y + c_proj(act(fc_pre))
  at::Tensor head_mean;     // [L, L] head-averaged attention
};

// oneDNN's best n×n×n matmul throughput on this machine (the engine's
// products), GFLOP/s: fp32 or bf16 operands with fp32 accumulation.
double measure_engine_matmul_gflops(bool bf16, int n = 1536);

class VitEngine {
 public:
  // blocks: the vision blocks in order. bf16: matmul operands in bf16 for the
  // blocks before the last; the last block always also gets a float32 copy
  // for forward_saved (CLIP-ES takes its gradients there, in float32).
  // ln_eps: the LayerNorms' epsilon (OpenAI's CLIP 1e-5; timm's ViTs, which
  // LSeg's trunk is, 1e-6: lseg-spec §2).
  VitEngine(const std::vector<EngineBlockWeights>& blocks, const EngineBlockWeights& last_block_fp32, int heads,
            EngineActivation activation, bool bf16, float ln_eps = 1e-5f);
  ~VitEngine();

  int layers() const;
  int heads() const;
  bool bf16() const;

  // Runs blocks [begin, end) on x [B, L, D] (any float type, CPU). Returns the
  // tokens as float32 and what taps asks for.
  TrunkOutput run(const at::Tensor& x, int begin, int end, const TrunkTaps& taps) const;

  // The last block (float32 weights) on one image's x [L, D], keeping what
  // its backward needs. attention_mask: additive [L, L] or undefined.
  SavedBlockForward forward_saved(const at::Tensor& x, const at::Tensor& attention_mask = {}) const;

  // The backward of the last block, by hand and batched over K upstream
  // gradients (docs/last-block-backward.md): given grad_out [K, L, D] =
  // ∂s_k/∂(block output), returns [K, D] = Σ over the patch tokens (rows
  // 1..L−1) of ∂s_k/∂A_t, A = ln_1(x). Only that patch sum is ever needed
  // (spec §5: GradCAM averages the gradient over the patches), which turns
  // most of the attention backward into token sums: per label ≈ 18·L·D² +
  // 2·L²·D instead of autograd's 24·L·D² + 8·L²·D.
  at::Tensor last_block_patch_gradient(const SavedBlockForward& saved, const at::Tensor& grad_out) const;

  // Times one block (block 0, random tokens) op by op: [(op, median ms)] over
  // `runs` runs after one warm-up, for `clipes bench --ops`.
  std::vector<std::pair<std::string, double>> time_block_ops(int64_t tokens, int runs) const;

  // The float32 weights forward_saved used.
  const EngineBlockWeights& last_block_fp32() const;
  EngineActivation activation() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipes

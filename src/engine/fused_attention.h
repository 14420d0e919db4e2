// FusedAttention — multi-head softmax attention over one image's tokens
// without writing the H·L² scores to memory (spec §5 needs only their head
// average, and only for the affinity blocks).
//
// For each tile of query rows (one thread each) and each head: the score rows
// S = s·Q·Kᵀ (+ an additive bias), a vectorised softmax, P·V, all while the
// tile's rows (tile·L floats) sit in L2. A full score row fits in cache for
// every L clipes runs (≤ 2501 tokens), so no online (flash) softmax is
// needed: one exact softmax per row, like the reference. Private to src/engine.
#pragma once
#include <cstdint>

namespace clipes::engine {

struct AttentionIo {
  const float* qkv = nullptr;  // [L, 3D]: q | k | v, heads contiguous inside each (in_proj's output)
  int64_t tokens = 0, width = 0;
  int heads = 0;
  bool key_key = false;         // scores from k·kᵀ instead of q·kᵀ (NACLIP, segment-spec §2)
  const float* bias = nullptr;  // additive [L, L] score bias, or null (masks, NACLIP's Ω)
  float* out = nullptr;         // [L, D] head outputs, heads concatenated (out_proj's input)
  // Optional: += the head-averaged probabilities [L, L] (CAA's running sum, in
  // double as AttentionAffinity sums them), or = them in float ([L, L]).
  double* head_mean_sum = nullptr;
  float* head_mean = nullptr;
  // Optional: every head's probabilities [H, L, L] (the last block's backward).
  float* probabilities = nullptr;
};

void fused_attention(const AttentionIo& io);

}  // namespace clipes::engine

#include "clipes/engine/vit_engine.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <cstring>

#include "clipes/util/error.h"
#include "fused_attention.h"
#include "packed_linear.h"
#include "row_kernels.h"

namespace clipes {

EngineKind parse_engine(const std::string& text) {
  if (text == "fused") return EngineKind::Fused;
  if (text == "reference") return EngineKind::Reference;
  throw Error("engine '" + text + "': expected fused or reference");
}

std::string to_string(EngineKind kind) { return kind == EngineKind::Fused ? "fused" : "reference"; }

double measure_engine_matmul_gflops(bool bf16, int n) {
  omp_set_num_threads(at::get_num_threads());
  return engine::measure_onednn_matmul_gflops(bf16 ? engine::LinearType::BF16 : engine::LinearType::F32, n);
}

using engine::LinearType;
using engine::PackedLinear;
using engine::PostActivation;

namespace {

// One block's products and LayerNorm parameters, ready to run.
struct PackedBlock {
  at::Tensor ln_1_weight, ln_1_bias, ln_2_weight, ln_2_bias;  // float32
  PackedLinear in_proj, out_proj, c_fc, c_proj;
  PackedBlock(const EngineBlockWeights& w, LinearType type, PostActivation act)
      : ln_1_weight(w.ln_1_weight.to(at::kFloat).contiguous()),
        ln_1_bias(w.ln_1_bias.to(at::kFloat).contiguous()),
        ln_2_weight(w.ln_2_weight.to(at::kFloat).contiguous()),
        ln_2_bias(w.ln_2_bias.to(at::kFloat).contiguous()),
        in_proj(w.in_proj_weight, w.in_proj_bias, type, PostActivation::None),
        out_proj(w.out_proj_weight, w.out_proj_bias, type, PostActivation::None),
        c_fc(w.c_fc_weight, w.c_fc_bias, type, act),
        c_proj(w.c_proj_weight, w.c_proj_bias, type, PostActivation::None) {}
};

// Working memory of one image through one block (allocated once per run).
struct Buffers {
  Buffers(int64_t l, int64_t d, bool bf16) {
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    const auto operand = at::TensorOptions().dtype(bf16 ? at::kBFloat16 : at::kFloat);
    h = at::empty({l, d}, operand);
    qkv = at::empty({l, 3 * d}, f32);
    heads = at::empty({l, d}, f32);
    if (bf16) heads_operand = at::empty({l, d}, operand);
    hidden = at::empty({l, 4 * d}, operand);
  }
  at::Tensor h;       // [L, D] LayerNorm output, operand type
  at::Tensor qkv;     // [L, 3D] float32
  at::Tensor heads;   // [L, D] float32 attention output
  at::Tensor heads_operand;  // [L, D] bf16 copy of heads (bf16 only)
  at::Tensor hidden;  // [L, 4D] operand type
};

// Makes the calling thread's OpenMP team the size LibTorch was told
// (--threads): oneDNN and our kernels use the caller's OpenMP setting, and
// a pipeline thread would otherwise get one thread per core whatever the user
// asked, oversubscribing the cores (the "no oversubscription" rule).
void match_thread_count() { omp_set_num_threads(at::get_num_threads()); }

void layer_norm_rows(const float* x, int64_t rows, int64_t d, const at::Tensor& gamma, const at::Tensor& beta,
                     float eps, void* out, bool out_bf16, float* mean = nullptr, float* rstd = nullptr) {
  const float* g = gamma.data_ptr<float>();
  const float* b = beta.data_ptr<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    engine::layer_norm_row(x + r * d, g, b, d, eps, out_bf16 ? nullptr : static_cast<float*>(out) + r * d,
                           out_bf16 ? static_cast<uint16_t*>(out) + r * d : nullptr, mean ? mean + r : nullptr,
                           rstd ? rstd + r : nullptr);
}

void to_bf16_parallel(const float* src, uint16_t* dst, int64_t n) {
  const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += chunk) engine::float_to_bf16(src + i, dst + i, std::min(chunk, n - i));
}

}  // namespace

struct VitEngine::Impl {
  std::vector<std::unique_ptr<PackedBlock>> blocks;
  std::unique_ptr<PackedBlock> last_fp32;        // bf16 only: the last block in float32
  std::unique_ptr<PackedLinear> last_c_fc_plain;  // float32 c_fc without the activation (backward needs its input)
  // The backward's products by Wᵀ (float32, on the same tensors: no copy).
  std::unique_ptr<PackedLinear> back_c_proj, back_c_fc, back_out_proj, back_in_proj;
  EngineBlockWeights last_weights;               // float32 tensors of the last block
  int heads = 0;
  float ln_eps = 1e-5f;
  EngineActivation activation = EngineActivation::QuickGelu;
  bool bf16 = false;
  int64_t width = 0;

  const PackedBlock& last_block_fp32() const { return last_fp32 ? *last_fp32 : *blocks.back(); }

  void run_block(const PackedBlock& b, float* x, int64_t l, Buffers& buf, bool operand_bf16, const float* bias,
                 double* head_mean_sum, float* head_mean, float* ln2_out) const {
    const int64_t d = width;
    layer_norm_rows(x, l, d, b.ln_1_weight, b.ln_1_bias, ln_eps, buf.h.data_ptr(), operand_bf16);
    b.in_proj.run(buf.h.data_ptr(), l, buf.qkv.data_ptr(), false, false);
    engine::AttentionIo io;
    io.qkv = buf.qkv.data_ptr<float>();
    io.tokens = l;
    io.width = d;
    io.heads = heads;
    io.bias = bias;
    io.out = buf.heads.data_ptr<float>();
    io.head_mean_sum = head_mean_sum;
    io.head_mean = head_mean;
    engine::fused_attention(io);
    const void* heads_src = buf.heads.data_ptr();
    if (operand_bf16) {
      to_bf16_parallel(buf.heads.data_ptr<float>(), static_cast<uint16_t*>(buf.heads_operand.data_ptr()), l * d);
      heads_src = buf.heads_operand.data_ptr();
    }
    b.out_proj.run(heads_src, l, x, false, /*accumulate=*/true);  // x += out_proj(attention)
    if (ln2_out) {
      layer_norm_rows(x, l, d, b.ln_2_weight, b.ln_2_bias, ln_eps, ln2_out, false);
      if (operand_bf16)
        to_bf16_parallel(ln2_out, static_cast<uint16_t*>(buf.h.data_ptr()), l * d);
      else
        std::memcpy(buf.h.data_ptr(), ln2_out, sizeof(float) * l * d);
    } else {
      layer_norm_rows(x, l, d, b.ln_2_weight, b.ln_2_bias, ln_eps, buf.h.data_ptr(), operand_bf16);
    }
    b.c_fc.run(buf.h.data_ptr(), l, buf.hidden.data_ptr(), operand_bf16, false);  // act(c_fc(·)) in one pass
    b.c_proj.run(buf.hidden.data_ptr(), l, x, false, /*accumulate=*/true);
  }
};

VitEngine::VitEngine(const std::vector<EngineBlockWeights>& blocks, const EngineBlockWeights& last_block_fp32,
                     int heads, EngineActivation activation, bool bf16, float ln_eps)
    : impl_(std::make_unique<Impl>()) {
  if (blocks.empty()) throw Error("engine: no blocks");
  impl_->heads = heads;
  impl_->ln_eps = ln_eps;
  impl_->activation = activation;
  impl_->bf16 = bf16;
  impl_->width = blocks.front().ln_1_weight.numel();
  if (impl_->width % heads) throw Error("engine: width is not a multiple of the head count");
  const PostActivation act = activation == EngineActivation::Gelu ? PostActivation::Gelu : PostActivation::QuickGelu;
  const LinearType type = bf16 ? LinearType::BF16 : LinearType::F32;
  for (const auto& w : blocks) {
    EngineBlockWeights cast = w;
    if (bf16) {  // bf16 operands: whatever the tensors' type, pack from bf16
      for (at::Tensor* t : {&cast.in_proj_weight, &cast.out_proj_weight, &cast.c_fc_weight, &cast.c_proj_weight})
        *t = t->to(at::kBFloat16).contiguous();
    }
    impl_->blocks.push_back(std::make_unique<PackedBlock>(cast, type, act));
  }
  impl_->last_weights = last_block_fp32;
  for (at::Tensor* t :
       {&impl_->last_weights.ln_1_weight, &impl_->last_weights.ln_1_bias, &impl_->last_weights.in_proj_weight,
        &impl_->last_weights.in_proj_bias, &impl_->last_weights.out_proj_weight, &impl_->last_weights.out_proj_bias,
        &impl_->last_weights.ln_2_weight, &impl_->last_weights.ln_2_bias, &impl_->last_weights.c_fc_weight,
        &impl_->last_weights.c_fc_bias, &impl_->last_weights.c_proj_weight, &impl_->last_weights.c_proj_bias})
    *t = t->to(at::kFloat).contiguous();
  if (bf16) impl_->last_fp32 = std::make_unique<PackedBlock>(impl_->last_weights, LinearType::F32, act);
  impl_->last_c_fc_plain = std::make_unique<PackedLinear>(impl_->last_weights.c_fc_weight,
                                                          impl_->last_weights.c_fc_bias, LinearType::F32,
                                                          PostActivation::None);
  const EngineBlockWeights& lw = impl_->last_weights;
  impl_->back_c_proj = std::make_unique<PackedLinear>(lw.c_proj_weight, at::Tensor(), LinearType::F32,
                                                      PostActivation::None, /*transposed=*/true);
  impl_->back_c_fc = std::make_unique<PackedLinear>(lw.c_fc_weight, at::Tensor(), LinearType::F32,
                                                    PostActivation::None, true);
  impl_->back_out_proj = std::make_unique<PackedLinear>(lw.out_proj_weight, at::Tensor(), LinearType::F32,
                                                        PostActivation::None, true);
  impl_->back_in_proj = std::make_unique<PackedLinear>(lw.in_proj_weight, at::Tensor(), LinearType::F32,
                                                       PostActivation::None, true);
}

VitEngine::~VitEngine() = default;
int VitEngine::layers() const { return static_cast<int>(impl_->blocks.size()); }
int VitEngine::heads() const { return impl_->heads; }
bool VitEngine::bf16() const { return impl_->bf16; }
const EngineBlockWeights& VitEngine::last_block_fp32() const { return impl_->last_weights; }
EngineActivation VitEngine::activation() const { return impl_->activation; }

std::vector<std::pair<std::string, double>> VitEngine::time_block_ops(int64_t l, int runs) const {
  match_thread_count();
  const PackedBlock& b = *impl_->blocks.front();
  const int64_t d = impl_->width;
  const bool bf16 = impl_->bf16;
  at::Tensor x = at::randn({l, d}, at::TensorOptions().dtype(at::kFloat));
  Buffers buf(l, d, bf16);
  float* xp = x.data_ptr<float>();
  using Clock = std::chrono::steady_clock;
  std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"ln_1", [&] { layer_norm_rows(xp, l, d, b.ln_1_weight, b.ln_1_bias, impl_->ln_eps, buf.h.data_ptr(), bf16); }},
      {"in_proj (q,k,v) + bias", [&] { b.in_proj.run(buf.h.data_ptr(), l, buf.qkv.data_ptr(), false, false); }},
      {"attention: QK^T, softmax, PV (fused)",
       [&] {
         engine::AttentionIo io;
         io.qkv = buf.qkv.data_ptr<float>();
         io.tokens = l, io.width = d, io.heads = impl_->heads;
         io.out = buf.heads.data_ptr<float>();
         engine::fused_attention(io);
         if (bf16)
           to_bf16_parallel(buf.heads.data_ptr<float>(), static_cast<uint16_t*>(buf.heads_operand.data_ptr()), l * d);
       }},
      {"out_proj + bias + residual",
       [&] { b.out_proj.run(bf16 ? buf.heads_operand.data_ptr() : buf.heads.data_ptr(), l, xp, false, true); }},
      {"ln_2", [&] { layer_norm_rows(xp, l, d, b.ln_2_weight, b.ln_2_bias, impl_->ln_eps, buf.h.data_ptr(), bf16); }},
      {"c_fc + bias + activation", [&] { b.c_fc.run(buf.h.data_ptr(), l, buf.hidden.data_ptr(), bf16, false); }},
      {"c_proj + bias + residual", [&] { b.c_proj.run(buf.hidden.data_ptr(), l, xp, false, true); }},
  };
  std::vector<std::pair<std::string, double>> out;
  std::vector<std::vector<double>> times(ops.size());
  for (int r = 0; r < runs + 1; ++r) {
    x.normal_();  // keep the residual stream bounded
    for (size_t i = 0; i < ops.size(); ++i) {
      const auto t = Clock::now();
      ops[i].second();
      if (r > 0) times[i].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    std::sort(times[i].begin(), times[i].end());
    out.emplace_back(ops[i].first, times[i].empty() ? 0 : times[i][times[i].size() / 2]);
  }
  return out;
}

TrunkOutput VitEngine::run(const at::Tensor& x_in, int begin, int end, const TrunkTaps& taps) const {
  if (x_in.dim() != 3 || x_in.size(2) != impl_->width || !x_in.device().is_cpu())
    throw Error("engine: tokens must be a [B, L, " + std::to_string(impl_->width) + "] CPU tensor");
  if (begin < 0 || end > layers() || begin > end) throw Error("engine: block range out of bounds");
  match_thread_count();
  const int64_t batch = x_in.size(0), l = x_in.size(1), d = impl_->width;
  TrunkOutput out;
  out.x = x_in.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();  // one copy, also from bf16
  at::Tensor bias;
  if (taps.attention_mask.defined()) {
    bias = taps.attention_mask.to(at::kFloat).contiguous();
    if (bias.numel() != l * l) throw Error("engine: attention mask is not [L, L]");
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  Buffers buf(l, d, impl_->bf16);
  const int first_kept = taps.attention_from < 0 ? end : std::max(begin, taps.attention_from);
  if (taps.attention_sum_only && first_kept < end) {
    out.attention_sum = at::zeros({batch, l, l}, at::TensorOptions().dtype(at::kDouble));
    out.attention_count = end - first_kept;
  }
  for (int i = begin; i < end; ++i) {
    const bool keep = i >= first_kept;
    at::Tensor map = keep && !taps.attention_sum_only ? at::empty({batch, l, l}, f32) : at::Tensor();
    const bool tap = std::find(taps.ln2_taps.begin(), taps.ln2_taps.end(), i) != taps.ln2_taps.end();
    at::Tensor ln2 = tap ? at::empty({batch, l, d}, f32) : at::Tensor();
    for (int64_t b = 0; b < batch; ++b) {
      impl_->run_block(*impl_->blocks[i], out.x.data_ptr<float>() + b * l * d, l, buf, impl_->bf16,
                       bias.defined() ? bias.data_ptr<float>() : nullptr,
                       keep && taps.attention_sum_only ? out.attention_sum.data_ptr<double>() + b * l * l : nullptr,
                       map.defined() ? map.data_ptr<float>() + b * l * l : nullptr,
                       tap ? ln2.data_ptr<float>() + b * l * d : nullptr);
    }
    if (map.defined()) out.attention.push_back(map);
    if (tap) out.ln2[i] = ln2;
  }
  return out;
}

SavedBlockForward VitEngine::forward_saved(const at::Tensor& x_in, const at::Tensor& attention_mask) const {
  if (x_in.dim() != 2 || x_in.size(1) != impl_->width) throw Error("engine: the last block takes [L, D] tokens");
  match_thread_count();
  const PackedBlock& b = impl_->last_block_fp32();
  const int64_t l = x_in.size(0), d = impl_->width;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  SavedBlockForward s;
  s.input = x_in.to(at::kFloat).contiguous();
  s.ln1 = at::empty({l, d}, f32);
  layer_norm_rows(s.input.data_ptr<float>(), l, d, b.ln_1_weight, b.ln_1_bias, impl_->ln_eps, s.ln1.data_ptr(), false);
  s.qkv = at::empty({l, 3 * d}, f32);
  b.in_proj.run(s.ln1.data_ptr(), l, s.qkv.data_ptr(), false, false);
  s.probabilities = at::empty({impl_->heads, l, l}, f32);
  s.heads_out = at::empty({l, d}, f32);
  s.head_mean = at::empty({l, l}, f32);
  at::Tensor bias = attention_mask.defined() ? attention_mask.to(at::kFloat).contiguous() : at::Tensor();
  engine::AttentionIo io;
  io.qkv = s.qkv.data_ptr<float>();
  io.tokens = l;
  io.width = d;
  io.heads = impl_->heads;
  io.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  io.out = s.heads_out.data_ptr<float>();
  io.head_mean = s.head_mean.data_ptr<float>();
  io.probabilities = s.probabilities.data_ptr<float>();
  engine::fused_attention(io);
  s.mid = s.input.clone();
  b.out_proj.run(s.heads_out.data_ptr(), l, s.mid.data_ptr(), false, true);
  at::Tensor h2 = at::empty({l, d}, f32);
  s.ln2_mean = at::empty({l}, f32);
  s.ln2_rstd = at::empty({l}, f32);
  layer_norm_rows(s.mid.data_ptr<float>(), l, d, b.ln_2_weight, b.ln_2_bias, impl_->ln_eps, h2.data_ptr(), false,
                  s.ln2_mean.data_ptr<float>(), s.ln2_rstd.data_ptr<float>());
  s.fc_pre = at::empty({l, 4 * d}, f32);
  impl_->last_c_fc_plain->run(h2.data_ptr(), l, s.fc_pre.data_ptr(), false, false);
  const at::Tensor hidden = (impl_->activation == EngineActivation::Gelu
                                 ? at::gelu(s.fc_pre)
                                 : s.fc_pre * at::sigmoid(s.fc_pre * 1.702))
                                .contiguous();
  s.output = s.mid.clone();
  b.c_proj.run(hidden.data_ptr(), l, s.output.data_ptr(), false, true);
  return s;
}

}  // namespace clipes

namespace clipes {

// The derivation, term by term, is docs/last-block-backward.md; the names
// below follow it. Per head h (subscripts dropped), s = 1/√d_h:
//   S = s·Q·Kᵀ, P = softmax(S), O = P·V, and dO from the out_proj backward;
//   r_t = dO_t·O_t;  dS_ti = P_ti·(dO_t·V_i − r_t)  (rows of dS sum to 0)
//   Σ_patch dV = Σ_t (1 − P_t0)·dO_t
//   Σ_patch dK = −Σ_t dS_t0 · s·Q_t
//   Σ_patch dQ = s·Σ_i (V_i·M_i − (Pᵀr)_i)·K_i,  M = P_patchᵀ·dO_patch (one product
//   per head for all K labels, with r appended as K extra columns).
at::Tensor VitEngine::last_block_patch_gradient(const SavedBlockForward& s, const at::Tensor& grad_out) const {
  const int64_t l = s.input.size(0), d = impl_->width, h_count = impl_->heads, hd = d / h_count;
  if (grad_out.dim() != 3 || grad_out.size(1) != l || grad_out.size(2) != d)
    throw Error("engine: the last block's output gradient must be [K, L, D]");
  match_thread_count();
  const int64_t k_all = grad_out.size(0);
  const EngineBlockWeights& w = impl_->last_weights;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  at::Tensor result = at::empty({k_all, d}, at::TensorOptions().dtype(at::kFloat));
  // Label-independent pieces.
  const at::Tensor xhat2 = (s.mid - s.ln2_mean.unsqueeze(1)) * s.ln2_rstd.unsqueeze(1);  // [L, D]
  at::Tensor act_grad;  // act'(fc_pre) [L, 4D]
  if (impl_->activation == EngineActivation::Gelu) {
    const at::Tensor& u = s.fc_pre;
    act_grad = 0.5 * (1 + at::erf(u * M_SQRT1_2)) + u * at::exp(-0.5 * u * u) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
  } else {
    const at::Tensor sig = at::sigmoid(s.fc_pre * 1.702);
    act_grad = sig + 1.702 * s.fc_pre * sig * (1 - sig);
  }
  const at::Tensor q = s.qkv.slice(1, 0, d).view({l, h_count, hd}) * scale;  // s·Q
  const at::Tensor keys = s.qkv.slice(1, d, 2 * d).view({l, h_count, hd});
  const at::Tensor values = s.qkv.slice(1, 2 * d, 3 * d).view({l, h_count, hd});
  const at::Tensor o = s.heads_out.view({l, h_count, hd});
  const at::Tensor p_cls = s.probabilities.select(2, 0).t();                   // [L, H]: P_t0
  // Labels in chunks of 4: the [K·L, 4D] intermediates stay ≤ 60 MB at L = 1201.
  const int64_t chunk = 4;
  for (int64_t k0 = 0; k0 < k_all; k0 += chunk) {
    const int64_t k = std::min(chunk, k_all - k0);
    const at::Tensor g = grad_out.slice(0, k0, k0 + k).to(at::kFloat).contiguous();  // [k, L, D]
    // MLP branch: out = mid + c_proj(act(c_fc(ln_2(mid)))).
    at::Tensor dm = at::empty({k, l, 4 * d}, g.options());
    impl_->back_c_proj->run(g.data_ptr(), k * l, dm.data_ptr(), false, false);  // g·W_proj
    const at::Tensor du = (dm * act_grad).contiguous();
    at::Tensor dh2 = at::empty({k, l, d}, g.options());
    impl_->back_c_fc->run(du.data_ptr(), k * l, dh2.data_ptr(), false, false);  // du·W_fc
    // ln_2 backward: rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)), ĝ = γ⊙dh2.
    const at::Tensor gh = dh2 * w.ln_2_weight;
    const at::Tensor dmid = (g + s.ln2_rstd.view({1, l, 1}) *
                                     (gh - gh.mean(-1, true) - xhat2 * (gh * xhat2).mean(-1, true)))
                                .contiguous();
    // out_proj backward: dO = dmid·W_out.
    at::Tensor d_o = at::empty({k, l, d}, g.options());
    impl_->back_out_proj->run(dmid.data_ptr(), k * l, d_o.data_ptr(), false, false);
    const at::Tensor d_oh = d_o.view({k, l, h_count, hd});
    const at::Tensor r = (d_oh * o).sum(-1);                                   // [k, L, H]
    const at::Tensor sum_dv = ((1 - p_cls).unsqueeze(-1) * d_oh).sum(1);       // [k, H, hd]
    const at::Tensor d_s0 = p_cls * ((d_oh * values.select(0, 0)).sum(-1) - r);  // [k, L, H]
    const at::Tensor sum_dk = -(d_s0.unsqueeze(-1) * q).sum(1);              // [k, H, hd]
    // M and Pᵀr for all labels in one product per head: P_patchᵀ [L, n] · [dO_patch | r_patch] [n, k·(hd+1)].
    // oneDNN's sgemm, not at::bmm: OpenBLAS's own threads would fight the
    // engine's OpenMP threads, still spinning after the previous kernel.
    const int64_t cols = k * (hd + 1);
    const at::Tensor rhs = at::cat({d_oh.slice(1, 1).permute({2, 1, 0, 3}).reshape({h_count, l - 1, k * hd}),
                                    r.slice(1, 1).permute({2, 1, 0})},
                                   2)
                               .contiguous();
    at::Tensor m = at::empty({h_count, l, cols}, g.options());
    for (int64_t h = 0; h < h_count; ++h) {
      const float* p_patch = s.probabilities.data_ptr<float>() + (h * l + 1) * l;  // rows 1..L−1 of P_h
      if (dnnl_sgemm('T', 'N', l, cols, l - 1, 1.0f, p_patch, l, rhs.data_ptr<float>() + h * (l - 1) * cols, cols,
                     0.0f, m.data_ptr<float>() + h * l * cols, cols) != dnnl_success)
        throw Error("engine: oneDNN sgemm failed in the last block's backward");
    }
    const at::Tensor m_dirs = m.slice(2, 0, k * hd).view({h_count, l, k, hd}).permute({2, 1, 0, 3});  // [k, L, H, hd]
    const at::Tensor p_r = m.slice(2, k * hd).permute({2, 1, 0});                                       // [k, L, H]
    const at::Tensor c = (values * m_dirs).sum(-1) - p_r;                                               // [k, L, H]
    const at::Tensor sum_dq = scale * (c.unsqueeze(-1) * keys).sum(1);                                 // [k, H, hd]
    const at::Tensor d_qkv = at::cat({sum_dq.reshape({k, d}), sum_dk.reshape({k, d}), sum_dv.reshape({k, d})}, 1);
    at::Tensor d_a = at::empty({k, d}, g.options());
    impl_->back_in_proj->run(d_qkv.contiguous().data_ptr(), k, d_a.data_ptr(), false, false);  // [k, 3D]·W_in
    result.slice(0, k0, k0 + k).copy_(d_a);
  }
  return result;
}

}  // namespace clipes

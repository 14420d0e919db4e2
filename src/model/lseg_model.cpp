#include "clipes/model/lseg_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "clipes/model/checkpoint.h"
#include "clipes/engine/vit_engine.h"
#include "clipes/model/clip_model.h"
#include "clipes/util/error.h"

namespace clipes {

namespace {

struct VitBlock {
  at::Tensor norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};
struct Reassemble {
  at::Tensor project_w, project_b, conv_w, conv_b, resample_w, resample_b;  // resample absent at level 3
};
// A 3×3 convolution (no bias in the checkpoint) followed by an eval-mode
// BatchNorm, folded into one convolution at load: w·s and β − μ·s with
// s = γ/√(var + eps). Exact in real arithmetic; in float32 it moves the
// fixture's decoder outputs by rounding only (tests/test_lseg_model.cpp
// holds them to the official ones), and it saves a pass over the map.
struct ConvBn {
  at::Tensor weight, bias;
};
struct ResidualConvUnit {
  ConvBn conv1, conv2;
};
struct FusionBlock {
  ResidualConvUnit rcu1, rcu2;  // rcu1 unused (and not loaded) in refinenet4
  at::Tensor out_w, out_b;
};

// timm's LayerNorm eps (lseg-spec §2, §10 item 6).
constexpr double kVitLnEps = 1e-6;
// BatchNorm2d default eps (lseg-spec §4).
constexpr double kBnEps = 1e-5;

at::Tensor block_forward(const VitBlock& b, const at::Tensor& x, int64_t heads) {
  // Pre-norm timm Block (lseg-spec §2 item 4). The attention follows timm
  // 0.4.12's order: (q·kᵀ)·scale, softmax, ·v.
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), hd = C / heads;
  at::Tensor h = at::layer_norm(x, {C}, b.norm1_w, b.norm1_b, kVitLnEps);
  const at::Tensor qkv = at::linear(h, b.qkv_w, b.qkv_b).reshape({B, N, 3, heads, hd}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  at::Tensor attn = at::matmul(q, k.transpose(-2, -1)) * std::pow(static_cast<double>(hd), -0.5);
  attn = attn.softmax(-1);
  h = at::matmul(attn, v).transpose(1, 2).reshape({B, N, C});
  at::Tensor out = x + at::linear(h, b.proj_w, b.proj_b);
  h = at::layer_norm(out, {C}, b.norm2_w, b.norm2_b, kVitLnEps);
  h = at::linear(at::gelu(at::linear(h, b.fc1_w, b.fc1_b)), b.fc2_w, b.fc2_b);  // exact (erf) GELU
  return out + h;
}

// ResidualConvUnit_custom with BatchNorm (lseg-spec §4); the ReLU is not in
// place, so the skip adds the un-activated input.
at::Tensor rcu_forward(const ResidualConvUnit& u, const at::Tensor& x) {
  at::Tensor y = at::conv2d(at::relu(x), u.conv1.weight, u.conv1.bias, 1, 1);
  y = at::conv2d(at::relu(y), u.conv2.weight, u.conv2.bias, 1, 1);
  return y + x;
}

// Bilinear ×2 with align_corners=True: the fusion blocks' and the logits'
// upsampling (lseg-spec §4, §10 item 7).
at::Tensor upsample2_aligned(const at::Tensor& x) {
  return at::upsample_bilinear2d(x, {2 * x.size(2), 2 * x.size(3)}, /*align_corners=*/true);
}

}  // namespace

struct LsegModel::Weights {
  at::Tensor cls_token, pos_embed, patch_w, patch_b;
  std::vector<VitBlock> blocks;
  std::array<Reassemble, 4> reassemble;
  std::array<at::Tensor, 4> layer_rn;
  std::array<FusionBlock, 4> fusion;
  at::Tensor head_w, head_b;
};

LsegModel::LsegModel(const TensorMap& t, const std::string& path, const LsegSettings& settings,
                     const ModelOptions& options)
    : config_(LsegConfig::infer(t, path, settings)),
      path_(path),
      w_(std::make_unique<Weights>()),
      dtype_(precision_dtype(options.precision)) {
  if (options.device != "cpu") throw Error("LSeg runs on the CPU only (device '" + options.device + "')");
  if (options.trainable) throw Error("LSeg's network is inference only");
  if (dtype_ != at::kFloat && dtype_ != at::kBFloat16) throw Error("LSeg runs in float32 or bfloat16");
  const bool fused = options.engine == EngineKind::Fused;
  // infer() checked every key and shape below. `get` is float32 (what the
  // engine packs from, and what BatchNorm folding needs); `weight` is the
  // decoder's compute type.
  auto get = [&](const std::string& key) {
    return t.at(std::string(kLsegPrefix) + key).to(at::kFloat).contiguous();
  };
  auto weight = [&](const std::string& key) { return get(key).to(dtype_); };
  // The reference trunk runs LibTorch's ops in the compute type throughout.
  auto block_weight = [&](const std::string& key) { return fused ? get(key) : weight(key); };
  Weights& w = *w_;
  const std::string vit = "pretrained.model.";
  w.cls_token = get(vit + "cls_token");
  w.pos_embed = get(vit + "pos_embed");
  w.patch_w = get(vit + "patch_embed.proj.weight");
  w.patch_b = get(vit + "patch_embed.proj.bias");
  for (int i = 0; i <= config_.hooks.back(); ++i) {
    const std::string k = vit + "blocks." + std::to_string(i) + ".";
    auto b = [&](const std::string& name) { return block_weight(k + name); };
    w.blocks.push_back({b("norm1.weight"), b("norm1.bias"), b("attn.qkv.weight"), b("attn.qkv.bias"),
                        b("attn.proj.weight"), b("attn.proj.bias"), b("norm2.weight"), b("norm2.bias"),
                        b("mlp.fc1.weight"), b("mlp.fc1.bias"), b("mlp.fc2.weight"), b("mlp.fc2.bias")});
  }
  auto conv_bn = [&](const std::string& conv, const std::string& bn) {
    const at::Tensor scale = get(bn + "weight") / at::sqrt(get(bn + "running_var") + kBnEps);
    return ConvBn{(get(conv) * scale.view({-1, 1, 1, 1})).to(dtype_).contiguous(),
                  (get(bn + "bias") - get(bn + "running_mean") * scale).to(dtype_)};
  };
  auto rcu = [&](const std::string& k) {
    return ResidualConvUnit{conv_bn(k + "conv1.weight", k + "bn1."), conv_bn(k + "conv2.weight", k + "bn2.")};
  };
  for (int k = 1; k <= 4; ++k) {
    const size_t i = static_cast<size_t>(k - 1);
    const std::string ap = "pretrained.act_postprocess" + std::to_string(k) + ".";
    Reassemble& r = w.reassemble[i];
    r.project_w = weight(ap + "0.project.0.weight");
    r.project_b = weight(ap + "0.project.0.bias");
    r.conv_w = weight(ap + "3.weight");
    r.conv_b = weight(ap + "3.bias");
    if (k != 3) {  // levels 1, 2: transposed, float32 (see reassemble); level 4: a conv
      r.resample_w = k == 4 ? weight(ap + "4.weight") : get(ap + "4.weight");
      r.resample_b = k == 4 ? weight(ap + "4.bias") : get(ap + "4.bias");
    }
    w.layer_rn[i] = weight("scratch.layer" + std::to_string(k) + "_rn.weight");
    const std::string rn = "scratch.refinenet" + std::to_string(k) + ".";
    FusionBlock& f = w.fusion[i];
    if (k != 4) f.rcu1 = rcu(rn + "resConfUnit1.");
    f.rcu2 = rcu(rn + "resConfUnit2.");
    f.out_w = weight(rn + "out_conv.weight");
    f.out_b = weight(rn + "out_conv.bias");
  }
  w.head_w = weight("scratch.head1.weight");
  w.head_b = weight("scratch.head1.bias");

  if (fused) {
    // timm's Block is OpenAI's ResidualAttentionBlock under other names
    // (qkv = in_proj, proj = out_proj, fc1/fc2 = c_fc/c_proj) with exact GELU
    // and LayerNorm eps 1e-6 (lseg-spec §2); the engine computes the scores
    // as (q·kᵀ)·scale in one product, timm's order.
    std::vector<EngineBlockWeights> blocks;
    for (const VitBlock& b : w.blocks)
      blocks.push_back({b.norm1_w, b.norm1_b, b.qkv_w, b.qkv_b, b.proj_w, b.proj_b, b.norm2_w, b.norm2_b, b.fc1_w,
                        b.fc1_b, b.fc2_w, b.fc2_b});
    engine_ = std::make_shared<VitEngine>(blocks, blocks.back(), config_.vit_heads, EngineActivation::Gelu,
                                          dtype_ == at::kBFloat16, static_cast<float>(kVitLnEps));
    w.blocks.clear();  // the engine holds (fp32) or packed (bf16) what it needs
  }

  // The CLIP text tower (lseg-spec §5) through clipes' own CLIP, in float32.
  // Its vision tower is built too (ClipModel has both) but never run; the
  // reference engine avoids packing its weights for the fused CPU engine.
  const std::string clip_prefix = std::string(kLsegPrefix) + "clip_pretrained.";
  TensorMap clip;
  for (auto it = t.lower_bound(clip_prefix); it != t.end() && it->first.compare(0, clip_prefix.size(), clip_prefix) == 0;
       ++it)
    clip[it->first.substr(clip_prefix.size())] = it->second;
  ModelOptions text_options;  // float32 whatever the image side's precision (see the header)
  text_options.engine = EngineKind::Reference;
  text_options.activation = Activation::QuickGelu;
  clip_ = std::make_shared<ClipModel>(clip, config_.clip, text_options);
}

LsegModel LsegModel::load(const std::string& path, const LsegSettings& settings, const ModelOptions& options) {
  return LsegModel(read_torch_save_tensors(path), path, settings, options);
}

LsegModel::~LsegModel() = default;
LsegModel::LsegModel(LsegModel&&) noexcept = default;
LsegModel& LsegModel::operator=(LsegModel&&) noexcept = default;

at::Tensor LsegModel::encode_text(const at::Tensor& tokens) const {
  torch::NoGradGuard no_grad;
  return clip_->encode_text(tokens).to(at::kFloat);
}

std::vector<at::Tensor> LsegModel::vit_hooks(const at::Tensor& x_in) const {
  torch::NoGradGuard no_grad;
  const int64_t step = 2 * config_.patch_size;  // g_h, g_w must be even (lseg-spec §4 shapes)
  if (x_in.dim() != 4 || x_in.size(1) != 3 || x_in.size(2) <= 0 || x_in.size(3) <= 0 || x_in.size(2) % step != 0 ||
      x_in.size(3) % step != 0) {
    std::string shape;
    for (int64_t d : x_in.sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    throw Error("LSeg input must be [B, 3, H, W] with H and W multiples of " + std::to_string(step) + ", got " + shape);
  }
  const at::Tensor x = x_in.to(at::kFloat);
  const Weights& w = *w_;
  const int64_t B = x.size(0), D = config_.vit_width, p = config_.patch_size;
  const int64_t gh = x.size(2) / p, gw = x.size(3) / p, g0 = config_.pos_grid;

  // Position table resized to the input grid (lseg-spec §2 item 1): cls row
  // kept, the g0×g0 grid resized bilinearly with align_corners=False.
  const at::Tensor pos_grid = w.pos_embed.slice(1, 1).reshape({1, g0, g0, D}).permute({0, 3, 1, 2});
  const at::Tensor resized = at::upsample_bilinear2d(pos_grid, {gh, gw}, /*align_corners=*/false)
                                 .permute({0, 2, 3, 1})
                                 .reshape({1, gh * gw, D});
  const at::Tensor pos = at::cat({w.pos_embed.slice(1, 0, 1), resized}, 1);

  // Patch conv applied directly, tokens row-major, cls first (lseg-spec §2 items 2–3).
  at::Tensor t = at::conv2d(x, w.patch_w, w.patch_b, {p, p}).flatten(2).transpose(1, 2);
  t = at::cat({w.cls_token.expand({B, -1, -1}), t}, 1) + pos;

  // Blocks up to the last hook; the final norm is discarded by the official
  // code, so neither it nor later blocks run (lseg-spec §2 item 5). The
  // engine keeps the residual stream float32 (bf16 operands in bf16).
  std::vector<at::Tensor> out;
  if (engine_) {
    int begin = 0;
    for (int hook : config_.hooks) {
      t = engine_->run(t, begin, hook + 1, {}).x;
      out.push_back(t.to(dtype_));
      begin = hook + 1;
    }
    return out;
  }
  t = t.to(dtype_);
  size_t next = 0;
  for (int i = 0; i <= config_.hooks.back(); ++i) {
    t = block_forward(w.blocks[static_cast<size_t>(i)], t, config_.vit_heads);
    if (i == config_.hooks[next]) {
      out.push_back(t);
      ++next;
    }
  }
  return out;
}

std::vector<at::Tensor> LsegModel::reassemble(const std::vector<at::Tensor>& hooks, int64_t gh, int64_t gw) const {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < 4; ++i) {
    const Reassemble& r = w_->reassemble[i];
    const at::Tensor t = hooks.at(i).to(dtype_);
    const int64_t B = t.size(0), N = t.size(1) - 1, D = t.size(2);
    // Readout "project": cat(patch tokens, cls), patch first (lseg-spec §3, §10 item 5).
    const at::Tensor patches = t.slice(1, 1);
    const at::Tensor cls = t.slice(1, 0, 1).expand({B, N, D});
    at::Tensor y = at::gelu(at::linear(at::cat({patches, cls}, -1), r.project_w, r.project_b));
    // Transpose, then unflatten to the current grid (lang-seg's own unflatten).
    y = y.transpose(1, 2).reshape({B, D, gh, gw});
    y = at::conv2d(y, r.conv_w, r.conv_b);
    if (i == 0 || i == 1) {
      const int64_t s = r.resample_w.size(2);  // kernel = stride: ×4, ×2
      // In float32 whatever the compute type: LibTorch 1.13's bf16 transposed
      // convolution returned a 1×1 map for the ×4 kernel on the tiny fixture
      // (measured); these two layers are ~1 % of the decoder's FLOPs.
      y = at::conv_transpose2d(y.to(at::kFloat), r.resample_w, r.resample_b, {s, s}).to(dtype_);
    } else if (i == 3) {
      y = at::conv2d(y, r.resample_w, r.resample_b, {2, 2}, {1, 1});
    }
    out.push_back(y);
  }
  return out;
}

std::vector<at::Tensor> LsegModel::layer_rn(const std::vector<at::Tensor>& reassembled) const {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < 4; ++i) out.push_back(at::conv2d(reassembled.at(i), w_->layer_rn[i], {}, 1, 1));
  return out;
}

std::vector<at::Tensor> LsegModel::fuse(const std::vector<at::Tensor>& l) const {
  torch::NoGradGuard no_grad;
  // p4 = RN4(l4); p3 = RN3(p4, l3); … (lseg-spec §4): add RCU1(skip), RCU2,
  // upsample ×2, then the 1×1 out_conv.
  std::vector<at::Tensor> paths(4);
  at::Tensor prev;
  for (int i = 3; i >= 0; --i) {
    const FusionBlock& f = w_->fusion[static_cast<size_t>(i)];
    at::Tensor y = i == 3 ? l.at(3) : prev + rcu_forward(f.rcu1, l.at(static_cast<size_t>(i)));
    y = rcu_forward(f.rcu2, y);
    y = at::conv2d(upsample2_aligned(y), f.out_w, f.out_b);
    paths[static_cast<size_t>(i)] = y;
    prev = y;
  }
  return paths;
}

at::Tensor LsegModel::head(const at::Tensor& path1) const {
  torch::NoGradGuard no_grad;
  return at::conv2d(path1, w_->head_w, w_->head_b);
}

LsegStages LsegModel::forward_stages(const at::Tensor& x) const {
  LsegStages s;
  s.hooks = vit_hooks(x);
  const int64_t gh = x.size(2) / config_.patch_size, gw = x.size(3) / config_.patch_size;
  s.reassembled = reassemble(s.hooks, gh, gw);
  s.layer_rn = layer_rn(s.reassembled);
  s.paths = fuse(s.layer_rn);
  s.image_features = head(s.paths[0]);
  return s;
}

at::Tensor LsegModel::image_features(const at::Tensor& x) const {
  const std::vector<at::Tensor> hooks = vit_hooks(x);
  const int64_t gh = x.size(2) / config_.patch_size, gw = x.size(3) / config_.patch_size;
  return head(fuse(layer_rn(reassemble(hooks, gh, gw)))[0]).to(at::kFloat);
}

at::Tensor LsegModel::forward(const at::Tensor& x, const at::Tensor& text_features) const {
  const std::vector<at::Tensor> hooks = vit_hooks(x);
  const int64_t gh = x.size(2) / config_.patch_size, gw = x.size(3) / config_.patch_size;
  return head_logits(fuse(layer_rn(reassemble(hooks, gh, gw)))[0], text_features);
}

namespace {

// [K, C] text features → their L2-normalised transpose [C, K] (lseg-spec §6:
// no epsilon; torch 1.13's `x.norm(dim=-1)` is linalg.vector_norm(x, 2)).
at::Tensor normalized_text_t(const at::Tensor& text_features) {
  const at::Tensor t = text_features.to(at::kFloat);
  return (t / at::linalg_vector_norm(t, 2, {-1}, true)).t();
}

// The logits of pixel-major image features f [n, C] (any float dtype) against
// tt [C, K] into out [n, K] (float32, contiguous). Every step is per pixel, so
// pixels go in slabs of 1024: a [1024, 512] float slab (2 MB) stays in L2
// through the six elementwise passes (8192-pixel slabs measured ~2× slower).
void pixel_logits(const at::Tensor& f_all, const at::Tensor& tt, at::Tensor out) {
  // The fp16 step (lseg-spec §6): `logit_scale * f.half()` rounds f to fp16,
  // casts the scale to fp16 (14.2890625) and rounds the product to fp16. The
  // product of two fp16 values is exact in float32, so one rounding after the
  // float multiply is the fp16 multiply. The GEMM is float32, as on the CPU.
  const float scale_half = static_cast<float>(c10::Half(kLsegLogitScale));
  const int64_t n = f_all.size(0), slab = 1024;
  for (int64_t p0 = 0; p0 < n; p0 += slab) {
    const int64_t p1 = std::min(n, p0 + slab);
    at::Tensor f = f_all.slice(0, p0, p1).to(at::kFloat);
    f = f / at::linalg_vector_norm(f, 2, {-1}, true);
    f = (f.to(at::kHalf).to(at::kFloat) * scale_half).to(at::kHalf).to(at::kFloat);
    at::Tensor rows = out.slice(0, p0, p1);
    at::mm_out(rows, f, tt);
  }
}

}  // namespace

at::Tensor LsegModel::head_logits(const at::Tensor& path1, const at::Tensor& text_features) const {
  torch::NoGradGuard no_grad;
  const int64_t B = path1.size(0), C = w_->head_w.size(0), h = path1.size(2), w = path1.size(3);
  if (text_features.dim() != 2 || text_features.size(1) != C)
    throw Error("LSeg logits need text features [K, " + std::to_string(C) + "]");
  const at::Tensor tt = normalized_text_t(text_features);
  const int64_t K = tt.size(1);
  // head1 (a 1×1 convolution) runs on a channels-last slab so that its output
  // is already pixel-major [pixels, C] for the logits: no permute copy. It stays
  // a oneDNN convolution rather than an addmm, which would go to OpenBLAS in
  // float32 (its own threads next to OpenMP's: 2–3× slower and erratic,
  // measured). Slabs of ~8192 pixels keep the C-channel map (118 MB at
  // 480×480) from ever being whole in memory.
  at::Tensor out = at::empty({B, h, w, K}, at::kFloat);  // pixel-major logits
  const int64_t rows = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, w));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r0 = 0; r0 < h; r0 += rows) {
      const int64_t r1 = std::min(h, r0 + rows);
      const at::Tensor slab = path1.slice(0, b, b + 1).slice(2, r0, r1).contiguous(at::MemoryFormat::ChannelsLast);
      const at::Tensor features = head(slab);  // [1, C, rows, w], channels-last
      pixel_logits(features.permute({0, 2, 3, 1}).reshape({-1, C}), tt, out[b].slice(0, r0, r1).view({-1, K}));
    }
  return lseg_upsample_logits(out.permute({0, 3, 1, 2}).contiguous());
}

at::Tensor lseg_logits_lowres(const at::Tensor& image_features, const at::Tensor& text_features) {
  torch::NoGradGuard no_grad;
  if (image_features.dim() != 4 || text_features.dim() != 2 || text_features.size(1) != image_features.size(1))
    throw Error("LSeg logits need image features [B, C, h, w] and text features [K, C] of the same C");
  const int64_t B = image_features.size(0), C = image_features.size(1), h = image_features.size(2),
                w = image_features.size(3);
  const at::Tensor tt = normalized_text_t(text_features);
  at::Tensor logits = at::empty({B * h * w, tt.size(1)}, at::kFloat);
  pixel_logits(image_features.permute({0, 2, 3, 1}).reshape({-1, C}), tt, logits);
  return logits.view({B, h, w, -1}).permute({0, 3, 1, 2}).contiguous();
}

at::Tensor lseg_upsample_logits(const at::Tensor& logits_lowres) {
  torch::NoGradGuard no_grad;
  return upsample2_aligned(logits_lowres);
}

}  // namespace clipes

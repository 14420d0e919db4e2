#include "clipes/model/lseg_config.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "clipes/util/error.h"
#include "clipes/util/shape_text.h"

namespace clipes {
namespace {

const at::Tensor& require(const TensorMap& t, const std::string& key, const std::string& path) {
  auto it = t.find(key);
  if (it == t.end()) throw file_error(path, "missing tensor " + key + " (not an LSeg clip_vitl16_384 checkpoint?)");
  return it->second;
}

// The tensor's shape, checked to have `dims` dimensions.
std::vector<int64_t> dims_of(const TensorMap& t, const std::string& key, size_t dims, const std::string& path) {
  std::vector<int64_t> s = require(t, key, path).sizes().vec();
  if (s.size() != dims)
    throw file_error(path, "tensor " + key + " has shape " + shape_text(s) + ", expected " + std::to_string(dims) +
                               "-D");
  return s;
}

// Highest index + 1 among keys "<prefix>{i}.…".
int count_indexed(const TensorMap& t, const std::string& prefix) {
  int n = 0;
  for (auto it = t.lower_bound(prefix); it != t.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    const size_t dot = it->first.find('.', prefix.size());
    if (dot == std::string::npos || dot == prefix.size()) continue;
    const std::string digits = it->first.substr(prefix.size(), dot - prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 6) continue;
    n = std::max(n, std::stoi(digits) + 1);
  }
  return n;
}

bool has_prefix(const TensorMap& t, const std::string& prefix) {
  auto it = t.lower_bound(prefix);
  return it != t.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

LsegConfig LsegConfig::infer(const TensorMap& t, const std::string& path, const LsegSettings& settings) {
  const std::string vit = std::string(kLsegPrefix) + "pretrained.model.";
  const std::string scratch = std::string(kLsegPrefix) + "scratch.";
  LsegConfig c;

  // ViT (lseg-spec §2): width and patch from the patch conv, grid from the
  // position table (1 + g·g rows), depth from the block count.
  const auto patch = dims_of(t, vit + "patch_embed.proj.weight", 4, path);
  if (patch[1] != 3 || patch[2] != patch[3] || patch[2] <= 0)
    throw file_error(path, "tensor " + vit + "patch_embed.proj.weight has shape " + shape_text(patch) +
                               ", expected [width, 3, p, p]");
  c.vit_width = static_cast<int>(patch[0]);
  c.patch_size = static_cast<int>(patch[2]);
  const auto pos = dims_of(t, vit + "pos_embed", 3, path);
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(std::max<int64_t>(pos[1] - 1, 0)))));
  if (pos[0] != 1 || pos[2] != c.vit_width || side <= 0 || side * side + 1 != pos[1])
    throw file_error(path, "tensor " + vit + "pos_embed has shape " + shape_text(pos) + ", expected [1, 1 + g*g, " +
                               std::to_string(c.vit_width) + "]");
  c.pos_grid = static_cast<int>(side);
  c.vit_depth = count_indexed(t, vit + "blocks.");
  if (c.vit_depth == 0) throw file_error(path, "missing tensors " + vit + "blocks.*");

  c.vit_heads = settings.vit_heads > 0 ? settings.vit_heads : c.vit_width / 64;
  if (c.vit_heads <= 0 || c.vit_width % c.vit_heads != 0)
    throw file_error(path, "ViT width " + std::to_string(c.vit_width) + " cannot be split into " +
                               std::to_string(c.vit_heads) + " attention heads");

  c.hooks = settings.hooks;
  if (c.hooks.size() != 4) throw file_error(path, "LSeg takes exactly 4 hooked ViT blocks, got " +
                                                      std::to_string(c.hooks.size()));
  for (size_t i = 0; i < 4; ++i)
    if (c.hooks[i] < 0 || c.hooks[i] >= c.vit_depth || (i > 0 && c.hooks[i] <= c.hooks[i - 1]))
      throw file_error(path, "hooked ViT block " + std::to_string(c.hooks[i]) + " is not an increasing index below " +
                                 "the depth " + std::to_string(c.vit_depth));

  // Reassemble (lseg-spec §3). Only readout "project" exists in released
  // checkpoints; "ignore"/"add" would have no project weights.
  for (int k = 1; k <= 4; ++k) {
    const std::string ap = std::string(kLsegPrefix) + "pretrained.act_postprocess" + std::to_string(k) + ".";
    if (t.find(ap + "0.project.0.weight") == t.end())
      throw file_error(path, "missing tensor " + ap + "0.project.0.weight (only LSeg's readout \"project\" is supported)");
    const auto conv = dims_of(t, ap + "3.weight", 4, path);
    c.reassemble_widths[static_cast<size_t>(k - 1)] = static_cast<int>(conv[0]);
  }
  c.features = static_cast<int>(dims_of(t, scratch + "layer1_rn.weight", 4, path)[0]);
  c.out_c = static_cast<int>(dims_of(t, scratch + "head1.weight", 4, path)[0]);

  // arch_option 1/2 add a head block on the logit map (lseg-spec §6); no
  // released checkpoint has one and this forward does not implement it.
  if (has_prefix(t, scratch + "head_block."))
    throw file_error(path, "has " + scratch + "head_block.* (LSeg arch_option 1 or 2), which is not supported");

  // Every shape the forward relies on.
  for (const auto& [key, shape] : c.expected_shapes()) {
    const at::Tensor& v = require(t, key, path);
    if (v.sizes().vec() != shape)
      throw file_error(path, "tensor " + key + " has shape " + shape_text(v.sizes().vec()) + ", expected " +
                                 shape_text(shape));
    if (!v.is_floating_point()) throw file_error(path, "tensor " + key + " is not floating point");
  }

  // The CLIP inside (lseg-spec §5): its own config, from its own shapes. Its
  // errors name the key without the "net.clip_pretrained." prefix, so the
  // location names the prefix.
  const std::string clip_prefix = std::string(kLsegPrefix) + "clip_pretrained.";
  TensorMap clip;
  for (auto it = t.lower_bound(clip_prefix); it != t.end() && it->first.compare(0, clip_prefix.size(), clip_prefix) == 0;
       ++it)
    clip[it->first.substr(clip_prefix.size())] = it->second;
  if (clip.empty()) throw file_error(path, "missing tensors " + clip_prefix + "* (the CLIP text encoder)");
  c.clip = ClipConfig::infer(clip, path + " [" + clip_prefix + "*]");
  c.clip.activation = Activation::QuickGelu;  // OpenAI's ViT-B/32 (lseg-spec §5)
  if (c.clip.embed_dim != c.out_c)
    throw file_error(path, "CLIP text embedding width " + std::to_string(c.clip.embed_dim) +
                               " differs from the pixel embedding width " + std::to_string(c.out_c) + " (" + scratch +
                               "head1.weight)");
  return c;
}

std::map<std::string, std::vector<int64_t>> LsegConfig::expected_shapes() const {
  std::map<std::string, std::vector<int64_t>> s;
  const std::string vit = std::string(kLsegPrefix) + "pretrained.model.";
  const int64_t d = vit_width, p = patch_size, f = features;
  s[vit + "cls_token"] = {1, 1, d};
  s[vit + "pos_embed"] = {1, 1 + int64_t{pos_grid} * pos_grid, d};
  s[vit + "patch_embed.proj.weight"] = {d, 3, p, p};
  s[vit + "patch_embed.proj.bias"] = {d};
  // Blocks after the last hook are never run (lseg-spec §2: only hooked outputs are used).
  for (int b = 0; b <= hooks.back(); ++b) {
    const std::string k = vit + "blocks." + std::to_string(b) + ".";
    s[k + "norm1.weight"] = s[k + "norm1.bias"] = s[k + "norm2.weight"] = s[k + "norm2.bias"] = {d};
    s[k + "attn.qkv.weight"] = {3 * d, d};
    s[k + "attn.qkv.bias"] = {3 * d};
    s[k + "attn.proj.weight"] = {d, d};
    s[k + "attn.proj.bias"] = {d};
    s[k + "mlp.fc1.weight"] = {4 * d, d};
    s[k + "mlp.fc1.bias"] = {4 * d};
    s[k + "mlp.fc2.weight"] = {d, 4 * d};
    s[k + "mlp.fc2.bias"] = {d};
  }
  // Reassemble resamplers per level (lseg-spec §3): ×4 and ×2 transposed
  // convs (kernel = stride), none, 3×3 stride-2 conv.
  const int64_t resample_kernel[4] = {4, 2, 0, 3};
  for (int k = 1; k <= 4; ++k) {
    const std::string ap = std::string(kLsegPrefix) + "pretrained.act_postprocess" + std::to_string(k) + ".";
    const int64_t c = reassemble_widths[static_cast<size_t>(k - 1)];
    s[ap + "0.project.0.weight"] = {d, 2 * d};
    s[ap + "0.project.0.bias"] = {d};
    s[ap + "3.weight"] = {c, d, 1, 1};
    s[ap + "3.bias"] = {c};
    if (const int64_t kk = resample_kernel[k - 1]; kk > 0) {
      s[ap + "4.weight"] = {c, c, kk, kk};
      s[ap + "4.bias"] = {c};
    }
    const std::string sc = std::string(kLsegPrefix) + "scratch.";
    s[sc + "layer" + std::to_string(k) + "_rn.weight"] = {f, c, 3, 3};
    const std::string rn = sc + "refinenet" + std::to_string(k) + ".";
    s[rn + "out_conv.weight"] = {f, f, 1, 1};
    s[rn + "out_conv.bias"] = {f};
    // refinenet4 has one input, so its resConfUnit1 is never used (lseg-spec §10 item 8).
    for (int u = (k == 4 ? 2 : 1); u <= 2; ++u) {
      const std::string rcu = rn + "resConfUnit" + std::to_string(u) + ".";
      s[rcu + "conv1.weight"] = s[rcu + "conv2.weight"] = {f, f, 3, 3};
      for (const char* bn : {"bn1.", "bn2."})
        for (const char* v : {"weight", "bias", "running_mean", "running_var"}) s[rcu + bn + v] = {f};
    }
  }
  const std::string sc = std::string(kLsegPrefix) + "scratch.";
  s[sc + "head1.weight"] = {out_c, f, 1, 1};
  s[sc + "head1.bias"] = {out_c};
  return s;
}

LsegConfig LsegConfig::clip_vitl16_384() {
  LsegConfig c;
  c.vit_width = 1024, c.vit_depth = 24, c.vit_heads = 16, c.patch_size = 16, c.pos_grid = 24;
  c.hooks = LsegSettings{}.hooks;
  c.reassemble_widths = {256, 512, 1024, 1024};
  c.features = 256;
  c.out_c = 512;
  c.clip = ClipConfig::vit_b_32();
  return c;
}

int64_t LsegConfig::parameter_count() const {
  int64_t n = clip.parameter_count();
  for (const auto& [key, shape] : expected_shapes()) {
    int64_t k = 1;
    for (int64_t d : shape) k *= d;
    n += k;
  }
  return n;
}

TensorMap random_lseg_weights(const LsegConfig& c, uint64_t seed) {
  at::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  TensorMap t;
  for (const auto& [key, shape] : c.expected_shapes()) {
    at::Tensor x;
    const bool norm = key.find(".norm") != std::string::npos || key.find(".bn") != std::string::npos;
    if (ends_with(key, "running_var") || (norm && ends_with(key, ".weight"))) {
      x = at::ones(shape);
    } else if (ends_with(key, "bias") || ends_with(key, "running_mean")) {
      x = at::zeros(shape);
    } else if (key.find("cls_token") != std::string::npos || key.find("pos_embed") != std::string::npos) {
      x = at::normal(0.0, 0.02, shape, gen);  // timm's trunc_normal(std=.02)
    } else {
      int64_t fan_in = 1;
      for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
      double std = std::pow(static_cast<double>(fan_in), -0.5);
      if (key.find("attn.proj.") != std::string::npos || key.find("mlp.fc2.") != std::string::npos)
        std *= std::pow(2.0 * c.vit_depth, -0.5);
      x = at::normal(0.0, std, shape, gen);
    }
    t[key] = x;
  }
  for (auto& [key, x] : random_clip_weights(c.clip, seed + 1))
    t[std::string(kLsegPrefix) + "clip_pretrained." + key] = std::move(x);
  return t;
}

std::string LsegConfig::describe() const {
  std::ostringstream o;
  o << "LSeg ViT width " << vit_width << ", depth " << vit_depth << ", " << vit_heads << " heads, patch " << patch_size
    << ", hooks " << hooks[0] << "/" << hooks[1] << "/" << hooks[2] << "/" << hooks[3] << "; reassemble "
    << reassemble_widths[0] << "/" << reassemble_widths[1] << "/" << reassemble_widths[2] << "/" << reassemble_widths[3]
    << "; features " << features << "; embedding " << out_c << "; text " << clip.text.width << "x" << clip.text.layers;
  return o.str();
}

}  // namespace clipes

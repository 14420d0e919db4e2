#include "clipes/model/clip_config.h"

#include <torch/torch.h>

#include <cmath>
#include <regex>
#include <sstream>

#include "clipes/util/error.h"
#include "clipes/util/shape_text.h"

namespace clipes {
namespace {

const at::Tensor& require(const TensorMap& t, const std::string& name, const std::string& path) {
  auto it = t.find(name);
  if (it == t.end()) throw file_error(path, "missing tensor " + name);
  return it->second;
}

// Highest block index + 1 among "<prefix>{i}.".
int count_blocks(const TensorMap& t, const std::string& prefix) {
  int layers = 0;
  for (const auto& [name, _] : t) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos) continue;
    try {
      layers = std::max(layers, std::stoi(name.substr(prefix.size(), dot - prefix.size())) + 1);
    } catch (const std::exception&) {
    }
  }
  return layers;
}

void add_block_shapes(std::map<std::string, std::vector<int64_t>>& shapes, const std::string& prefix,
                      int layers, int64_t d) {
  for (int i = 0; i < layers; ++i) {
    const std::string b = prefix + std::to_string(i) + ".";
    shapes[b + "ln_1.weight"] = shapes[b + "ln_1.bias"] = {d};
    shapes[b + "ln_2.weight"] = shapes[b + "ln_2.bias"] = {d};
    shapes[b + "attn.in_proj_weight"] = {3 * d, d};
    shapes[b + "attn.in_proj_bias"] = {3 * d};
    shapes[b + "attn.out_proj.weight"] = {d, d};
    shapes[b + "attn.out_proj.bias"] = {d};
    shapes[b + "mlp.c_fc.weight"] = {4 * d, d};
    shapes[b + "mlp.c_fc.bias"] = {4 * d};
    shapes[b + "mlp.c_proj.weight"] = {d, 4 * d};
    shapes[b + "mlp.c_proj.bias"] = {d};
  }
}

}  // namespace

Activation parse_activation(const std::string& text, const std::string& option) {
  if (text == "quick-gelu" || text == "quick_gelu" || text == "quickgelu") return Activation::QuickGelu;
  if (text == "gelu") return Activation::Gelu;
  throw Error(option + " " + text + ": expected gelu (OpenCLIP LAION/DataComp weights) or quick-gelu (OpenAI weights)");
}

std::string to_string(Activation activation) { return activation == Activation::Gelu ? "gelu" : "quick-gelu"; }

ClipConfig ClipConfig::infer(const TensorMap& t, const std::string& path) {
  // ResNet CLIPs (RN50, ...) also have a visual.conv1.weight (their 3x3 stem),
  // so recognise them by their bottleneck layers / attention pool first.
  if (t.count("visual.layer1.0.conv1.weight") || t.count("visual.attnpool.positional_embedding"))
    throw file_error(path, "ResNet CLIP checkpoints are not supported (clipes needs a ViT, e.g. ViT-B/16)");
  if (!t.count("visual.conv1.weight")) {
    throw file_error(path, "missing tensor visual.conv1.weight (not a CLIP ViT checkpoint?)");
  }
  ClipConfig c;
  const at::Tensor& conv1 = t.at("visual.conv1.weight");
  if (conv1.dim() != 4 || conv1.size(1) != 3 || conv1.size(2) != conv1.size(3))
    throw file_error(path, "tensor visual.conv1.weight has shape " + shape_text(conv1.sizes().vec()) +
                               ", expected [width, 3, patch, patch]");
  c.vision.width = static_cast<int>(conv1.size(0));
  c.vision.patch_size = static_cast<int>(conv1.size(2));
  c.vision.layers = count_blocks(t, "visual.transformer.resblocks.");
  c.vision.heads = std::max(1, c.vision.width / 64);
  const at::Tensor& vpos = require(t, "visual.positional_embedding", path);
  const int64_t tokens = vpos.dim() == 2 ? vpos.size(0) - 1 : -1;
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(std::max<int64_t>(tokens, 0)))));
  if (tokens <= 0 || grid * grid != tokens)
    throw file_error(path, "tensor visual.positional_embedding has shape " + shape_text(vpos.sizes().vec()) +
                               ", expected [1 + grid*grid, width]");
  c.vision.grid = static_cast<int>(grid);
  const at::Tensor& vproj = require(t, "visual.proj", path);
  if (vproj.dim() != 2)
    throw file_error(path, "tensor visual.proj has shape " + shape_text(vproj.sizes().vec()) + ", expected 2-D");
  c.embed_dim = static_cast<int>(vproj.size(1));

  const at::Tensor& tok = require(t, "token_embedding.weight", path);
  const at::Tensor& tpos = require(t, "positional_embedding", path);
  if (tok.dim() != 2 || tpos.dim() != 2)
    throw file_error(path, "text embeddings must be 2-D (token_embedding.weight, positional_embedding)");
  c.text.vocab_size = static_cast<int>(tok.size(0));
  c.text.width = static_cast<int>(tok.size(1));
  c.text.context_length = static_cast<int>(tpos.size(0));
  c.text.layers = count_blocks(t, "transformer.resblocks.");
  c.text.heads = std::max(1, c.text.width / 64);
  if (c.vision.layers == 0) throw file_error(path, "missing tensors visual.transformer.resblocks.*");
  if (c.text.layers == 0) throw file_error(path, "missing tensors transformer.resblocks.*");

  for (const auto& [name, shape] : c.expected_shapes()) {
    const at::Tensor& tensor = require(t, name, path);
    if (tensor.sizes().vec() != shape)
      throw file_error(path, "tensor " + name + " has shape " + shape_text(tensor.sizes().vec()) + ", expected " +
                                 shape_text(shape));
  }
  return c;
}

std::map<std::string, std::vector<int64_t>> ClipConfig::expected_shapes() const {
  std::map<std::string, std::vector<int64_t>> s;
  const int64_t vw = vision.width, tw = text.width, e = embed_dim;
  const int64_t p = vision.patch_size, g = vision.grid;
  s["visual.conv1.weight"] = {vw, 3, p, p};
  s["visual.class_embedding"] = {vw};
  s["visual.positional_embedding"] = {g * g + 1, vw};
  s["visual.ln_pre.weight"] = s["visual.ln_pre.bias"] = {vw};
  s["visual.ln_post.weight"] = s["visual.ln_post.bias"] = {vw};
  s["visual.proj"] = {vw, e};
  add_block_shapes(s, "visual.transformer.resblocks.", vision.layers, vw);
  s["token_embedding.weight"] = {text.vocab_size, tw};
  s["positional_embedding"] = {text.context_length, tw};
  s["ln_final.weight"] = s["ln_final.bias"] = {tw};
  s["text_projection"] = {tw, e};
  s["logit_scale"] = {};
  add_block_shapes(s, "transformer.resblocks.", text.layers, tw);
  return s;
}

int64_t ClipConfig::parameter_count() const {
  int64_t n = 0;
  for (const auto& [_, shape] : expected_shapes()) {
    int64_t k = 1;
    for (int64_t d : shape) k *= d;
    n += k;
  }
  return n;
}

ClipConfig ClipConfig::vit_b_16() {
  ClipConfig c;
  c.vision = {768, 12, 12, 16, 14};
  c.text = {512, 12, 8, 77, 49408};
  c.embed_dim = 512;
  return c;
}

ClipConfig ClipConfig::vit_b_32() {
  ClipConfig c = vit_b_16();
  c.vision.patch_size = 32;
  c.vision.grid = 7;
  return c;
}

std::string ClipConfig::describe() const {
  std::ostringstream os;
  os << "ViT patch " << vision.patch_size << ", " << image_size() << " px (grid " << vision.grid << "x" << vision.grid
     << "), vision width " << vision.width << " x " << vision.layers << " layers (" << vision.heads
     << " heads); text width " << text.width << " x " << text.layers << " layers (" << text.heads
     << " heads), context " << text.context_length << ", vocab " << text.vocab_size << "; embed " << embed_dim
     << "; activation " << to_string(activation);
  return os.str();
}

TensorMap random_clip_weights(const ClipConfig& c, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  TensorMap t;
  for (const auto& [name, shape] : c.expected_shapes()) {
    const bool vis = name.rfind("visual.", 0) == 0;
    const double width = vis ? c.vision.width : c.text.width;
    const int layers = vis ? c.vision.layers : c.text.layers;
    at::Tensor x;
    if (name.find("ln_") != std::string::npos) {
      x = name.size() > 6 && name.substr(name.size() - 6) == "weight" ? torch::ones(shape) : torch::zeros(shape);
    } else if (name.substr(name.size() - 4) == "bias") {
      x = torch::zeros(shape);
    } else if (name == "logit_scale") {
      x = torch::full(shape, std::log(1 / 0.07));
    } else {
      // OpenAI's init: attention/proj std width^-0.5, scaled by depth for the
      // residual branches; embeddings 0.02 / 0.01.
      double std = std::pow(width, -0.5);
      if (name.find("c_proj") != std::string::npos || name.find("out_proj") != std::string::npos)
        std *= std::pow(2.0 * layers, -0.5);
      if (name == "token_embedding.weight") std = 0.02;
      if (name == "positional_embedding") std = 0.01;
      x = at::normal(0.0, std, shape, gen);
    }
    t[name] = x;
  }
  return t;
}

}  // namespace clipes

#include "clipes/model/clip_model.h"

#include <torch/torch.h>

#include <algorithm>

#include "clipes/model/checkpoint.h"
#include "clipes/util/error.h"

namespace clipes {

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::FP32;
  if (text == "bf16") return Precision::BF16;
  if (text == "fp16") return Precision::FP16;
  throw Error("--precision " + text + ": expected fp32, bf16 or fp16");
}

at::ScalarType precision_dtype(Precision p) {
  switch (p) {
    case Precision::BF16: return at::kBFloat16;
    case Precision::FP16: return at::kHalf;
    default: return at::kFloat;
  }
}

// Holds plain named parameters (conv1.weight, ln_pre.{weight,bias}, ...).
struct NamedParams : torch::nn::Module {
  NamedParams(const WeightSource& w, const std::string& prefix, const std::vector<std::string>& names) {
    for (const auto& n : names) register_parameter(n, w(prefix + n));
  }
  const at::Tensor& get(const std::string& n) const { return named_parameters(false)[n]; }
};

// "transformer.resblocks.{i}" — a module per block so names stay canonical.
struct Blocks : torch::nn::Module {
  std::vector<std::shared_ptr<ResidualAttentionBlock>> list;
  Blocks(const WeightSource& w, const std::string& prefix, int layers, int heads, Activation activation) {
    auto resblocks = register_module("resblocks", std::make_shared<torch::nn::Module>());
    for (int i = 0; i < layers; ++i) {
      auto block = std::make_shared<ResidualAttentionBlock>(w, prefix + "resblocks." + std::to_string(i) + ".", heads,
                                                            activation);
      resblocks->register_module(std::to_string(i), block);
      list.push_back(block);
    }
  }
};

class VisionTransformer : public torch::nn::Module {
 public:
  VisionTransformer(const WeightSource& w, const VisionConfig& c, Activation activation) {
    conv1 = register_module("conv1", std::make_shared<NamedParams>(w, "visual.conv1.", std::vector<std::string>{"weight"}));
    class_embedding = register_parameter("class_embedding", w("visual.class_embedding"));
    positional_embedding = register_parameter("positional_embedding", w("visual.positional_embedding"));
    ln_pre = register_module("ln_pre", std::make_shared<AffineParams>(w, "visual.ln_pre."));
    transformer = register_module("transformer", std::make_shared<Blocks>(w, "visual.transformer.", c.layers, c.heads, activation));
    ln_post = register_module("ln_post", std::make_shared<AffineParams>(w, "visual.ln_post."));
    proj = register_parameter("proj", w("visual.proj"));
  }
  std::shared_ptr<NamedParams> conv1;
  at::Tensor class_embedding, positional_embedding, proj;
  std::shared_ptr<AffineParams> ln_pre, ln_post;
  std::shared_ptr<Blocks> transformer;
};

class TextTransformer : public torch::nn::Module {
 public:
  TextTransformer(const WeightSource& w, const TextConfig& c, Activation activation) {
    token_embedding =
        register_module("token_embedding", std::make_shared<NamedParams>(w, "token_embedding.", std::vector<std::string>{"weight"}));
    positional_embedding = register_parameter("positional_embedding", w("positional_embedding"));
    transformer = register_module("transformer", std::make_shared<Blocks>(w, "transformer.", c.layers, c.heads, activation));
    ln_final = register_module("ln_final", std::make_shared<AffineParams>(w, "ln_final."));
    text_projection = register_parameter("text_projection", w("text_projection"));
  }
  std::shared_ptr<NamedParams> token_embedding;
  at::Tensor positional_embedding, text_projection;
  std::shared_ptr<Blocks> transformer;
  std::shared_ptr<AffineParams> ln_final;
};

namespace {
bool is_layer_norm(const std::string& name) { return name.find(".ln_") != std::string::npos || name.rfind("ln_", 0) == 0; }
}  // namespace

ClipModel::ClipModel(const TensorMap& tensors, const ClipConfig& config, const ModelOptions& options)
    : config_(config), device_(options.device), dtype_(precision_dtype(options.precision)) {
  if (options.activation) config_.activation = *options.activation;
  if (options.precision == Precision::FP16 && !device_.is_cuda())
    throw Error("--precision fp16 needs a CUDA device (use bf16 on CPU)");
  // Weights are converted once here; LayerNorms and logit_scale stay float32
  // (OpenAI keeps them in fp32 too, spec §1).
  const WeightSource source = [&](const std::string& name) {
    const at::Tensor& t = tensors.at(name);
    const at::ScalarType target = is_layer_norm(name) || name == "logit_scale" ? at::kFloat : dtype_;
    return t.to(device_, target, /*non_blocking=*/false, /*copy=*/true).set_requires_grad(options.trainable);
  };
  visual_ = register_module("visual", std::make_shared<VisionTransformer>(source, config.vision, config_.activation));
  text_ = std::make_shared<TextTransformer>(source, config.text, config_.activation);
  // The text tower's weights sit at the top level in OpenAI's names.
  for (const auto& item : text_->named_children()) register_module(item.key(), item.value());
  for (const auto& item : text_->named_parameters(false))
    register_parameter(item.key(), item.value(), options.trainable);
  logit_scale_ = register_parameter("logit_scale", source("logit_scale"), options.trainable);
  if (dtype_ != at::kFloat && !options.trainable) {
    const WeightSource fp32 = [&](const std::string& name) {
      return tensors.at(name).to(device_, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
    };
    const int last = config.vision.layers - 1;
    last_block_fp32_ = std::make_shared<ResidualAttentionBlock>(
        fp32, "visual.transformer.resblocks." + std::to_string(last) + ".", config.vision.heads, config_.activation);
    proj_fp32_ = fp32("visual.proj");
  }
}

const ResidualAttentionBlock& ClipModel::vision_block(int block) const {
  if (last_block_fp32_ && block == config_.vision.layers - 1) return *last_block_fp32_;
  return *visual_->transformer->list.at(block);
}

std::shared_ptr<ClipModel> ClipModel::load(const std::string& path, const ModelOptions& options) {
  const Checkpoint ckpt = load_checkpoint(path, options.activation);
  ClipConfig config = ClipConfig::infer(ckpt.tensors, path);
  config.activation = ckpt.activation;
  return std::make_shared<ClipModel>(ckpt.tensors, config, options);
}

double ClipModel::logit_scale_exp() const { return std::exp(logit_scale_.item<double>()); }

at::Tensor ClipModel::position_embedding(int64_t grid_h, int64_t grid_w, PositionResize resize) const {
  const at::Tensor& pos = visual_->positional_embedding;
  const int64_t g = config_.vision.grid, d = pos.size(1);
  if (grid_h == g && grid_w == g) return pos;
  // Spec §3.5: patch rows as a D×g×g image, resized to h×w (no antialias),
  // flattened row-major, CLS row in front.
  at::Tensor patches = pos.slice(0, 1).t().reshape({1, d, g, g}).to(at::kFloat);
  at::Tensor resized;
  switch (resize) {
    case PositionResize::Bilinear:
      resized = at::upsample_bilinear2d(patches, {grid_h, grid_w}, /*align_corners=*/false);
      break;
    case PositionResize::BicubicToSize:
      resized = at::upsample_bicubic2d(patches, {grid_h, grid_w}, /*align_corners=*/false);
      break;
    case PositionResize::BicubicNaclip:
      // F.interpolate(scale_factor=((h+0.1)/g, (w+0.1)/g), recompute_scale_factor=False):
      // the source coordinate is (dst + 0.5)·g/(h + 0.1) − 0.5, not ·g/h.
      resized = at::upsample_bicubic2d(patches, {grid_h, grid_w}, /*align_corners=*/false,
                                       (static_cast<double>(grid_h) + 0.1) / static_cast<double>(g),
                                       (static_cast<double>(grid_w) + 0.1) / static_cast<double>(g));
      break;
  }
  resized = resized.reshape({d, grid_h * grid_w}).t().to(pos.scalar_type());
  return torch::cat({pos.slice(0, 0, 1), resized}, 0);
}

at::Tensor ClipModel::embed_image(const at::Tensor& images, bool round_pos_to_fp16, PositionResize resize) const {
  const int p = config_.vision.patch_size;
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) % p || images.size(3) % p)
    throw Error("image batch must be [B, 3, H, W] with H and W multiples of " + std::to_string(p));
  const at::Tensor x_in = images.to(device_, dtype_);
  at::Tensor x = at::conv2d(x_in, visual_->conv1->get("weight"), {}, {p, p});  // [B, D, h, w]
  const int64_t b = x.size(0), d = x.size(1), gh = x.size(2), gw = x.size(3);
  x = x.flatten(2).transpose(1, 2);  // [B, n, D]
  const at::Tensor cls = visual_->class_embedding.view({1, 1, d}).expand({b, 1, d});
  x = torch::cat({cls, x}, 1);
  at::Tensor pos = position_embedding(gh, gw, resize);
  if (round_pos_to_fp16) pos = pos.to(at::kHalf).to(x.scalar_type());
  x = x + pos;
  return layer_norm_fp32(x, *visual_->ln_pre);
}

at::Tensor ClipModel::run_blocks(const at::Tensor& x_in, int begin, int end, std::vector<at::Tensor>* attn,
                                 int keep_attn_from) const {
  at::Tensor x = x_in;
  for (int i = begin; i < end; ++i) {
    at::Tensor a;
    const bool keep = attn && i >= keep_attn_from;
    x = visual_->transformer->list.at(i)->forward(x, {}, keep ? &a : nullptr);
    if (keep) attn->push_back(a);
  }
  return x;
}

DenseForward ClipModel::dense_forward(const at::Tensor& images, const DenseForwardOptions& options) const {
  DenseForward out;
  const int layers = config_.vision.layers;
  std::vector<int> taps;
  for (int t : options.ln2_taps) {
    const int block = t < 0 ? layers + t : t;
    if (block < 0 || block >= layers - 1)
      throw Error("ln_2 tap at block " + std::to_string(t) + ": the model has blocks 0.." + std::to_string(layers - 2) +
                  " before the last");
    taps.push_back(block);
  }
  at::Tensor x = embed_image(images, options.round_pos_to_fp16, options.position);
  const at::Tensor mask = options.attention_mask.defined() ? options.attention_mask.to(x.device(), x.scalar_type())
                                                           : at::Tensor();
  out.grid_h = images.size(2) / config_.vision.patch_size;
  out.grid_w = images.size(3) / config_.vision.patch_size;
  for (int i = 0; i < layers - 1; ++i) {
    const bool keep_attn = options.keep_attention_from >= 0 && i >= options.keep_attention_from;
    const bool tap = std::find(taps.begin(), taps.end(), i) != taps.end();
    at::Tensor attn, ln2;
    x = visual_->transformer->list.at(static_cast<size_t>(i))->forward(x, mask, keep_attn ? &attn : nullptr,
                                                                       tap ? &ln2 : nullptr);
    if (keep_attn) out.attention.push_back(attn);
    if (tap) out.ln2_taps[i] = ln2;
  }
  // The last block in the trunk's dtype (the fp32 copy is CLIP-ES's gradient path).
  const ResidualAttentionBlock& last = *visual_->transformer->list.at(static_cast<size_t>(layers - 1));
  const bool standard_attention = options.last_block.kind == LastBlockKind::Standard ||
                                  options.last_block.kind == LastBlockKind::SelfMasked;
  const bool keep_last = options.keep_attention_from >= 0 && standard_attention;
  at::Tensor last_attn;
  x = run_last_block(last, options.last_block, x, out.grid_h, out.grid_w, keep_last ? &last_attn : nullptr,
                     standard_attention ? mask : at::Tensor());
  if (keep_last) out.attention.push_back(last_attn);
  const at::Tensor projected = vision_project(vision_ln_post(x));  // [B, L, E]
  out.cls_feature = projected.select(1, 0);
  out.patch_features = projected.slice(1, 1);
  return out;
}

at::Tensor ClipModel::vision_block_ln1(int block, const at::Tensor& x) const {
  const ResidualAttentionBlock& b = vision_block(block);
  return b.ln1(&b == last_block_fp32_.get() ? x.to(at::kFloat) : x);
}

at::Tensor ClipModel::forward_after_ln1(int block, const at::Tensor& x, const at::Tensor& ln1_out,
                                        at::Tensor* head_avg_attn) const {
  const ResidualAttentionBlock& b = vision_block(block);
  return b.forward_after_ln1(&b == last_block_fp32_.get() ? x.to(at::kFloat) : x, ln1_out, {}, head_avg_attn);
}

at::Tensor ClipModel::vision_ln_post(const at::Tensor& x) const { return layer_norm_fp32(x, *visual_->ln_post); }

at::Tensor ClipModel::vision_project(const at::Tensor& x) const {
  if (proj_fp32_.defined() && x.scalar_type() == at::kFloat) return at::matmul(x, proj_fp32_);
  return at::matmul(x, visual_->proj.to(x.scalar_type()));
}

at::Tensor ClipModel::encode_image(const at::Tensor& images) const {
  at::Tensor x = run_blocks(embed_image(images), 0, config_.vision.layers);
  return vision_project(vision_ln_post(x.select(1, 0)));
}

at::Tensor ClipModel::encode_text(const at::Tensor& tokens_in) const {
  const at::Tensor tokens = tokens_in.to(device_, at::kLong);
  const int64_t n = tokens.size(0), l = tokens.size(1);
  at::Tensor x = at::embedding(text_->token_embedding->get("weight"), tokens) +
                 text_->positional_embedding.slice(0, 0, l);
  // Causal mask: -inf above the diagonal.
  const at::Tensor mask = torch::full({l, l}, -std::numeric_limits<float>::infinity(),
                                      torch::TensorOptions().dtype(x.scalar_type()).device(device_))
                              .triu(1);
  for (const auto& block : text_->transformer->list) x = block->forward(x, mask);
  x = layer_norm_fp32(x, *text_->ln_final);
  const at::Tensor eot = tokens.argmax(-1);  // EOT has the largest id (spec §1)
  x = x.index({torch::arange(n, torch::TensorOptions().dtype(at::kLong).device(device_)), eot});
  return at::matmul(x, text_->text_projection);
}

TensorMap ClipModel::state() const {
  TensorMap out;
  for (const auto& item : named_parameters(true)) out[item.key()] = item.value().detach();
  return out;
}

}  // namespace clipes

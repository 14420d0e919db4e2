#include "clipes/model/clip_model.h"

#include <torch/torch.h>

#include <algorithm>

#include "clipes/model/checkpoint.h"
#include "clipes/util/error.h"
#include "clipes/util/option_error.h"

namespace clipes {

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::FP32;
  if (text == "bf16") return Precision::BF16;
  if (text == "fp16") return Precision::FP16;
  throw option_error(option_key("precision") + " " + printable(text) + ": expected fp32, bf16 or fp16");
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
    throw option_error(option_key("precision") + " fp16 needs a CUDA device (use bf16 on CPU)");
  // Weights are converted once here; LayerNorms and logit_scale stay float32
  // (OpenAI keeps them in fp32 too, spec §1).
  const WeightSource source = [&](const std::string& name) {
    const at::Tensor& t = tensors.at(name);
    const at::ScalarType target = is_layer_norm(name) || name == "logit_scale" ? at::kFloat : dtype_;
    // No copy when the checkpoint's tensor already has the compute type: the
    // loaded map is dropped after construction, and copying every weight
    // doubled the peak RSS at load (1.3 GB for a fp32 ViT-B/16). A trained
    // model gets its own storage (its weights change under the optimiser).
    return t.to(device_, target, /*non_blocking=*/false, /*copy=*/options.trainable)
        .set_requires_grad(options.trainable);
  };
  visual_ = register_module("visual", std::make_shared<VisionTransformer>(source, config.vision, config_.activation));
  // The text tower stays float32 in bf16 on the CPU: it runs once per run
  // (class and background prompts), so bf16 would buy nothing, and bf16 text
  // features moved every label's softmax-GradCAM weights by ~8 % on the
  // fixture (the 100× logit scale amplifies a 2^-8 rounding), far more than
  // the bf16 trunk does.
  const bool text_fp32 = dtype_ == at::kBFloat16 && device_.is_cpu() && !options.trainable;
  const WeightSource text_source = [&](const std::string& name) {
    return text_fp32 ? tensors.at(name).to(device_, at::kFloat, false, false) : source(name);
  };
  text_ = std::make_shared<TextTransformer>(text_source, config.text, config_.activation);
  // The text tower's weights sit at the top level in OpenAI's names.
  for (const auto& item : text_->named_children()) register_module(item.key(), item.value());
  for (const auto& item : text_->named_parameters(false))
    register_parameter(item.key(), item.value(), options.trainable);
  logit_scale_ = register_parameter("logit_scale", source("logit_scale"), options.trainable);
  if (dtype_ != at::kFloat && !options.trainable) {
    const WeightSource fp32 = [&](const std::string& name) {
      return tensors.at(name).to(device_, at::kFloat, /*non_blocking=*/false, /*copy=*/false);
    };
    const int last = config.vision.layers - 1;
    last_block_fp32_ = std::make_shared<ResidualAttentionBlock>(
        fp32, "visual.transformer.resblocks." + std::to_string(last) + ".", config.vision.heads, config_.activation);
    proj_fp32_ = fp32("visual.proj");
  }
  if (options.engine == EngineKind::Fused && device_.is_cpu() && !options.trainable) {
    // The engine runs on these very tensors in fp32 (no copy) and packs bf16
    // ones once; the last block also in float32 for CLIP-ES's gradients.
    auto block_weights = [](const ResidualAttentionBlock& b) {
      const auto p = b.named_parameters(true);
      EngineBlockWeights w;
      w.ln_1_weight = p["ln_1.weight"], w.ln_1_bias = p["ln_1.bias"];
      w.in_proj_weight = p["attn.in_proj_weight"], w.in_proj_bias = p["attn.in_proj_bias"];
      w.out_proj_weight = p["attn.out_proj.weight"], w.out_proj_bias = p["attn.out_proj.bias"];
      w.ln_2_weight = p["ln_2.weight"], w.ln_2_bias = p["ln_2.bias"];
      w.c_fc_weight = p["mlp.c_fc.weight"], w.c_fc_bias = p["mlp.c_fc.bias"];
      w.c_proj_weight = p["mlp.c_proj.weight"], w.c_proj_bias = p["mlp.c_proj.bias"];
      for (at::Tensor* t : {&w.ln_1_weight, &w.ln_1_bias, &w.in_proj_weight, &w.in_proj_bias, &w.out_proj_weight,
                            &w.out_proj_bias, &w.ln_2_weight, &w.ln_2_bias, &w.c_fc_weight, &w.c_fc_bias,
                            &w.c_proj_weight, &w.c_proj_bias})
        *t = t->detach();
      return w;
    };
    std::vector<EngineBlockWeights> blocks;
    for (const auto& b : visual_->transformer->list) blocks.push_back(block_weights(*b));
    const EngineBlockWeights last = block_weights(vision_block(config.vision.layers - 1));
    engine_ = std::make_shared<VitEngine>(blocks, last, config.vision.heads,
                                          config_.activation == Activation::Gelu ? EngineActivation::Gelu
                                                                                 : EngineActivation::QuickGelu,
                                          dtype_ == at::kBFloat16);
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

TrunkOutput ClipModel::run_trunk(const at::Tensor& x_in, int begin, int end, const TrunkTaps& taps) const {
  const int layers = config_.vision.layers;
  if (begin < 0 || end > layers || begin > end)
    throw Error("blocks [" + std::to_string(begin) + ", " + std::to_string(end) + ") out of 0.." +
                std::to_string(layers));
  if (engine_ && !at::GradMode::is_enabled() && x_in.device().is_cpu()) return engine_->run(x_in, begin, end, taps);
  TrunkOutput out;
  const at::Tensor mask = taps.attention_mask.defined()
                              ? taps.attention_mask.to(x_in.device(), x_in.scalar_type())
                              : at::Tensor();
  at::Tensor x = x_in;
  for (int i = begin; i < end; ++i) {
    const bool keep = taps.attention_from >= 0 && i >= taps.attention_from;
    const bool tap = std::find(taps.ln2_taps.begin(), taps.ln2_taps.end(), i) != taps.ln2_taps.end();
    at::Tensor attn, ln2;
    x = visual_->transformer->list.at(static_cast<size_t>(i))->forward(x, mask, keep ? &attn : nullptr,
                                                                       tap ? &ln2 : nullptr);
    if (keep && taps.attention_sum_only) {
      // As AttentionAffinity sums the maps: float32 head averages, summed in float64.
      const at::Tensor a = attn.detach().to(at::kDouble);
      out.attention_sum = out.attention_sum.defined() ? out.attention_sum + a : a;
      ++out.attention_count;
    } else if (keep) {
      out.attention.push_back(attn);
    }
    if (tap) out.ln2[i] = ln2;
  }
  out.x = x;
  return out;
}

at::Tensor ClipModel::run_blocks(const at::Tensor& x, int begin, int end, std::vector<at::Tensor>* attn,
                                 int keep_attn_from) const {
  TrunkTaps taps;
  if (attn) taps.attention_from = keep_attn_from;
  TrunkOutput out = run_trunk(x, begin, end, taps);
  if (attn)
    for (auto& a : out.attention) attn->push_back(a);
  return out.x.to(x.scalar_type());
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
  const at::Tensor x_embedded = embed_image(images, options.round_pos_to_fp16, options.position);
  const at::Tensor mask = options.attention_mask.defined()
                              ? options.attention_mask.to(x_embedded.device(), x_embedded.scalar_type())
                              : at::Tensor();
  out.grid_h = images.size(2) / config_.vision.patch_size;
  out.grid_w = images.size(3) / config_.vision.patch_size;
  TrunkTaps trunk_taps;
  trunk_taps.attention_from = options.keep_attention_from;
  trunk_taps.ln2_taps = taps;
  trunk_taps.attention_mask = mask;
  TrunkOutput trunk = run_trunk(x_embedded, 0, layers - 1, trunk_taps);
  for (auto& a : trunk.attention) out.attention.push_back(a);
  for (auto& t : trunk.ln2) out.ln2_taps[t.first] = t.second.to(dtype_);
  at::Tensor x = trunk.x;
  // The last block in the trunk's dtype (the fp32 copy is CLIP-ES's gradient path).
  const ResidualAttentionBlock& last = *visual_->transformer->list.at(static_cast<size_t>(layers - 1));
  const bool standard_attention = options.last_block.kind == LastBlockKind::Standard ||
                                  options.last_block.kind == LastBlockKind::SelfMasked;
  const bool keep_last = options.keep_attention_from >= 0 && standard_attention;
  if (standard_attention && engine_ && !at::GradMode::is_enabled() && x.device().is_cpu()) {
    // The standard and self-masked blocks are the trunk's block with a score
    // bias: the same engine path, one block further.
    const bool self_masked = options.last_block.kind == LastBlockKind::SelfMasked;
    // The self-masked block hands out its attention without the mask
    // (run_last_block, segment-spec §5 quirk a): taken from q·kᵀ alone here.
    if (keep_last && self_masked) out.attention.push_back(last.attention_weights(last.ln1(x.to(dtype_))));
    TrunkTaps last_taps;
    last_taps.attention_from = keep_last && !self_masked ? layers - 1 : -1;
    last_taps.attention_mask = self_masked ? self_attention_mask(x.size(1), x.options().dtype(at::kFloat)) : mask;
    TrunkOutput o = run_trunk(x, layers - 1, layers, last_taps);
    if (keep_last && !self_masked) out.attention.push_back(o.attention.at(0));
    x = o.x;
  } else {
    at::Tensor last_attn;
    x = run_last_block(last, options.last_block, x.to(dtype_), out.grid_h, out.grid_w,
                       keep_last ? &last_attn : nullptr, standard_attention ? mask : at::Tensor());
    if (keep_last) out.attention.push_back(last_attn);
  }
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

at::Tensor ClipModel::vision_ln_post_weight() const { return visual_->ln_post->weight.detach(); }

at::Tensor ClipModel::vision_proj_fp32() const {
  return proj_fp32_.defined() ? proj_fp32_ : visual_->proj.detach().to(at::kFloat);
}

at::Tensor ClipModel::vision_project(const at::Tensor& x) const {
  if (proj_fp32_.defined() && x.scalar_type() == at::kFloat) return at::matmul(x, proj_fp32_);
  return at::matmul(x, visual_->proj.to(x.scalar_type()));
}

at::Tensor ClipModel::encode_image(const at::Tensor& images) const {
  const at::Tensor x = run_trunk(embed_image(images), 0, config_.vision.layers).x.to(dtype_);
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

// ClipConfig — the CLIP architecture, read from tensor shapes (spec §1), the
// way open_clip infers a config from a state dict: nothing about the network's
// size is hard-coded, so ViT-B/16, ViT-L/14 or a tiny test model all load.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace clipes {

using TensorMap = std::map<std::string, at::Tensor>;

// The MLP activation (segment-spec §0). OpenAI's weights use QuickGELU
// (x·σ(1.702x)); OpenCLIP's own LAION/DataComp weights use exact erf GELU.
// The weights cannot tell which, so a checkpoint's activation comes from its
// format or the config file beside it (model/checkpoint.h), or the user.
enum class Activation { QuickGelu, Gelu };
// "quick-gelu" (also "quick_gelu") | "gelu" → Activation; throws clipes::Error naming `option`.
Activation parse_activation(const std::string& text, const std::string& option = "--activation");
std::string to_string(Activation activation);  // "quick-gelu" | "gelu"

struct VisionConfig {
  int width = 0, layers = 0, heads = 0, patch_size = 0, grid = 0;  // grid: native side in patches
};
struct TextConfig {
  int width = 0, layers = 0, heads = 0, context_length = 0, vocab_size = 0;
};

struct ClipConfig {
  VisionConfig vision;
  TextConfig text;
  int embed_dim = 0;
  Activation activation = Activation::QuickGelu;  // not in the shapes: set by the loader

  // Infers the configuration from canonical (OpenAI-named) tensors and checks
  // that every expected tensor exists with the expected shape. Errors name
  // `path` and the tensor: "<path>: tensor visual.proj has shape [..], expected [..]".
  static ClipConfig infer(const TensorMap& tensors, const std::string& path);

  // OpenAI ViT-B/16: width 768, 12 layers, patch 16, 224 px; text 512/12/77/49408; embed 512.
  static ClipConfig vit_b_16();
  // OpenAI ViT-B/32: as ViT-B/16 with patch 32 (grid 7); LSeg's text tower (lseg-spec §5).
  static ClipConfig vit_b_32();

  // Every tensor name and shape this configuration needs.
  std::map<std::string, std::vector<int64_t>> expected_shapes() const;
  int64_t parameter_count() const;
  int image_size() const { return vision.patch_size * vision.grid; }
  std::string describe() const;  // one line, for logs and `clipes info`
};

// Random weights in the canonical layout (fp32), initialised like OpenAI's
// CLIP (normal std width^-0.5 etc.): for benchmarks and tests without weights.
TensorMap random_clip_weights(const ClipConfig& config, uint64_t seed = 0);

}  // namespace clipes

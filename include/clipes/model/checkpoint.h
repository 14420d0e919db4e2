// CLIP checkpoints in the three formats users have, read into one canonical
// tensor map with OpenAI's names (spec §1):
//   1. OpenAI release files — a TorchScript archive (ViT-B-16.pt);
//   2. OpenCLIP / torch.save state dicts — bare, under "state_dict" or
//      "model", optionally with "module." prefixes;
//   3. Hugging Face safetensors (openai/clip-vit-base-patch16) — other names,
//      separate q/k/v.
// The format is detected from the content, not the file name. Anything wrong
// is one clipes::Error line naming the file (and the tensor), never a crash
// or a partial load.
//
// The MLP activation is not in the weights (segment-spec §0): a TorchScript
// archive is OpenAI's (QuickGELU); a state dict or safetensors file takes it
// from the config file its publisher puts beside it — open_clip_config.json
// (model_cfg.quick_gelu) or config.json (hidden_act) — or from the caller
// (--activation). A state dict with neither fails and says what to pass: a
// guess would give wrong features without a word. A safetensors file with
// neither gets transformers' own default (quick_gelu), which is what
// transformers would load it with.
#pragma once
#include <optional>
#include <string>

#include "clipes/model/clip_config.h"  // TensorMap

namespace clipes {

enum class CheckpointFormat { OpenAITorchScript, StateDict, HuggingFaceSafetensors };
std::string to_string(CheckpointFormat format);

struct Checkpoint {
  std::string path;
  CheckpointFormat format = CheckpointFormat::OpenAITorchScript;
  TensorMap tensors;          // canonical names, stored dtype, CPU
  std::string storage_dtype;  // dtype of the bulk of the weights ("Half", "Float", ...)
  Activation activation = Activation::QuickGelu;
  std::string activation_source;  // where it came from, for `clipes info` ("open_clip_config.json", ...)
};

// Loads and validates (ClipConfig::infer runs on the result). `activation`,
// when given, overrides what the format or the config beside the file says.
Checkpoint load_checkpoint(const std::string& path, std::optional<Activation> activation = std::nullopt);

// The activation a config file states, or nullopt when it states none.
// Reads open_clip_config.json ({"model_cfg": {"quick_gelu": b}} or a bare
// model config {"quick_gelu": b}; an OpenCLIP config without the key means
// GELU, OpenCLIP's default) and Hugging Face config.json ("hidden_act", also
// under "vision_config"). Throws clipes::Error naming the file if it is not JSON.
std::optional<Activation> activation_from_config_file(const std::string& config_path);

// The tensors of any torch.save zip holding a dict of tensors: top level, or
// nested under "state_dict", "model" or "model_state_dict" (training
// checkpoints); "module." prefixes removed. The archive is CRC-checked first.
// For small companion files (CLIP-DINOiser's heads); no CLIP validation.
TensorMap read_torch_save_tensors(const std::string& path);

// Hugging Face names ↔ canonical names (q/k/v split or joined, projections transposed).
TensorMap canonical_from_hf(const TensorMap& hf, const std::string& path);
TensorMap hf_from_canonical(const TensorMap& canonical);

// Writers, for converters, tests and the toy model.
struct StateDictLayout {
  bool nested = false;        // {"state_dict": {...}}
  bool module_prefix = false; // "module.visual.conv1.weight"
};
void save_state_dict(const std::string& path, const TensorMap& canonical, StateDictLayout layout = {});
void save_hf_safetensors(const std::string& path, const TensorMap& canonical);
// A TorchScript archive with OpenAI's module layout and scalar buffers
// (input_resolution, context_length, vocab_size). It holds weights only (no
// forward method): enough for clipes and any loader that reads parameters.
void save_openai_torchscript(const std::string& path, const TensorMap& canonical, const ClipConfig& config);

}  // namespace clipes

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
#pragma once
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
};

// Loads and validates (ClipConfig::infer runs on the result).
Checkpoint load_checkpoint(const std::string& path);

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

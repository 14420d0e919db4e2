// ModelOptions — how a network is run (precision, device, trainable, engine),
// whatever the network: ClipModel and LsegModel take the same options, and
// the CLI builds them once from --precision/--device/--engine.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

#include "clipes/engine/vit_engine.h"   // EngineKind
#include "clipes/model/clip_config.h"   // Activation

namespace clipes {

enum class Precision { FP32, BF16, FP16 };
// "fp32" | "bf16" | "fp16" → Precision; throws clipes::Error otherwise.
Precision parse_precision(const std::string& text);
at::ScalarType precision_dtype(Precision p);

struct ModelOptions {
  Precision precision = Precision::FP32;
  std::string device = "cpu";  // "cpu", "cuda", "cuda:1"
  bool trainable = false;      // keep requires_grad on the weights (training)
  // Overrides the checkpoint's MLP activation (model/checkpoint.h; --activation).
  std::optional<Activation> activation;
  // Fused: the vision blocks run on the CPU engine (engine/vit_engine.h)
  // whenever the device is the CPU and the weights are not being trained;
  // Reference: LibTorch's blocks everywhere (--engine reference).
  EngineKind engine = EngineKind::Fused;
};

}  // namespace clipes

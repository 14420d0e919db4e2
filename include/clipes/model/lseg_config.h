// LsegConfig — the sizes of an LSeg network (isl-org/lang-seg, "clip_vitl16_384"
// backbone: timm ViT + DPT decoder + CLIP text tower), read from the tensor
// shapes of its PyTorch-Lightning checkpoint (lseg-spec §9), so the released
// ViT-L/16 files and the tiny test checkpoint load through the same code.
//
// What the shapes cannot tell — which blocks are hooked and the ViT head
// count — comes from LsegSettings, whose defaults are the released models'
// (lseg-spec §9 "Not in the file at all").
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "clipes/model/clip_config.h"  // TensorMap, ClipConfig

namespace clipes {

struct LsegSettings {
  // 0-based indices of the ViT blocks whose raw outputs feed the decoder
  // (lseg-spec §2 item 5): [5, 11, 17, 23] for clip_vitl16_384.
  std::vector<int> hooks = {5, 11, 17, 23};
  // ViT attention heads. 0 means width / 64: timm's ViTs use head dim 64
  // (ViT-L/16: 1024 / 64 = 16, lseg-spec §2). A model with another head dim
  // (the tiny fixture: width 32, 2 heads) must say so.
  int vit_heads = 0;
};

struct LsegConfig {
  // ViT trunk (lseg-spec §2).
  int vit_width = 0, vit_depth = 0, vit_heads = 0, patch_size = 0;
  int pos_grid = 0;  // side of the stored position table (24 for 384 px)
  std::vector<int> hooks;
  // DPT reassemble widths c_1..c_4 (lseg-spec §3): 256, 512, 1024, 1024.
  std::array<int, 4> reassemble_widths{};
  int features = 0;  // decoder width F (lseg-spec §4): 256
  int out_c = 0;     // pixel/text embedding width C (lseg-spec §4 head1): 512
  ClipConfig clip;   // the CLIP inside the checkpoint (only its text tower is used, lseg-spec §5)

  // Infers the configuration from a checkpoint's tensors as stored (keys
  // "net.…", lseg-spec §9) and checks that every tensor the forward uses
  // exists with the expected shape. Errors are clipes::Error naming `path`
  // and the key.
  static LsegConfig infer(const TensorMap& checkpoint, const std::string& path, const LsegSettings& settings = {});

  // Every "net.pretrained.*" / "net.scratch.*" key the forward reads, with its shape.
  std::map<std::string, std::vector<int64_t>> expected_shapes() const;
  std::string describe() const;  // one line, for logs

  // The released models' sizes (demo_e200.ckpt and the other clip_vitl16_384
  // checkpoints, lseg-spec §9): ViT-L/16 at 384 px (24 blocks, 16 heads),
  // reassemble 256/512/1024/1024, F = 256, C = 512, CLIP ViT-B/32 text.
  static LsegConfig clip_vitl16_384();
  int64_t parameter_count() const;  // the tensors expected_shapes() names, plus the CLIP
};

// Random weights in the checkpoint's layout ("net.…" keys, float32) for a
// configuration: what `clipes bench --method lseg` times when no checkpoint
// is at hand (the released files are 1.9 GB and cannot be fetched here).
// Linear/conv weights normal with std fan_in^-0.5 (the ViT's residual
// branches also scaled by (2·depth)^-0.5, as random_clip_weights), norms 1/0,
// BatchNorm statistics 0/1: activations keep a sane range through 24 blocks.
TensorMap random_lseg_weights(const LsegConfig& config, uint64_t seed = 0);

// The prefix every state_dict key of an LSegModule carries (lseg-spec §9, §10 item 12).
inline constexpr const char* kLsegPrefix = "net.";

}  // namespace clipes

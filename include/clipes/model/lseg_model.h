// LsegModel — the LSeg network (isl-org/lang-seg, ICLR 2022) forward pass,
// reproducing LSegNet.forward of the official code (lseg-spec §1): a timm ViT
// trunk, DPT reassemble + RefineNet decoder to per-pixel embeddings, CLIP
// text features, and the per-pixel logits with LSeg's fp16 step.
//
// On the CPU, float32 or bf16 (ModelOptions::precision). The ViT trunk runs
// on the fused CPU engine (engine/vit_engine.h, the one CLIP's vision tower
// uses) unless ModelOptions::engine is Reference, LibTorch's ops then. The
// decoder is LibTorch's convolutions, in the compute type, with each
// BatchNorm folded into the convolution before it. The text tower and the
// logit step stay float32 (lseg-spec §6's fp16 step needs float32 inputs).
// Each stage is a public method so that tests (and tools) can compare every
// intermediate with the official hooks' outputs; they return the compute type.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "clipes/model/lseg_config.h"
#include "clipes/model/model_options.h"

namespace clipes {

class ClipModel;
class VitEngine;

// LSeg's logit scale: exp(float32(ln(1/0.07))), a constant of the code, not a
// checkpoint tensor (lseg-spec §6). 0x1.c92492p+3.
inline constexpr float kLsegLogitScale = 14.285714149475098f;

// Every intermediate of one forward, in the official order (lseg-spec §1).
struct LsegStages {
  std::vector<at::Tensor> hooks;        // raw outputs of the hooked blocks [B, 1+N, D], cls first
  std::vector<at::Tensor> reassembled;  // r1..r4 (lseg-spec §3)
  std::vector<at::Tensor> layer_rn;     // l1..l4 [B, F, ·, ·] (lseg-spec §4)
  std::vector<at::Tensor> paths;        // p1..p4, p1 the finest [B, F, H/2, W/2]
  at::Tensor image_features;            // head1 output [B, C, H/2, W/2], not normalised
};

class LsegModel {
 public:
  // From a checkpoint's tensors as stored ("net.…" keys, lseg-spec §9);
  // `path` is the file named in errors. Weights are copied to the compute
  // type. options: precision (fp32 | bf16) and engine; the device must be the
  // CPU and the weights are never trained (anything else is a clipes::Error).
  LsegModel(const TensorMap& checkpoint, const std::string& path, const LsegSettings& settings = {},
            const ModelOptions& options = {});
  // Reads a PyTorch-Lightning .ckpt (model/checkpoint.h read_torch_save_tensors).
  static LsegModel load(const std::string& path, const LsegSettings& settings = {}, const ModelOptions& options = {});
  ~LsegModel();
  LsegModel(LsegModel&&) noexcept;
  LsegModel& operator=(LsegModel&&) noexcept;

  const LsegConfig& config() const { return config_; }
  at::ScalarType compute_type() const { return dtype_; }  // float32 or bfloat16
  bool fused_trunk() const { return engine_ != nullptr; }

  // --- text (lseg-spec §5) ---
  // CLIP encode_text at the EOT token: [K, ctx] int64 → [K, C]. Not normalised.
  // The tokens are each label's raw text (BpeTokenizer::encode_for_model, no
  // prompt template: lseg-spec §5, §10 item 4); tokenising is text/'s job,
  // a layer above this one.
  at::Tensor encode_text(const at::Tensor& tokens) const;

  // --- image, stage by stage (x: [B, 3, H, W] normalised as lseg-spec §7,
  // H and W multiples of 32; anything else is a clipes::Error) ---
  std::vector<at::Tensor> vit_hooks(const at::Tensor& x) const;                        // lseg-spec §2
  std::vector<at::Tensor> reassemble(const std::vector<at::Tensor>& hooks, int64_t grid_h,
                                     int64_t grid_w) const;                            // lseg-spec §3
  std::vector<at::Tensor> layer_rn(const std::vector<at::Tensor>& reassembled) const;  // lseg-spec §4
  std::vector<at::Tensor> fuse(const std::vector<at::Tensor>& layer_rn) const;         // p1..p4, lseg-spec §4
  at::Tensor head(const at::Tensor& path1) const;                                      // head1
  LsegStages forward_stages(const at::Tensor& x) const;
  at::Tensor image_features(const at::Tensor& x) const;  // [B, C, H/2, W/2]

  // The network's output: logits [B, K, H, W] for text features [K, C]
  // (encode_text's, not normalised).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& text_features) const;
  // forward's last part, from fuse's p1 [B, F, H/2, W/2]: head1, the logits
  // (lseg_logits_lowres's arithmetic) and ×2, in slabs of rows — equal to
  // lseg_upsample_logits(lseg_logits_lowres(head(p1), text)) up to float32
  // summation order, without the whole C-channel map in memory.
  at::Tensor head_logits(const at::Tensor& path1, const at::Tensor& text_features) const;

 private:
  struct Weights;
  LsegConfig config_;
  std::string path_;
  std::unique_ptr<Weights> w_;
  std::shared_ptr<ClipModel> clip_;
  at::ScalarType dtype_;
  std::shared_ptr<VitEngine> engine_;  // the trunk's blocks, when fused
};

// lseg-spec §6: both sides L2-normalised (no epsilon), the image side rounded
// to fp16 and multiplied by the scale in fp16, the product in float32.
// image_features [B, C, h, w], text_features [K, C] → [B, K, h, w].
at::Tensor lseg_logits_lowres(const at::Tensor& image_features, const at::Tensor& text_features);
// output_conv: bilinear ×2 with align_corners=True (lseg-spec §1, §10 item 7).
at::Tensor lseg_upsample_logits(const at::Tensor& logits_lowres);

}  // namespace clipes

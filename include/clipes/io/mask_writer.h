// The per-image outputs of `generate` under OUT (spec §7):
//   OUT/masks/<stem>.png        indexed PNG, VOC palette, class ids (255 ignore); grey with --mask-mode grey
//   OUT/confidence/<stem>.png   8-bit grey, round(255·confidence)
//   OUT/cams/<stem>_cam.npy     float16 [K, H0, W0] unrefined CAMs   (--save-cams)
//   OUT/cams/<stem>_refined.npy float16 [K, H0, W0] refined CAMs     (--save-cams)
//   OUT/cams/<stem>_keys.npy    int64 [K] class indices (0-based)    (--save-cams)
// or, with CamFormat::ClipEs, the three in one OUT/cams/<stem>.npy pickled
// dict, the official CLIP-ES layout (io/clip_es_cams.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "clipes/io/pseudo_mask.h"

namespace at { class Tensor; }

namespace clipes {

struct MaskOutputPaths {
  std::string mask, confidence, cam, refined, keys;
  std::string clip_es;  // OUT/cams/<stem>.npy
  static MaskOutputPaths for_stem(const std::string& out_dir, const std::string& stem);
};

// How --save-cams stores the CAMs: three plain .npy arrays (numpy.load reads
// them without allow_pickle), or the official CLIP-ES pickled dict, which
// its eval_cam.py / eval_cam_with_crf.py read unchanged.
enum class CamFormat { Npy, ClipEs };
CamFormat parse_cam_format(const std::string& text);  // "npy" | "clip-es"; throws clipes::Error
const char* to_string(CamFormat format);

struct MaskWriteOptions {
  bool save_cams = false;
  CamFormat cam_format = CamFormat::Npy;
  // false: the mask PNG is an 8-bit grey image of the same ids, for readers
  // that do not know palettes: cv2.imread(mask, IMREAD_GRAYSCALE) on a
  // palette PNG returns the colours' luminance (0/75/220), not the ids.
  bool palette = true;
};

// Every file is written atomically and the mask PNG LAST, so "mask exists"
// means "this image is complete" (what resume relies on). cams/refined may be
// null unless options.save_cams; they may live on any device.
void write_mask_outputs(const MaskOutputPaths& paths, const PseudoMask& mask, const at::Tensor* cams,
                        const at::Tensor* refined, const std::vector<int64_t>& class_indices,
                        const MaskWriteOptions& options);

// True when every file these options produce exists.
bool mask_outputs_complete(const MaskOutputPaths& paths, const MaskWriteOptions& options);

}  // namespace clipes

// CAMs in the official CLIP-ES layout: one <stem>.npy per image, a pickled
// dict {'keys': int64 [K] class indices, 'attn_highres': float16 [K, H, W]
// refined CAMs, optionally 'highres': float16 [K, H, W] unrefined CAMs}, as
// generate_cams_voc12.py saves it and eval_cam.py / eval_cam_with_crf.py
// read it (np.load(..., allow_pickle=True).item()). `generate --cam-format
// clip-es` writes it; `eval --cams` and `visualize` read it, so clipes and
// the official scripts exchange CAM folders in both directions.
#pragma once
#include <string>

#include <ATen/core/Tensor.h>

namespace clipes {

struct ClipEsCams {
  at::Tensor keys;          // int64 [K]
  at::Tensor attn_highres;  // [K, H, W], the dtype of the file (float16 when the official code wrote it)
  at::Tensor highres;       // undefined when the file has none (the official code does not save it)
};

// Throws clipes::Error naming the file when it is not such a dict, an entry
// has the wrong rank, or the shapes disagree.
ClipEsCams read_clip_es_cams(const std::string& path);

// Writes atomically; float16 like the reference. highres may be undefined.
void write_clip_es_cams(const std::string& path, const at::Tensor& keys, const at::Tensor& attn_highres,
                        const at::Tensor& highres);

}  // namespace clipes

// CAMs from the patch grid to the image size (spec §6 last line): OpenCV
// INTER_LINEAR with half-pixel centres, as the reference's cv2.resize, so the
// saved CAMs match it.
#pragma once

namespace at { class Tensor; }

namespace clipes {

// cams: [K, h, w] (any device, any float dtype) → CPU float32 [K, height, width].
at::Tensor resize_cams_bilinear(const at::Tensor& cams, int height, int width);

}  // namespace clipes

// Pillow-exact bicubic resize for 8-bit images (spec §3 steps 3 and 7).
//
// The reference resizes with PIL's Image.resize(..., BICUBIC); CLIP-ES parity
// (≤ 1e-5 on the normalised input) needs the very same uint8 pixels, which
// neither cv::resize(INTER_CUBIC) nor torch's bicubic (a = −0.75, no antialias)
// give. This reimplements Pillow's separable, antialiased, fixed-point
// resampler: coefficients in double, normalised per output pixel, converted to
// 22-bit fixed point, accumulated in integers, rounded and clipped to uint8
// after each pass; horizontal pass first, and a pass is skipped when its
// dimension does not change.
#pragma once
#include <opencv2/core.hpp>

namespace clipes {

// `src` must be CV_8UC1, CV_8UC3 or CV_8UC4 (channels are resampled
// independently, so their order does not matter). Returns a new
// out_height × out_width image of the same type. Deterministic, parallel over rows.
// Throws clipes::Error on an empty image, another type, or a non-positive size.
cv::Mat pil_bicubic_resize(const cv::Mat& src, int out_width, int out_height);

}  // namespace clipes

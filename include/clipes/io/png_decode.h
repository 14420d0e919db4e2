// PNG decoding through libpng with our own error and warning handlers.
//
// OpenCV's PNG decoder leaves libpng's default handlers in place, so every
// damaged or merely unusual file prints "libpng warning: ..." / "libpng error:
// ..." on stderr (the library must never print). This decoder makes exactly
// the libpng calls OpenCV 4.6's PngDecoder makes for cv::imdecode(bytes,
// IMREAD_UNCHANGED), so its output is bit-identical to that: CV_8U or CV_16U;
// grey (1 channel, tRNS ignored), BGR, or BGRA for grey+alpha, RGBA and
// palette/RGB images with a tRNS chunk; no gamma or colour management.
// image_decode.cpp converts that to RGB as it does for every other format.
#pragma once
#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace clipes {

// Decodes the PNG in `bytes`. Warnings are dropped (OpenCV decodes on past them
// too); errors throw clipes::Error "<name>: cannot decode image (corrupt PNG:
// <libpng's message>)". A failed allocation throws cv::Exception or
// std::bad_alloc, which the caller turns into clipes::Error.
cv::Mat decode_png_like_opencv(const std::vector<uchar>& bytes, const std::string& name);

}  // namespace clipes

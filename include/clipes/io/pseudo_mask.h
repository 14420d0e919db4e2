// PseudoMask — a pseudo mask and its confidence map as they are written
// (io/mask_writer.h). A plain pair of images, so that io does not depend on
// the CAM code that makes them (cam/mask_from_cams.h).
#pragma once
#include <opencv2/core.hpp>

namespace clipes {

struct PseudoMask {
  cv::Mat labels;      // CV_8UC1 class ids (0 background, 255 ignore)
  cv::Mat confidence;  // CV_32FC1 winning score in [0, 1]
};

// round(255·conf) as CV_8UC1 (halves round up), for the confidence PNG.
cv::Mat confidence_to_u8(const cv::Mat& confidence);

}  // namespace clipes

#include "clipes/io/pseudo_mask.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "clipes/util/error.h"

namespace clipes {

cv::Mat confidence_to_u8(const cv::Mat& confidence) {
  if (confidence.type() != CV_32FC1) throw Error("confidence_to_u8: expected a CV_32FC1 map");
  cv::Mat out(confidence.size(), CV_8UC1);
  for (int y = 0; y < confidence.rows; ++y) {
    const float* src = confidence.ptr<float>(y);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int x = 0; x < confidence.cols; ++x) {
      const double v = std::min(1.0, std::max(0.0, static_cast<double>(src[x])));
      dst[x] = static_cast<uint8_t>(std::floor(255.0 * v + 0.5));
    }
  }
  return out;
}

}  // namespace clipes

#include "clipes/cam/cam_resize.h"

#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include "clipes/util/error.h"

namespace clipes {

at::Tensor resize_cams_bilinear(const at::Tensor& cams, int height, int width) {
  if (cams.dim() != 3) throw Error("resize_cams_bilinear: expected [K, h, w] CAMs");
  if (height <= 0 || width <= 0) throw Error("resize_cams_bilinear: target size must be positive");
  const at::Tensor src = cams.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t k = src.size(0);
  const int h = static_cast<int>(src.size(1)), w = static_cast<int>(src.size(2));
  at::Tensor out = torch::empty({k, height, width}, torch::kFloat);
  for (int64_t c = 0; c < k; ++c) {
    const cv::Mat in(h, w, CV_32FC1, src[c].data_ptr<float>());
    cv::Mat dst(height, width, CV_32FC1, out[c].data_ptr<float>());
    // Writes straight into the tensor: dst already has the right size and type.
    cv::resize(in, dst, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  }
  return out;
}

}  // namespace clipes

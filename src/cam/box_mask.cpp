#include "clipes/cam/box_mask.h"

#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "clipes/util/error.h"

namespace clipes {

std::vector<BoxMaskBox> cam_boxes(const cv::Mat& cam_f32, double threshold) {
  if (cam_f32.type() != CV_32FC1) throw Error("cam_boxes: expected a CV_32FC1 CAM");
  const int h = cam_f32.rows, w = cam_f32.cols;
  // (cam * 255).astype(np.uint8): a float32 product, truncated toward zero (spec §6).
  cv::Mat u8(h, w, CV_8UC1);
  for (int y = 0; y < h; ++y) {
    const float* src = cam_f32.ptr<float>(y);
    uint8_t* dst = u8.ptr<uint8_t>(y);
    for (int x = 0; x < w; ++x) {
      const float v = src[x] * 255.0f;
      dst[x] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : static_cast<uint8_t>(v);
    }
  }
  double max_value = 0;
  cv::minMaxLoc(u8, nullptr, &max_value);
  // int(θ · max): truncation, and strictly greater (cv2.threshold THRESH_BINARY).
  const int t = static_cast<int>(threshold * max_value);
  cv::Mat bin = u8 > t;  // 255 / 0

  std::vector<std::vector<cv::Point>> contours;
  std::vector<cv::Vec4i> hierarchy;
  cv::findContours(bin, contours, hierarchy, cv::RETR_TREE, cv::CHAIN_APPROX_SIMPLE);

  std::vector<BoxMaskBox> boxes;
  boxes.reserve(contours.size());
  for (const auto& contour : contours) {
    const cv::Rect r = cv::boundingRect(contour);
    // The reference clamps the exclusive end to w−1/h−1 (spec §6 quirk).
    boxes.push_back({r.x, r.y, std::min(r.x + r.width, w - 1), std::min(r.y + r.height, h - 1)});
  }
  return boxes;
}

at::Tensor box_mask(const at::Tensor& cam, double threshold) {
  if (cam.dim() != 2) throw Error("box_mask: expected a [h, w] CAM");
  const at::Tensor cpu = cam.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int h = static_cast<int>(cpu.size(0)), w = static_cast<int>(cpu.size(1));
  const cv::Mat view(h, w, CV_32FC1, const_cast<float*>(cpu.data_ptr<float>()));
  at::Tensor mask = torch::zeros({h, w}, torch::kFloat);
  for (const auto& b : cam_boxes(view, threshold)) {
    if (b.x1 > b.x0 && b.y1 > b.y0) mask.slice(0, b.y0, b.y1).slice(1, b.x0, b.x1).fill_(1.0f);
  }
  return mask.to(cam.device());
}

}  // namespace clipes

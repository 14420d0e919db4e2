#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/core.hpp>

#include "clipes/cam/box_mask.h"

using namespace clipes;

namespace {

// A CAM whose floor(255·v) is exactly `level` (the +0.5 keeps float rounding away from the boundary).
float level(int u8) { return (static_cast<float>(u8) + 0.5f) / 255.0f; }

at::Tensor to_tensor(const cv::Mat& m) {
  return torch::from_blob(const_cast<float*>(m.ptr<float>()), {m.rows, m.cols}, torch::kFloat).clone();
}

at::Tensor expected_boxes(int h, int w, const std::vector<BoxMaskBox>& boxes) {
  at::Tensor m = torch::zeros({h, w});
  for (const auto& b : boxes) m.slice(0, b.y0, b.y1).slice(1, b.x0, b.x1).fill_(1);
  return m;
}

}  // namespace

TEST(BoxMask, BoxTouchingRightAndBottomEdgeLosesThatColumnAndRow) {
  cv::Mat cam = cv::Mat::zeros(6, 8, CV_32FC1);
  cam(cv::Rect(5, 3, 3, 3)).setTo(1.0f);  // columns 5..7, rows 3..5: touches both edges
  const auto boxes = cam_boxes(cam, 0.4);
  ASSERT_EQ(boxes.size(), 1u);
  EXPECT_EQ(boxes[0].x0, 5);
  EXPECT_EQ(boxes[0].y0, 3);
  EXPECT_EQ(boxes[0].x1, 7);  // min(5+3, 8-1)
  EXPECT_EQ(boxes[0].y1, 5);  // min(3+3, 6-1)
  const at::Tensor mask = box_mask(to_tensor(cam), 0.4);
  EXPECT_TRUE(torch::equal(mask, expected_boxes(6, 8, {{5, 3, 7, 5}})));
  EXPECT_EQ(mask.sum().item<float>(), 4.0f);  // 2×2 of the 3×3 blob survive
  EXPECT_EQ(mask[5][5].item<float>(), 0.0f);
  EXPECT_EQ(mask[3][7].item<float>(), 0.0f);
}

TEST(BoxMask, InteriorBoxIsTheBoundingRectangle) {
  cv::Mat cam = cv::Mat::zeros(10, 10, CV_32FC1);
  cam.at<float>(2, 3) = 1.0f;
  cam.at<float>(4, 5) = 0.9f;  // 8-connected diagonal chain → one contour
  cam.at<float>(3, 4) = 0.8f;
  const auto boxes = cam_boxes(cam, 0.4);
  ASSERT_EQ(boxes.size(), 1u);
  EXPECT_EQ(boxes[0].x0, 3);
  EXPECT_EQ(boxes[0].y0, 2);
  EXPECT_EQ(boxes[0].x1, 6);
  EXPECT_EQ(boxes[0].y1, 5);
  EXPECT_TRUE(torch::equal(box_mask(to_tensor(cam), 0.4), expected_boxes(10, 10, {{3, 2, 6, 5}})));
}

TEST(BoxMask, RingWithHoleGivesOuterAndInnerContours) {
  // A square ring (rows/cols 1..7) with a 3×3 hole (3..5), plus a separate blob.
  cv::Mat cam = cv::Mat::zeros(12, 12, CV_32FC1);
  cam(cv::Rect(1, 1, 7, 7)).setTo(1.0f);
  cam(cv::Rect(3, 3, 3, 3)).setTo(0.0f);
  cam(cv::Rect(9, 9, 2, 2)).setTo(0.9f);
  auto boxes = cam_boxes(cam, 0.4);
  ASSERT_EQ(boxes.size(), 3u);  // RETR_TREE: outer ring, its hole, the blob
  std::sort(boxes.begin(), boxes.end(), [](const BoxMaskBox& a, const BoxMaskBox& b) {
    return std::tie(a.x0, a.y0, a.x1, a.y1) < std::tie(b.x0, b.y0, b.x1, b.y1);
  });
  // Outer ring: x 1..7 → [1, 8); the hole's contour runs along the ring pixels
  // around it (2..6) → [2, 7); the blob [9, 11).
  EXPECT_EQ(boxes[0].x0, 1);
  EXPECT_EQ(boxes[0].x1, 8);
  EXPECT_EQ(boxes[1].x0, 2);
  EXPECT_EQ(boxes[1].y0, 2);
  EXPECT_EQ(boxes[1].x1, 7);
  EXPECT_EQ(boxes[1].y1, 7);
  EXPECT_EQ(boxes[2].x0, 9);
  EXPECT_EQ(boxes[2].x1, 11);
  // The mask fills the ring's hole (boxes, not pixels) and covers the blob.
  const at::Tensor mask = box_mask(to_tensor(cam), 0.4);
  EXPECT_TRUE(torch::equal(mask, expected_boxes(12, 12, {{1, 1, 8, 8}, {9, 9, 11, 11}})));
  EXPECT_EQ(mask[4][4].item<float>(), 1.0f);
}

TEST(BoxMask, AllZeroCamGivesNoBoxes) {
  const cv::Mat cam = cv::Mat::zeros(7, 9, CV_32FC1);
  EXPECT_TRUE(cam_boxes(cam, 0.4).empty());
  const at::Tensor mask = box_mask(torch::zeros({7, 9}), 0.4);
  EXPECT_EQ(mask.scalar_type(), at::kFloat);
  EXPECT_EQ(mask.sum().item<float>(), 0.0f);
}

TEST(BoxMask, ThresholdIsIntOfThetaTimesUint8PeakStrictlyAbove) {
  // Peak 254 → t = int(0.4·254) = int(101.6) = 101: level 101 is out, 102 in.
  cv::Mat cam = cv::Mat::zeros(6, 6, CV_32FC1);
  cam.at<float>(1, 1) = level(254);
  cam.at<float>(1, 4) = level(101);
  cam.at<float>(4, 1) = level(102);
  cam.at<float>(4, 4) = 101.9f / 255.0f;  // floor → 101: out, although 101.9 > 101.6
  const at::Tensor mask = box_mask(to_tensor(cam), 0.4);
  EXPECT_TRUE(torch::equal(mask, expected_boxes(6, 6, {{1, 1, 2, 2}, {1, 4, 2, 5}})));
  EXPECT_EQ(mask[1][4].item<float>(), 0.0f);
  EXPECT_EQ(mask[4][1].item<float>(), 1.0f);
  EXPECT_EQ(mask[4][4].item<float>(), 0.0f);
  // θ = 0.7 (COCO): t = int(177.8) = 177 removes both.
  EXPECT_TRUE(torch::equal(box_mask(to_tensor(cam), 0.7), expected_boxes(6, 6, {{1, 1, 2, 2}})));
}

TEST(BoxMask, KeepsDeviceAndAcceptsOtherDtypes) {
  at::Tensor cam = torch::zeros({5, 5}, torch::kDouble);
  cam[2][2] = 1.0;
  const at::Tensor mask = box_mask(cam, 0.4);
  EXPECT_EQ(mask.device(), cam.device());
  EXPECT_EQ(mask.scalar_type(), at::kFloat);
  EXPECT_EQ(mask.sum().item<float>(), 1.0f);
}

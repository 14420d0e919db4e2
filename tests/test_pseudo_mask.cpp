#include <gtest/gtest.h>
#include <torch/torch.h>

#include "clipes/cam/mask_from_cams.h"

using namespace clipes;

namespace {
// [K, 1, N] from per-class rows of N pixel values.
at::Tensor cams_1xn(const std::vector<std::vector<float>>& rows) {
  std::vector<at::Tensor> t;
  for (const auto& r : rows) t.push_back(torch::tensor(r).view({1, -1}));
  return torch::stack(t);
}
}  // namespace

TEST(PseudoMask, ArgmaxOverBackgroundAndClassesWithDatasetIds) {
  // pixel 0: class A strong; 1: class B strong; 2: both weak → background.
  const at::Tensor refined = cams_1xn({{0.9f, 0.2f, 0.3f}, {0.1f, 0.8f, 0.25f}});
  PseudoMaskOptions exact;
  exact.float16_scores = false;  // compare float32 values exactly
  const PseudoMask m = make_pseudo_mask(refined, {15, 3}, exact);
  ASSERT_EQ(m.labels.type(), CV_8UC1);
  ASSERT_EQ(m.confidence.type(), CV_32FC1);
  ASSERT_EQ(m.labels.size(), cv::Size(3, 1));
  EXPECT_EQ(m.labels.at<uint8_t>(0, 0), 15);
  EXPECT_EQ(m.labels.at<uint8_t>(0, 1), 3);
  EXPECT_EQ(m.labels.at<uint8_t>(0, 2), 0);
  EXPECT_FLOAT_EQ(m.confidence.at<float>(0, 0), 0.9f);
  EXPECT_FLOAT_EQ(m.confidence.at<float>(0, 1), 0.8f);
  EXPECT_FLOAT_EQ(m.confidence.at<float>(0, 2), 1.0f - 0.3f);  // the background score
}

TEST(PseudoMask, TiesGoToBackgroundThenToTheEarlierClass) {
  const at::Tensor refined = cams_1xn({{0.5f, 0.7f}, {0.5f, 0.7f}});
  const PseudoMask m = make_pseudo_mask(refined, {1, 2});
  EXPECT_EQ(m.labels.at<uint8_t>(0, 0), 0);  // bg = 1 − 0.5 = 0.5 ties with both classes
  EXPECT_FLOAT_EQ(m.confidence.at<float>(0, 0), 0.5f);
  EXPECT_EQ(m.labels.at<uint8_t>(0, 1), 1);  // classes tie: the first wins
}

TEST(PseudoMask, BackgroundPowerLowersTheBackground) {
  const at::Tensor refined = cams_1xn({{0.4f}});
  EXPECT_EQ(make_pseudo_mask(refined, {7}).labels.at<uint8_t>(0, 0), 0);  // bg 0.6 > 0.4
  PseudoMaskOptions options;
  options.float16_scores = false;
  options.bg_power = 2.0;  // bg 0.36 < 0.4
  const PseudoMask m = make_pseudo_mask(refined, {7}, options);
  EXPECT_EQ(m.labels.at<uint8_t>(0, 0), 7);
  EXPECT_FLOAT_EQ(m.confidence.at<float>(0, 0), 0.4f);
  options.bg_power = 1.0;
  const PseudoMask bg = make_pseudo_mask(cams_1xn({{0.2f}}), {7}, options);
  EXPECT_FLOAT_EQ(bg.confidence.at<float>(0, 0), 0.8f);
}

TEST(PseudoMask, IgnoreBelowMarksLowConfidence255) {
  // 0.75 and 0.25 are exact in float and double, so "conf == τ" is a real equality.
  const at::Tensor refined = cams_1xn({{0.9f, 0.75f, 0.5f, 0.25f}});
  PseudoMaskOptions options;
  options.ignore_below = 0.75;
  const PseudoMask m = make_pseudo_mask(refined, {4}, options);
  EXPECT_EQ(m.labels.at<uint8_t>(0, 0), 4);
  EXPECT_EQ(m.labels.at<uint8_t>(0, 1), 4);    // conf 0.75 is not below τ
  EXPECT_EQ(m.labels.at<uint8_t>(0, 2), 255);  // conf 0.5 (tie → background) < τ
  EXPECT_EQ(m.labels.at<uint8_t>(0, 3), 0);    // background with conf 0.75
  EXPECT_FLOAT_EQ(m.confidence.at<float>(0, 2), 0.5f);  // confidence kept for ignored pixels
  // Without τ nothing is ignored.
  const PseudoMask plain = make_pseudo_mask(refined, {4});
  EXPECT_EQ(plain.labels.at<uint8_t>(0, 2), 0);
}

TEST(PseudoMask, NoLabelsIsAllBackground) {
  const PseudoMask m = make_pseudo_mask(torch::zeros({0, 2, 3}), {});
  EXPECT_EQ(cv::countNonZero(m.labels), 0);
  EXPECT_EQ(m.confidence.at<float>(1, 2), 1.0f);
}

TEST(PseudoMask, RejectsMismatchedIds) {
  EXPECT_THROW(make_pseudo_mask(torch::zeros({2, 2, 2}), {1}), std::runtime_error);
  EXPECT_THROW(make_pseudo_mask(torch::zeros({1, 2, 2}), {255}), std::runtime_error);
}

TEST(PseudoMask, ConfidenceToU8Rounds) {
  cv::Mat conf(1, 6, CV_32FC1);
  const float values[] = {0.0f, 1.0f, 0.5f, 100.4f / 255, 100.6f / 255, 1.2f};
  for (int i = 0; i < 6; ++i) conf.at<float>(0, i) = values[i];
  const cv::Mat u8 = confidence_to_u8(conf);
  ASSERT_EQ(u8.type(), CV_8UC1);
  EXPECT_EQ(u8.at<uint8_t>(0, 0), 0);
  EXPECT_EQ(u8.at<uint8_t>(0, 1), 255);
  EXPECT_EQ(u8.at<uint8_t>(0, 2), 128);  // 127.5 rounds up
  EXPECT_EQ(u8.at<uint8_t>(0, 3), 100);
  EXPECT_EQ(u8.at<uint8_t>(0, 4), 101);
  EXPECT_EQ(u8.at<uint8_t>(0, 5), 255);  // clamped
}

TEST(PseudoMask, Float16ScoresResolveNearTiesLikeTheReference) {
  // 0.50002 and 0.50004 are both 0.5 in float16; so is bg = 1 − 0.50004.
  // The reference takes its argmax over float16 arrays: a three-way tie, and
  // background wins. In float32 the second class would win.
  const at::Tensor refined = cams_1xn({{0.50002f}, {0.50004f}});
  EXPECT_EQ(make_pseudo_mask(refined, {1, 2}).labels.at<uint8_t>(0, 0), 0);
  PseudoMaskOptions exact;
  exact.float16_scores = false;
  EXPECT_EQ(make_pseudo_mask(refined, {1, 2}, exact).labels.at<uint8_t>(0, 0), 2);
}

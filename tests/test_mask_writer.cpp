#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>

#include "clipes/cam/mask_from_cams.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/mask_writer.h"
#include "clipes/io/npy.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

TEST(MaskWriter, PathsFollowTheOutLayout) {
  const auto p = MaskOutputPaths::for_stem("/out", "2007_000032");
  EXPECT_EQ(p.mask, "/out/masks/2007_000032.png");
  EXPECT_EQ(p.confidence, "/out/confidence/2007_000032.png");
  EXPECT_EQ(p.cam, "/out/cams/2007_000032_cam.npy");
  EXPECT_EQ(p.refined, "/out/cams/2007_000032_refined.npy");
  EXPECT_EQ(p.keys, "/out/cams/2007_000032_keys.npy");
}

TEST(MaskWriter, RoundTripAndCompleteness) {
  const std::string out = test::make_temp_dir("mask_writer");
  const auto paths = MaskOutputPaths::for_stem(out, "img");
  const MaskWriteOptions with_cams{true};
  EXPECT_FALSE(mask_outputs_complete(paths, {}));

  torch::manual_seed(8);
  const at::Tensor refined = torch::rand({2, 9, 13});
  const at::Tensor cams = torch::rand({2, 9, 13});
  const PseudoMask mask = make_pseudo_mask(refined, {15, 2});
  write_mask_outputs(paths, mask, &cams, &refined, {14, 1}, with_cams);
  EXPECT_TRUE(mask_outputs_complete(paths, {}));
  EXPECT_TRUE(mask_outputs_complete(paths, with_cams));

  const cv::Mat ids = read_label_png(paths.mask);
  EXPECT_EQ(cv::norm(ids, mask.labels, cv::NORM_INF), 0.0);
  const cv::Mat conf = cv::imread(paths.confidence, cv::IMREAD_UNCHANGED);
  ASSERT_EQ(conf.type(), CV_8UC1);
  EXPECT_EQ(cv::norm(conf, confidence_to_u8(mask.confidence), cv::NORM_INF), 0.0);

  const at::Tensor cam_back = read_npy(paths.cam), refined_back = read_npy(paths.refined);
  EXPECT_EQ(cam_back.scalar_type(), at::kHalf);
  EXPECT_TRUE(torch::equal(cam_back, cams.to(at::kHalf)));
  EXPECT_TRUE(torch::equal(refined_back, refined.to(at::kHalf)));
  const at::Tensor keys = read_npy(paths.keys);
  EXPECT_EQ(keys.scalar_type(), at::kLong);
  EXPECT_TRUE(torch::equal(keys, torch::tensor({14, 1}, torch::kLong)));

  // Same dtypes and layout as the reference's outputs.
  const std::string ref = test::shared("fixtures/parity/coco6/expected/000000005001");
  EXPECT_EQ(read_npy(ref + "_cam.npy").scalar_type(), cam_back.scalar_type());
  EXPECT_EQ(read_npy(ref + "_keys.npy").scalar_type(), keys.scalar_type());

  // Any missing piece makes the image incomplete.
  std::filesystem::remove(paths.refined);
  EXPECT_TRUE(mask_outputs_complete(paths, {}));
  EXPECT_FALSE(mask_outputs_complete(paths, with_cams));
  std::filesystem::remove(paths.mask);
  EXPECT_FALSE(mask_outputs_complete(paths, {}));
}

TEST(MaskWriter, WithoutSaveCamsWritesOnlyMaskAndConfidence) {
  const std::string out = test::make_temp_dir("mask_writer_plain");
  const auto paths = MaskOutputPaths::for_stem(out, "x");
  const PseudoMask mask = make_pseudo_mask(torch::rand({1, 4, 5}), {3});
  write_mask_outputs(paths, mask, nullptr, nullptr, {2}, {});
  EXPECT_TRUE(mask_outputs_complete(paths, {}));
  EXPECT_FALSE(std::filesystem::exists(paths.cam));
  EXPECT_FALSE(std::filesystem::exists(out + "/cams"));
}

TEST(MaskWriter, SaveCamsWithoutCamsFailsBeforeWritingTheMask) {
  const std::string out = test::make_temp_dir("mask_writer_bad");
  const auto paths = MaskOutputPaths::for_stem(out, "x");
  const PseudoMask mask = make_pseudo_mask(torch::rand({1, 4, 5}), {3});
  EXPECT_THROW(write_mask_outputs(paths, mask, nullptr, nullptr, {2}, {true}), Error);
  EXPECT_FALSE(std::filesystem::exists(paths.mask));
}

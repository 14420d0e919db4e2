// generate's --bg-threshold (the constant background eval --cams sweeps) and
// --mask-mode grey (ids readable by cv2.imread GRAYSCALE).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "test_support.h"

namespace clipes {
namespace {

TEST(GenerateOptions, ConstantBackgroundAndGreyMasksAreWhatEvalAndOpenCvExpect) {
  const std::string out = test::make_temp_dir("gen-bg") + "/out";
  std::string log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q generate --model " + test::tiny_clip_path() + " --vocab " +
                                  test::vocab_path() + " --image " +
                                  test::shared("fixtures/parity/coco6/images/000000020992.jpg") +
                                  " --labels dog,person --save-cams --bg-threshold 0.5 --mask-mode grey --out " + out,
                              &log),
            0)
      << log;
  // Grey mode: OpenCV's grey reader sees the ids themselves.
  const cv::Mat grey = cv::imread(out + "/masks/000000020992.png", cv::IMREAD_GRAYSCALE);
  ASSERT_FALSE(grey.empty());
  EXPECT_EQ(cv::countNonZero(grey != read_label_png(out + "/masks/000000020992.png")), 0);
  // The mask is argmax over [c, R_1..R_K] on the saved float16 CAMs, first maximum wins.
  const at::Tensor refined = read_npy(out + "/cams/000000020992_refined.npy").to(torch::kFloat);
  const at::Tensor keys = read_npy(out + "/cams/000000020992_keys.npy");
  at::Tensor best = refined[0].clone(), arg = torch::zeros_like(best, torch::kLong);
  for (int64_t k = 1; k < refined.size(0); ++k) {
    const at::Tensor better = refined[k] > best;
    best = torch::where(better, refined[k], best);
    arg = torch::where(better, torch::full_like(arg, k), arg);
  }
  at::Tensor expected = keys.index({arg}) + 1;
  expected.masked_fill_(best.le(0.5), 0);  // background wins ties
  const at::Tensor mask = torch::from_blob(grey.data, {grey.rows, grey.cols}, torch::kUInt8).to(torch::kLong);
  const int64_t differ = mask.ne(expected).sum().item<int64_t>();
  EXPECT_EQ(differ, 0);
  // Both classes and background occur: the threshold really splits the image.
  EXPECT_GT(mask.eq(0).sum().item<int64_t>(), 0);
  EXPECT_GT(mask.ne(0).sum().item<int64_t>(), 0);
}

}  // namespace
}  // namespace clipes

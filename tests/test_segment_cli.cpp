// `clipes segment` end to end on the tiny fixture CLIP: the documented files,
// the shared resume rule, and errors before the model loads.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

std::string segment_cmd(const std::string& rest) {
  return test::clipes_binary() + " -q segment --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path() +
         " " + rest;
}

const std::string kImage = "fixtures/parity/coco6/images/000000020992.jpg";

TEST(SegmentCli, OneImageWithANameListWritesEveryDocumentedFile) {
  const std::string out = test::make_temp_dir("segment-one") + "/out";
  std::string log;
  ASSERT_EQ(test::run_command(segment_cmd("--image " + test::shared(kImage) +
                                          " --classes \"cat,dog,other\" --save-cams --vis --out " + out),
                              &log),
            0)
      << log;
  for (const char* f : {"masks/000000020992.png", "confidence/000000020992.png", "cams/000000020992_scores.npy",
                        "cams/000000020992_keys.npy", "vis/000000020992.jpg", "run.json", "runs.jsonl",
                        "settings.json"})
    EXPECT_TRUE(fs::is_regular_file(out + "/" + f)) << f;
  // No background in the list: classes are written 1..3, never 0.
  const cv::Mat mask = read_label_png(out + "/masks/000000020992.png");
  ASSERT_EQ(mask.rows, 333);
  ASSERT_EQ(mask.cols, 500);
  double lo = 0, hi = 0;
  cv::minMaxLoc(mask, &lo, &hi);
  EXPECT_GE(lo, 1);
  EXPECT_LE(hi, 3);
  // NACLIP's scores are its cosines per query at the 21×32 patch grid.
  const at::Tensor scores = read_npy(out + "/cams/000000020992_scores.npy");
  EXPECT_EQ(scores.sizes(), (std::vector<int64_t>{3, 21, 32}));
  EXPECT_TRUE(torch::equal(read_npy(out + "/cams/000000020992_keys.npy"), torch::tensor({0, 1, 2}, torch::kLong)));
  const auto run = nlohmann::json::parse(read_file(out + "/run.json"));
  EXPECT_EQ(run["command"], "segment");
  EXPECT_EQ(run["config"]["method"], "naclip");
  EXPECT_EQ(run["config"]["templates"].size(), 80u);  // imagenet80 by default
  EXPECT_EQ(run["config"]["class_set"]["classes"].size(), 3u);
  EXPECT_EQ(run["model"]["activation"], "quick-gelu");
}

TEST(SegmentCli, AResumeWithAnotherMethodIsRefusedNamingTheSetting) {
  const std::string out = test::make_temp_dir("segment-resume") + "/out";
  std::string log;
  const std::string base = "--image " + test::shared(kImage) + " --classes voc --templates \"a photo of a {}.\" --out " + out;
  ASSERT_EQ(test::run_command(segment_cmd(base + " --method maskclip"), &log), 0) << log;
  EXPECT_EQ(test::run_command(segment_cmd(base + " --method naclip"), &log), 2) << log;
  EXPECT_NE(log.find("method"), std::string::npos) << log;
  EXPECT_NE(log.find("--no-resume"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(segment_cmd(base + " --method naclip --no-resume"), &log), 0) << log;
}

TEST(SegmentCli, AMethodParameterIsSetCheckedAndRecorded) {
  // --set KEY=VALUE reaches the method's declared parameters
  // (methods/dense_method.h); a typo names the method's keys before any work.
  const std::string out = test::make_temp_dir("segment-set") + "/out";
  std::string log;
  const std::string base = "--image " + test::shared(kImage) + " --classes voc --templates \"a photo of a {}.\" --out " + out;
  EXPECT_EQ(test::run_command(segment_cmd(base + " --set sigmaa=3"), &log), 2) << log;
  EXPECT_NE(log.find("sigma, min_probability"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out + "/settings.json"));
  EXPECT_EQ(test::run_command(segment_cmd(base + " --set sigma"), &log), 2) << log;
  EXPECT_NE(log.find("KEY=VALUE"), std::string::npos) << log;
  // Defaults record nothing (outputs from before --set still resume) ...
  ASSERT_EQ(test::run_command(segment_cmd(base + " --set sigma=5"), &log), 0) << log;
  EXPECT_FALSE(nlohmann::json::parse(read_file(out + "/settings.json"))["settings"].contains("method_params"));
  const std::string mask = read_file(out + "/masks/000000020992.png");
  // ... another value is a setting: a resume with it is refused, --no-resume
  // recomputes with it and records it.
  EXPECT_EQ(test::run_command(segment_cmd(base + " --set sigma=0.5"), &log), 2) << log;
  EXPECT_NE(log.find(R"(method_params: (unset) → {"sigma":"0.5"})"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(segment_cmd(base + " --set sigma=0.5 --set min_probability=0 --no-resume"), &log), 0)
      << log;
  EXPECT_EQ(nlohmann::json::parse(read_file(out + "/settings.json"))["settings"]["method_params"]["sigma"], "0.5");
  EXPECT_NE(read_file(out + "/masks/000000020992.png"), mask);  // the parameters reached the method
  // --help lists every registered method with its parameters.
  ASSERT_EQ(test::run_command(test::clipes_binary() + " segment --help", &log), 0) << log;
  for (const char* s : {"maskclip:", "naclip:", "dinoiser:", "min_probability=0.1", "objectness=0.5"})
    EXPECT_NE(log.find(s), std::string::npos) << s;
}

TEST(SegmentCli, DinoiserRunsWithTheHeadsAndFailsEarlyWithout) {
  const std::string dir = test::make_temp_dir("segment-dino");
  std::string log;
  EXPECT_EQ(test::run_command(segment_cmd("--image " + test::shared(kImage) + " --method dinoiser --out " + dir + "/a"),
                              &log),
            2);
  EXPECT_NE(log.find("--heads"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  ASSERT_EQ(test::run_command(segment_cmd("--image " + test::shared(kImage) + " --method dinoiser --heads " +
                                          test::shared("fixtures/segment/dinoiser-heads-tiny.pt") +
                                          " --resize-short 448 --window 448 --stride 224 --out " + dir + "/b"),
                              &log),
            0)
      << log;
  EXPECT_TRUE(fs::is_regular_file(dir + "/b/masks/000000020992.png"));
  // A file that is not a heads file is refused before any image is touched.
  EXPECT_EQ(test::run_command(segment_cmd("--image " + test::shared(kImage) + " --method dinoiser --heads " +
                                          test::tiny_clip_path() + " --out " + dir + "/c"),
                              &log),
            2);
  EXPECT_NE(log.find("TorchScript archive"), std::string::npos) << log;
}

TEST(SegmentCli, ABadImageInABatchIsRecordedAndSkipped) {
  const std::string dir = test::make_temp_dir("segment-batch");
  fs::create_directories(dir + "/img");
  fs::copy_file(test::shared(kImage), dir + "/img/good.jpg");
  write_file_atomic(dir + "/img/bad.jpg", "not a jpeg");
  std::string log;
  // A plain folder: no labels file needed.
  EXPECT_EQ(test::run_command(segment_cmd("--dataset " + dir + "/img --format folder --classes \"background,cat,dog\" --out " +
                                          dir + "/out"),
                              &log),
            0)
      << log;
  EXPECT_TRUE(fs::is_regular_file(dir + "/out/masks/good.png"));
  EXPECT_FALSE(fs::exists(dir + "/out/masks/bad.png"));
  EXPECT_NE(read_file(dir + "/out/failures.jsonl").find("bad"), std::string::npos);
}

}  // namespace
}  // namespace clipes

// `clipes generate` end to end through the binary, on the six coco6 images.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

std::string coco6(const std::string& rel) { return test::shared("fixtures/parity/coco6/" + rel); }

std::string base_command(const std::string& out) {
  return test::clipes_binary() + " generate --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path() +
         " --out " + out;
}

TEST(CmdGenerate, SixImagesFromAFolderWithALabelsFile) {
  const std::string out = test::make_temp_dir("gen-coco6");
  std::string log;
  const std::string cmd = base_command(out) + " --dataset " + coco6("images") + " --format folder --labels-file " +
                          coco6("labels.json") + " --save-cams";
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;

  const auto labels = nlohmann::json::parse(read_file(coco6("labels.json")));
  const std::vector<std::string> voc = {"aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
                                        "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
                                        "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"};
  for (const auto& [stem, names] : labels.items()) {
    SCOPED_TRACE(stem);
    const cv::Mat mask = read_label_png(out + "/masks/" + stem + ".png");
    const cv::Mat conf = read_label_png(out + "/confidence/" + stem + ".png");
    EXPECT_EQ(mask.size(), conf.size());
    std::set<int> allowed = {0};
    for (const auto& n : names)
      allowed.insert(static_cast<int>(std::find(voc.begin(), voc.end(), n.get<std::string>()) - voc.begin()) + 1);
    std::set<int> seen;
    for (int y = 0; y < mask.rows; ++y)
      for (int x = 0; x < mask.cols; ++x) seen.insert(mask.at<uint8_t>(y, x));
    for (int v : seen) EXPECT_TRUE(allowed.count(v)) << "unexpected id " << v;
    EXPECT_GT(seen.size(), 1u) << "only background";

    const at::Tensor refined = read_npy(out + "/cams/" + stem + "_refined.npy");
    const at::Tensor keys = read_npy(out + "/cams/" + stem + "_keys.npy");
    EXPECT_EQ(refined.scalar_type(), torch::kHalf);
    EXPECT_EQ(refined.size(0), static_cast<int64_t>(names.size()));
    EXPECT_EQ(refined.size(1), mask.rows);
    EXPECT_EQ(refined.size(2), mask.cols);
    EXPECT_EQ(keys.numel(), static_cast<int64_t>(names.size()));
  }
  const auto run = nlohmann::json::parse(read_file(out + "/run.json"));
  EXPECT_EQ(run["counts"]["processed"], 6);
  EXPECT_EQ(run["counts"]["failed"], 0);
  EXPECT_EQ(run["model"]["sha256"].get<std::string>().size(), 64u);

  // Second run: everything is complete, nothing recomputed.
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;
  const auto rerun = nlohmann::json::parse(read_file(out + "/run.json"));
  EXPECT_EQ(rerun["counts"]["skipped_complete"], 6);
  EXPECT_EQ(rerun["counts"]["processed"], 0);
}

TEST(CmdGenerate, SingleImageAndLabelErrors) {
  const std::string out = test::make_temp_dir("gen-single");
  std::string log;
  const std::string image = coco6("images/000000005001.jpg");
  ASSERT_EQ(test::run_command(base_command(out) + " --image " + image + " --labels person,bicycle,person", &log), 0)
      << log;
  EXPECT_TRUE(fs::exists(out + "/masks/000000005001.png"));
  EXPECT_FALSE(fs::exists(out + "/cams"));  // only with --save-cams

  // A typo is fatal for one image, and the message lists the valid names.
  EXPECT_EQ(test::run_command(base_command(out) + " --image " + image + " --labels persn", &log), 2);
  EXPECT_NE(log.find("persn"), std::string::npos) << log;
  EXPECT_NE(log.find("tvmonitor"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(base_command(out) + " --image /nonexistent.jpg --labels person", &log), 1) << log;
}

TEST(CmdGenerate, UnlabelledAndBrokenImagesAreRecordedAndSkipped) {
  const std::string dir = test::make_temp_dir("gen-broken");
  fs::create_directories(dir + "/images");
  fs::copy_file(coco6("images/000000010764.jpg"), dir + "/images/good.jpg");
  fs::copy_file(coco6("images/000000020992.jpg"), dir + "/images/nolabels.jpg");
  write_file_atomic(dir + "/images/corrupt.jpg", read_file(coco6("images/000000005001.jpg")).substr(0, 300));
  write_file_atomic(dir + "/labels.json",
                    R"({"good.jpg": ["person"], "nolabels.jpg": [], "corrupt.jpg": ["person"], "missing.jpg": ["dog"]})");
  std::string log;
  const std::string out = dir + "/out";
  EXPECT_EQ(test::run_command(base_command(out) + " --dataset " + dir + "/images --format folder --labels-file " +
                                  dir + "/labels.json",
                              &log),
            0)
      << log;
  EXPECT_TRUE(fs::exists(out + "/masks/good.png"));
  std::ifstream failures(out + "/failures.jsonl");
  std::set<std::string> failed;
  for (std::string line; std::getline(failures, line);) failed.insert(nlohmann::json::parse(line)["id"]);
  EXPECT_TRUE(failed.count("nolabels")) << log;
  EXPECT_TRUE(failed.count("corrupt")) << log;
  EXPECT_FALSE(failed.count("good"));
}

}  // namespace
}  // namespace clipes

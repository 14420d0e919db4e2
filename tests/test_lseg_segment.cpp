// `clipes segment --method lseg` end to end (issue 28): the command on the
// fixture checkpoint reproduces the official argmax where the inputs are the
// fixtures' own, and its OUT is read by eval and visualize like any segment run.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

std::string fx(const std::string& name) { return test::shared("fixtures/lseg/" + name); }

std::string lseg_command() {
  return test::clipes_binary() + " -q segment --method lseg --model " + fx("lseg_tiny.ckpt") + " --vocab " +
         test::vocab_path() + " --set vit_heads=2";  // the tiny ViT's head count (manifest config)
}

const char* kSetA = "\"person,bicycle,hot dog,bird,other\"";
const char* kSetB = "\"plant,grass,cat,stone,other\"";

// Share of pixels where the mask (class index + 1: a list without background) equals the official argmax.
double agreement(const std::string& mask_png, const std::string& argmax_npy) {
  const cv::Mat mask = read_label_png(mask_png);
  const at::Tensor argmax = read_npy(argmax_npy).to(at::kLong).contiguous();
  EXPECT_EQ(argmax.size(0), mask.rows);
  EXPECT_EQ(argmax.size(1), mask.cols);
  if (argmax.size(0) != mask.rows || argmax.size(1) != mask.cols) return 0;
  const int64_t* a = argmax.data_ptr<int64_t>();
  int64_t same = 0;
  for (int y = 0; y < mask.rows; ++y)
    for (int x = 0; x < mask.cols; ++x) same += mask.at<uint8_t>(y, x) == a[y * mask.cols + x] + 1;
  return static_cast<double>(same) / static_cast<double>(mask.total());
}

TEST(LsegSegment, SingleForwardMasksAreTheOfficialArgmax) {
  const std::string dir = test::make_temp_dir("lseg-ss");
  fs::create_directories(dir + "/images");
  for (const char* stem : {"000000005001", "000000020992", "000000055299"})
    fs::copy_file(fx(std::string(stem) + "_ss.png"), dir + "/images/" + stem + "_ss.png");
  std::string log;
  for (const auto& [set, labels] : {std::pair{"a", kSetA}, std::pair{"b", kSetB}}) {
    ASSERT_EQ(test::run_command(lseg_command() + " --dataset " + dir + "/images --format folder --classes " + labels +
                                    " --single-forward --out " + dir + "/" + set,
                                &log),
              0)
        << log;
    for (const char* stem : {"000000005001", "000000020992", "000000055299"}) {
      const std::string argmax = fx(std::string("ss_argmax_") + stem + "_" + set + ".npy");
      if (!fs::exists(argmax)) continue;  // set b: one image
      EXPECT_EQ(agreement(dir + "/" + set + "/masks/" + stem + "_ss.png", argmax), 1.0) << stem << " " << set;
    }
  }
  const auto run = nlohmann::json::parse(read_file(dir + "/a/run.json"));
  EXPECT_EQ(run["config"]["method"], "lseg");
  EXPECT_EQ(run["config"]["lseg"]["single_forward"], true);
  // A side that is no multiple of 32: that image fails, recorded, the run goes on (exit 0: not fatal).
  fs::copy_file(fx("000000005001_ms.png"), dir + "/images/odd.png");
  EXPECT_EQ(test::run_command(lseg_command() + " --dataset " + dir + "/images --format folder --classes " + kSetA +
                                  " --single-forward --out " + dir + "/odd",
                              &log),
            0)
      << log;
  EXPECT_NE(read_file(dir + "/odd/failures.jsonl").find("multiples of 32"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/odd/masks/000000005001_ss.png"));
}

TEST(LsegSegment, MultiScaleFlipMasksAreTheOfficialEvaluatorsArgmax) {
  // LSeg_MultiEvalModule (6 scales, flips): the README's reference image.
  const std::string dir = test::make_temp_dir("lseg-ms");
  std::string log;
  ASSERT_EQ(test::run_command(lseg_command() + " --image " + fx("000000005001_ms.png") + " --classes " + kSetA +
                                  " --scales 0.5,0.75,1,1.25,1.5,1.75 --flip --out " + dir,
                              &log),
            0)
      << log;
  EXPECT_GE(agreement(dir + "/masks/000000005001_ms.png", fx("ms_argmax_000000005001_a.npy")), 0.999);
}

TEST(LsegSegment, ACocoRunIsEvaluatedAndDrawnLikeAnyOther) {
  const std::string dir = test::make_temp_dir("lseg-coco");
  const std::string coco = test::shared("data/coco-tiny");
  std::string log;
  // The default evaluator (one scale) on COCO images of any size, with saved scores.
  ASSERT_EQ(test::run_command(lseg_command() + " --dataset " + coco +
                                  " --format coco --split val2017 --classes coco --limit 2 --save-cams --vis --out " +
                                  dir + "/run",
                              &log),
            0)
      << log;
  size_t masks = 0;
  for (const auto& e : fs::directory_iterator(dir + "/run/masks")) masks += e.path().extension() == ".png";
  EXPECT_EQ(masks, 2u);
  const auto run = nlohmann::json::parse(read_file(dir + "/run/run.json"));
  EXPECT_EQ(run["config"]["scores_channels"], "query_cosines");
  EXPECT_DOUBLE_EQ(run["config"]["logit_scale"].get<double>(), 1.0);
  // eval over the run's own two images: masks, then the saved scores' sweep.
  std::ofstream ids(dir + "/ids.txt");
  for (const auto& e : fs::directory_iterator(dir + "/run/masks")) ids << e.path().stem().string() << "\n";
  ids.close();
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q eval --pred " + dir + "/run --gt " + coco +
                                  " --list " + dir + "/ids.txt --json -",
                              &log),
            0)
      << log;
  EXPECT_TRUE(nlohmann::json::parse(log)["miou"].is_number()) << log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q eval --cams --pred " + dir + "/run --gt " + coco +
                                  " --list " + dir + "/ids.txt --json -",
                              &log),
            0)
      << log;
  const auto sweep = nlohmann::json::parse(log)["sweep"];
  ASSERT_EQ(sweep.size(), 20u) << log;  // coco's background words: the run's own background class, then 0.05…0.95
  EXPECT_EQ(sweep[0]["background"], "method");
  fs::remove_all(dir + "/run/vis");
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q visualize --out " + dir + "/run --no-gt", &log), 0) << log;
  size_t sheets = 0;
  for (const auto& e : fs::directory_iterator(dir + "/run/vis")) sheets += e.path().extension() == ".jpg";
  EXPECT_EQ(sheets, 2u);
}

TEST(LsegSegment, OptionsOfTheOtherFamilyAreOneLineErrors) {
  const std::string dir = test::make_temp_dir("lseg-options");
  const std::string image = " --image " + fx("000000005001_ss.png") + " --classes " + kSetA + " --out " + dir;
  std::string log;
  EXPECT_EQ(test::run_command(lseg_command() + image + " --window 224 --stride 112", &log), 2) << log;
  EXPECT_NE(log.find("--window is for the CLIP-trunk methods"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(lseg_command() + image + " --scales 1,x", &log), 2) << log;
  EXPECT_NE(log.find("--scales"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(lseg_command() + image + " --single-forward --flip", &log), 2) << log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " -q segment --method maskclip --model " +
                                  test::tiny_clip_path() + " --vocab " + test::vocab_path() + image + " --flip",
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("--method lseg"), std::string::npos) << log;
  // A truncated checkpoint: one line naming the file.
  const std::string ckpt = read_file(fx("lseg_tiny.ckpt"));
  write_file_atomic(dir + "-short.ckpt", ckpt.substr(0, ckpt.size() / 2));
  EXPECT_EQ(test::run_command(test::clipes_binary() + " -q segment --method lseg --model " + dir + "-short.ckpt" +
                                  " --vocab " + test::vocab_path() + " --set vit_heads=2" + image,
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("short.ckpt"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST(LsegSegment, Bf16RunsAndAgreesWithTheFp32MasksMostly) {
  // --precision bf16 is LSeg's fast path (model/lseg_model.h); on the tiny
  // random model most pixels keep fp32's label (a broken cast would be ~1/5).
  const std::string dir = test::make_temp_dir("lseg-bf16");
  fs::create_directories(dir + "/images");
  fs::copy_file(fx("000000005001_ss.png"), dir + "/images/000000005001_ss.png");
  std::string log;
  for (const char* precision : {"fp32", "bf16"})
    ASSERT_EQ(test::run_command(lseg_command() + " --dataset " + dir + "/images --format folder --classes " + kSetA +
                                    " --single-forward --precision " + precision + " --out " + dir + "/" + precision,
                                &log),
              0)
        << log;
  const cv::Mat a = read_label_png(dir + "/fp32/masks/000000005001_ss.png");
  const cv::Mat b = read_label_png(dir + "/bf16/masks/000000005001_ss.png");
  ASSERT_EQ(a.size(), b.size());
  const double same = static_cast<double>(cv::countNonZero(a == b)) / static_cast<double>(a.total());
  std::printf("  [lseg] bf16 vs fp32 masks: %.4f of pixels agree\n", same);
  EXPECT_GE(same, 0.9);
  const nlohmann::json run = nlohmann::json::parse(read_file(dir + "/bf16/run.json"));
  EXPECT_NE(run.dump().find("bf16"), std::string::npos);
}

TEST(LsegBench, ReportsOneForwardStageByStageAndEachPhotoWithItsForwardCount) {
  // `clipes bench --method lseg` on the fixture checkpoint (the random
  // released-size model is what docs/performance.md times; too slow here).
  std::string log;
  const std::string dir = test::make_temp_dir("lseg-bench");
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q bench --method lseg --model " + fx("lseg_tiny.ckpt") +
                                  " --set vit_heads=2 --runs 1 --warmup 0 --case 500x375:3 --case 96x64:2 --json " +
                                  dir + "/bench.json",
                              &log),
            0)
      << log;
  const nlohmann::json j = nlohmann::json::parse(read_file(dir + "/bench.json"));
  EXPECT_EQ(j["method"], "lseg");
  ASSERT_EQ(j["results"].size(), 3u);
  const nlohmann::json& forward = j["results"][0];
  EXPECT_EQ(forward["input_h"], 480);
  EXPECT_EQ(forward["tokens"], 901);
  ASSERT_EQ(forward["stages"].size(), 3u);
  for (const auto& stage : forward["stages"]) {
    EXPECT_GT(stage["gflop"].get<double>(), 0) << stage.dump();
    EXPECT_GT(stage["mean_ms"].get<double>(), 0) << stage.dump();
  }
  // At the default scale the evaluator resizes the long side to 520 (base
  // size) whatever the photo's size: > crop 480, so a VOC-sized photo and a
  // 96×64 one are both two 480×480 windows.
  EXPECT_EQ(j["results"][1]["stages"][2]["stage"].get<std::string>(), "2 forward(s)");
  EXPECT_EQ(j["results"][2]["stages"][2]["stage"].get<std::string>(), "2 forward(s)");
  EXPECT_EQ(j["results"][1]["labels"], 3);
  // Flags that belong to LSeg are refused for CLIP-ES.
  EXPECT_EQ(test::run_command(test::clipes_binary() + " -q bench --flip --runs 1", &log), 2) << log;
  EXPECT_NE(log.find("--method lseg"), std::string::npos) << log;
}

}  // namespace
}  // namespace clipes

// The toy world end to end (issue #6's CI check): 40 rendered validation
// images, `clipes generate` with the bundled toy CLIP, `clipes eval`.
//
// Thresholds, justified by measurement (docs/ablation.md): on these exact 40
// images (seed 2, deterministic) the committed model scores 0.586 mIoU with
// --no-caa and 0.321 with the default pipeline (200 images: 0.592 / 0.339).
// The bounds sit ~0.05 below, so a broken model, vocabulary, class file or
// pipeline change fails while thread-count noise does not. They are
// regression guards, not the 0.60 target, which is not met yet.
//
// Zero-shot `segment` (no labels) on the same 40 images, measured: MaskCLIP
// 0.773, NACLIP 0.212 (500 images: 0.773 / 0.174, docs/ablation.md). The
// toy CLIP's 4-block value path carries its class (MaskCLIP works), while
// NACLIP drops the last block's residual and FFN, which this small model
// relies on. Bounds again ~0.05 below the measurement.
//
// Label-free (TagCLIP tags, then CLIP-ES on them) on the same 40 images,
// measured: tag mAP 0.678, overall F1 0.592 (P 0.841, R 0.457), CLIP-ES on
// the predicted tags 0.227 mIoU (500 images: mAP 0.695, F1 0.640, label-free
// 0.267 vs 0.355 with the true labels; README "Offline toy world"). Bounds
// ~0.05 below.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {

double toy_miou(const std::string& dir, const std::string& variant, const std::string& extra) {
  const std::string bin = test::clipes_binary();
  const std::string models = test::source_dir() + "/models/";
  std::string log;
  const std::string out = dir + "/" + variant;
  EXPECT_EQ(test::run_command(bin + " -q generate --model " + models + "toy-clip.pt --vocab " + models +
                                  "toy-vocab.txt.gz --classes toy --dataset " + dir +
                                  "/val --format voc --split val --out " + out + " " + extra,
                              &log),
            0)
      << log;
  EXPECT_EQ(test::run_command(bin + " eval --pred " + out + " --gt " + dir + "/val --split val --classes toy --json " +
                                  out + ".json",
                              &log),
            0)
      << log;
  return nlohmann::json::parse(read_file(out + ".json"))["miou"].get<double>();
}

double toy_segment_miou(const std::string& dir, const std::string& method) {
  const std::string bin = test::clipes_binary();
  const std::string models = test::source_dir() + "/models/";
  std::string log;
  const std::string out = dir + "/segment-" + method;
  EXPECT_EQ(test::run_command(bin + " -q segment --model " + models + "toy-clip.pt --vocab " + models +
                                  "toy-vocab.txt.gz --classes toy --templates 'a photo of a {}.' --dataset " + dir +
                                  "/val --format voc --split val --method " + method + " --out " + out,
                              &log),
            0)
      << log;
  // No --classes: eval reads the class set from the run's run.json.
  EXPECT_EQ(test::run_command(bin + " eval --pred " + out + " --gt " + dir + "/val --split val --json " + out + ".json",
                              &log),
            0)
      << log;
  return nlohmann::json::parse(read_file(out + ".json"))["miou"].get<double>();
}

TEST(ToyPipeline, ZeroShotSegmentWorksWithoutLabels) {
  const std::string dir = test::make_temp_dir("toy-segment");
  std::string log;
  ASSERT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + dir +
                                  "/val --count 40 --seed 2 --split val",
                              &log),
            0)
      << log;
  const double maskclip = toy_segment_miou(dir, "maskclip");
  const double naclip = toy_segment_miou(dir, "naclip");
  std::cout << "[toy] 40 val images, no labels: mIoU maskclip " << maskclip << ", naclip " << naclip << "\n";
  EXPECT_GE(maskclip, 0.72);
  EXPECT_GE(naclip, 0.16);
}

TEST(ToyPipeline, BundledModelSegmentsTheToyValidationSet) {
  const std::string dir = test::make_temp_dir("toy-pipeline");
  std::string log;
  ASSERT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + dir +
                                  "/val --count 40 --seed 2 --split val",
                              &log),
            0)
      << log;
  const double no_caa = toy_miou(dir, "no-caa", "--no-caa");
  const double full = toy_miou(dir, "default", "");
  std::cout << "[toy] 40 val images: mIoU --no-caa " << no_caa << ", default " << full << "\n";
  EXPECT_GE(no_caa, 0.53);
  EXPECT_GE(full, 0.27);
}

TEST(ToyPipeline, LabelFreeTagsThenClipEs) {
  const std::string dir = test::make_temp_dir("toy-tags");
  const std::string bin = test::clipes_binary(), models = test::source_dir() + "/models/";
  const std::string model = " --model " + models + "toy-clip.pt --vocab " + models + "toy-vocab.txt.gz --classes toy";
  std::string log;
  ASSERT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + dir +
                                  "/val --count 40 --seed 2 --split val",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(bin + " -q tag" + model + " --dataset " + dir + "/val --format voc --split val --out " +
                                  dir + "/tags",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(bin + " -q eval --tags " + dir + "/tags/labels.json --gt " + dir +
                                  "/val --split val --json " + dir + "/tags.json",
                              &log),
            0)
      << log;
  const auto tags = nlohmann::json::parse(read_file(dir + "/tags.json"));
  // The labels file goes to generate unchanged.
  ASSERT_EQ(test::run_command(bin + " -q generate" + model + " --format folder --dataset " + dir +
                                  "/val/JPEGImages --labels-file " + dir + "/tags/labels.json --out " + dir + "/masks",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(bin + " -q eval --pred " + dir + "/masks --gt " + dir + "/val --split val --json " + dir +
                                  "/masks.json",
                              &log),
            0)
      << log;
  const double miou = nlohmann::json::parse(read_file(dir + "/masks.json"))["miou"].get<double>();
  std::cout << "[toy] 40 val images, label-free: tag mAP " << tags["map"] << ", F1 " << tags["f1"] << ", mIoU "
            << miou << "\n";
  // Re-baselined with issue 25: TagCLIP now votes with the last block's
  // unmasked attention, as the official code does (segment-spec §5 quirk a).
  // On the toy model that costs tag quality (before: mAP ≥ 0.63, F1 ≥ 0.54,
  // mIoU ≥ 0.18; after: 0.424, 0.347, 0.151 on the same 40 images); parity
  // with the official method comes first, the bounds keep a ~5 % margin.
  EXPECT_GE(tags["map"].get<double>(), 0.40);
  EXPECT_GE(tags["f1"].get<double>(), 0.33);
  EXPECT_GE(miou, 0.14);
}

}  // namespace
}  // namespace clipes

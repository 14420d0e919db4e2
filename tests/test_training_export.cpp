// clipes export mmseg|deeplab: the list and snippet a trainer reads.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {

// What deeplab-pytorch's VOCAug does with the exported yaml (libs/datasets/
// voc.py): root = ROOT/VOC2012, the list at root/ImageSets/SegmentationAug/
// <TRAIN>.txt, each "<image> <label>" line split on " " and joined as
// osp.join(root, path[1:]). Checks that every joined path is a file, that the
// pair shares a stem, and returns the number of pairs (issue 27 item 2).
int deeplab_vocaug_pairs(const std::string& yaml) {
  auto field = [&](const std::string& key) {
    const size_t at = yaml.find("  " + key + ": ");
    EXPECT_NE(at, std::string::npos) << key << " in " << yaml;
    if (at == std::string::npos) return std::string();
    std::string value = yaml.substr(at + key.size() + 4, yaml.find('\n', at) - at - key.size() - 4);
    if (value.size() >= 2 && value.front() == '\'') value = value.substr(1, value.size() - 2);
    return value;
  };
  const std::string root = field("ROOT") + "/VOC2012";
  std::istringstream lines(read_file(root + "/ImageSets/SegmentationAug/" + field("TRAIN") + ".txt"));
  int n = 0;
  for (std::string line; std::getline(lines, line);) {
    const size_t space = line.find(' ');
    EXPECT_NE(space, std::string::npos) << line;
    EXPECT_EQ(line.find(' ', space + 1), std::string::npos) << line;  // exactly two fields
    const std::string image = root + "/" + line.substr(1, space - 1);
    const std::string label = root + "/" + line.substr(space + 2);
    EXPECT_TRUE(std::filesystem::is_regular_file(image)) << image;
    EXPECT_TRUE(std::filesystem::is_regular_file(label)) << label;
    EXPECT_EQ(std::filesystem::path(image).stem(), std::filesystem::path(label).stem());
    ++n;
  }
  return n;
}

TEST(TrainingExport, MmsegAndDeeplabListsPointAtEveryMaskAndItsImage) {
  const std::string dir = test::make_temp_dir("export");
  std::string log;
  ASSERT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + dir +
                                  "/val --count 3 --seed 2 --split val",
                              &log),
            0)
      << log;
  const std::string bin = test::clipes_binary();
  const std::string models = test::source_dir() + "/models/";
  ASSERT_EQ(test::run_command(bin + " -q generate --model " + models + "toy-clip.pt --vocab " + models +
                                  "toy-vocab.txt.gz --classes toy --dataset " + dir +
                                  "/val --format voc --split val --out " + dir + "/run",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(bin + " export mmseg " + dir + "/run", &log), 0) << log;
  const std::string list = read_file(dir + "/run/export/mmseg/train.txt");
  EXPECT_EQ(std::count(list.begin(), list.end(), '\n'), 3) << list;
  const std::string config = read_file(dir + "/run/export/mmseg/clipes_pseudo_masks.py");
  EXPECT_NE(config.find("reduce_zero_label=False"), std::string::npos) << config;  // toy has a background
  EXPECT_NE(config.find("'crescent'"), std::string::npos) << config;
  EXPECT_NE(config.find("num_classes = 9"), std::string::npos) << config;
  EXPECT_NE(config.find(dir + "/run/masks"), std::string::npos) << config;
  // From a relative OUT too, ann_file is absolute: mmengine's
  // osp.join(data_root='/', ann_file) must give the list itself (issue 27 item 3).
  ASSERT_EQ(test::run_command("cd " + dir + " && " + bin + " export mmseg run", &log), 0) << log;
  const std::string relative = read_file(dir + "/run/export/mmseg/clipes_pseudo_masks.py");
  EXPECT_NE(relative.find("ann_file='" + dir + "/run/export/mmseg/train.txt'"), std::string::npos) << relative;

  ASSERT_EQ(test::run_command("cd " + dir + " && " + bin + " export deeplab run", &log), 0) << log;
  EXPECT_EQ(deeplab_vocaug_pairs(read_file(dir + "/run/export/deeplab/clipes_pseudo_masks.yaml")), 3);
  EXPECT_NE(read_file(dir + "/run/export/deeplab/clipes_pseudo_masks.yaml").find("N_CLASSES: 9"), std::string::npos);
  // Exporting again replaces the links it made.
  ASSERT_EQ(test::run_command(bin + " export deeplab " + dir + "/run", &log), 0) << log;
  // Not a run folder: one line, exit 2.
  EXPECT_EQ(test::run_command(bin + " export mmseg " + dir + "/val", &log), 2) << log;
}

TEST(TrainingExport, ASingleImageRunAndPathsWithSpaces) {
  // Issue 26 friction: after `generate --image x.jpg` (a bare relative name)
  // export said ": image folder does not exist"; and deeplab lists were
  // written with unquoted spaces, which its space-split reader breaks on.
  const std::string dir = test::make_temp_dir("export-single") + "/with space";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(test::shared("fixtures/parity/coco6/images/000000010764.jpg"), dir + "/x.jpg");
  const std::string bin = test::clipes_binary();
  std::string log;
  ASSERT_EQ(test::run_command("cd '" + dir + "' && " + bin + " -q generate --model " + test::tiny_clip_path() +
                                  " --vocab " + test::vocab_path() + " --image x.jpg --labels person --out run",
                              &log),
            0)
      << log;
  // run.json names resolved paths, so a job in another folder finds them (issue 27 item 4).
  const auto run = nlohmann::json::parse(read_file(dir + "/run/run.json"));
  EXPECT_EQ(run["input"]["image"], dir + "/x.jpg");
  EXPECT_EQ(run["images_folder"], dir);
  EXPECT_EQ(run["model"]["path"].get<std::string>().front(), '/');
  ASSERT_EQ(test::run_command("cd / && " + bin + " -q visualize --no-gt --out '" + dir + "/run'", &log), 0) << log;
  EXPECT_TRUE(std::filesystem::is_regular_file(dir + "/run/vis/x.jpg"));
  ASSERT_EQ(test::run_command(bin + " export mmseg '" + dir + "/run'", &log), 0) << log;
  EXPECT_NE(read_file(dir + "/run/export/mmseg/clipes_pseudo_masks.py").find(dir), std::string::npos);
  // A folder with a space is fine (the list names files under ROOT), a file
  // name with one is refused: the reader splits lines on spaces.
  ASSERT_EQ(test::run_command(bin + " export deeplab '" + dir + "/run'", &log), 0) << log;
  EXPECT_EQ(deeplab_vocaug_pairs(read_file(dir + "/run/export/deeplab/clipes_pseudo_masks.yaml")), 1);
  std::filesystem::rename(dir + "/x.jpg", dir + "/x y.jpg");
  std::filesystem::rename(dir + "/run/masks/x.png", dir + "/run/masks/x y.png");
  std::filesystem::remove(dir + "/run/export/deeplab/VOC2012/ImageSets/SegmentationAug/train_aug.txt");
  EXPECT_EQ(test::run_command(bin + " export deeplab '" + dir + "/run'", &log), 2) << log;
  EXPECT_NE(log.find("deeplab-pytorch's list format cannot hold"), std::string::npos) << log;
  EXPECT_NE(log.find("x y.jpg"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir + "/run/export/deeplab/VOC2012/ImageSets/SegmentationAug/train_aug.txt"));
}

TEST(TrainingExport, ASegmentRunWithoutBackgroundGetsOneMoreDeeplabOutput) {
  // Issue 27 item 2: masks of "cat,dog,person" hold 1..3, so N_CLASSES: 3
  // made value 3 an out-of-range target.
  const std::string dir = test::make_temp_dir("export-no-background");
  const std::string bin = test::clipes_binary();
  std::string log;
  ASSERT_EQ(test::run_command(bin + " -q segment --model " + test::tiny_clip_path() + " --vocab " +
                                  test::vocab_path() + " --image " +
                                  test::shared("fixtures/parity/coco6/images/000000010764.jpg") +
                                  " --classes cat,dog,person --out " + dir + "/run",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(bin + " export deeplab " + dir + "/run", &log), 0) << log;
  const std::string yaml = read_file(dir + "/run/export/deeplab/clipes_pseudo_masks.yaml");
  EXPECT_NE(yaml.find("N_CLASSES: 4"), std::string::npos) << yaml;
  EXPECT_EQ(deeplab_vocaug_pairs(yaml), 1);
  EXPECT_EQ(read_file(dir + "/run/export/deeplab/labels.txt"), "0 unused\n1 cat\n2 dog\n3 person\n");
  ASSERT_EQ(test::run_command(bin + " export mmseg " + dir + "/run", &log), 0) << log;
  EXPECT_NE(read_file(dir + "/run/export/mmseg/clipes_pseudo_masks.py").find("num_classes = 3"), std::string::npos);
}

}  // namespace
}  // namespace clipes

#include <nlohmann/json.hpp>

#include "clipes/data/coco_mask.h"
#include "clipes/io/indexed_png.h"
#include "clipes/text/class_config.h"

namespace clipes {
namespace {

TEST(TrainingExport, CocoResultsRoundTripThroughOurRleDecoder) {
  const std::string dir = test::make_temp_dir("export-coco");
  std::string log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q generate --model " + test::tiny_clip_path() + " --vocab " +
                                  test::vocab_path() + " --dataset " + test::shared("data/coco-tiny") +
                                  " --format coco --limit 3 --out " + dir + "/run",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " export coco " + dir + "/run", &log), 0) << log;
  const auto results = nlohmann::json::parse(read_file(dir + "/run/export/coco/results.json"));
  ASSERT_TRUE(results.is_array());
  ASSERT_FALSE(results.empty());
  const ClassConfig coco = ClassConfig::resolve("coco");
  size_t checked = 0;
  for (const auto& r : results) {
    char stem[16];
    std::snprintf(stem, sizeof stem, "%012lld", r["image_id"].get<long long>());
    const cv::Mat labels = read_label_png(dir + "/run/masks/" + stem + ".png");
    // Consecutive mask values: category c sits at 1 + its index in the class file.
    int value = -1;
    for (int i = 0; i < coco.num_classes(); ++i)
      if (coco.classes[static_cast<size_t>(i)].id == r["category_id"].get<int>()) value = i + 1;
    ASSERT_GT(value, 0) << r.dump();
    const auto& seg = r["segmentation"];
    EXPECT_EQ(seg["size"][0].get<int>(), labels.rows);
    EXPECT_EQ(seg["size"][1].get<int>(), labels.cols);
    const cv::Mat decoded = decode_rle(decode_rle_string(seg["counts"].get<std::string>()), labels.rows, labels.cols);
    EXPECT_EQ(cv::countNonZero(decoded != (labels == value) / 255), 0) << r["image_id"];
    EXPECT_GT(r["score"].get<double>(), 0.0);
    EXPECT_LE(r["score"].get<double>(), 1.0);
    ++checked;
  }
  EXPECT_GE(checked, 3u);
}

}  // namespace
}  // namespace clipes

#include "clipes/pipeline/coco_results.h"

namespace clipes {
namespace {

TEST(TrainingExport, CocoResultsFromCoco2014FileNames) {
  // Issue 27 item 5: masks named like CLIP-ES's COCO 2014 images
  // (COCO_val2014_000000005001) were skipped as "not a COCO image id".
  EXPECT_EQ(coco_image_id_from_stem("000000005001"), 5001);
  EXPECT_EQ(coco_image_id_from_stem("COCO_val2014_000000005001"), 5001);
  EXPECT_EQ(coco_image_id_from_stem("COCO_train2014_000000000009"), 9);
  EXPECT_FALSE(coco_image_id_from_stem("dog_001"));
  EXPECT_FALSE(coco_image_id_from_stem("COCO_val2014_"));
  const std::string dir = test::make_temp_dir("export-coco2014");
  cv::Mat mask(6, 5, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(1, 2, 3, 3)).setTo(1);
  write_indexed_png(dir + "/masks/COCO_val2014_000000005001.png", mask);
  const CocoResultsSummary s = write_coco_results(dir, {{1, 18}}, dir + "/results.json");
  EXPECT_EQ(s.images, 1u);
  EXPECT_EQ(s.skipped_stems, 0u);
  const auto results = nlohmann::json::parse(read_file(dir + "/results.json"));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["image_id"], 5001);
  EXPECT_EQ(results[0]["category_id"], 18);
  const auto& seg = results[0]["segmentation"];
  const cv::Mat decoded = decode_rle(decode_rle_string(seg["counts"].get<std::string>()), seg["size"][0], seg["size"][1]);
  EXPECT_EQ(cv::countNonZero(decoded != (mask == 1) / 255), 0);
}

}  // namespace
}  // namespace clipes

// clipes export mmseg|deeplab: the list and snippet a trainer reads.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {

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

  ASSERT_EQ(test::run_command(bin + " export deeplab " + dir + "/run", &log), 0) << log;
  std::istringstream pairs(read_file(dir + "/run/export/deeplab/train_aug.txt"));
  std::string image, mask;
  int n = 0;
  while (pairs >> image >> mask) {
    EXPECT_TRUE(std::filesystem::is_regular_file(image)) << image;
    EXPECT_TRUE(std::filesystem::is_regular_file(mask)) << mask;
    EXPECT_EQ(std::filesystem::path(image).stem(), std::filesystem::path(mask).stem());
    ++n;
  }
  EXPECT_EQ(n, 3);
  EXPECT_NE(read_file(dir + "/run/export/deeplab/clipes_pseudo_masks.yaml").find("N_CLASSES: 9"), std::string::npos);
  // Not a run folder: one line, exit 2.
  EXPECT_EQ(test::run_command(bin + " export mmseg " + dir + "/val", &log), 2) << log;
}

}  // namespace
}  // namespace clipes

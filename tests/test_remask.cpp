// Masks re-made from saved CAMs (pipeline/remask.h, issue 27 item 6) equal
// what generate writes: byte for byte at generate's own settings, and a full
// rerun's at another background threshold.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>

#include "clipes/io/indexed_png.h"
#include "clipes/pipeline/remask.h"
#include "clipes/text/class_config.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

// generate on two coco6 images (person; person and dog) with the tiny CLIP.
std::string generate_run(const std::string& dir, const std::string& extra) {
  const std::string images = dir + "/images";
  fs::create_directories(images);
  for (const char* stem : {"000000010764", "000000020992"})
    fs::copy_file(test::shared(std::string("fixtures/parity/coco6/images/") + stem + ".jpg"),
                  images + "/" + stem + ".jpg", fs::copy_options::skip_existing);
  write_file_atomic(dir + "/labels.csv", "000000010764.jpg,person\n000000020992.jpg,person;dog\n");
  const std::string out = dir + "/gen" + std::to_string(std::hash<std::string>()(extra) % 1000);
  std::string log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " -q generate --model " + test::tiny_clip_path() + " --vocab " +
                                  test::vocab_path() + " --dataset " + images + " --format folder --labels-file " +
                                  dir + "/labels.csv --out " + out + " " + extra,
                              &log),
            0)
      << log;
  return out;
}

RemaskOptions voc_options(const std::string& source, const std::string& out) {
  RemaskOptions o;
  o.cams_dir = source + "/cams";
  o.batch.out_dir = out;
  const ClassConfig voc = ClassConfig::resolve("voc");
  for (int i = 0; i < voc.num_classes(); ++i) o.value_of_class.push_back(voc.label_id(i));
  return o;
}

void expect_same_files(const std::string& a, const std::string& b) {
  EXPECT_EQ(read_file(a), read_file(b)) << a << " vs " << b;
}

TEST(Remask, SameSettingsGiveGeneratesBytesAndAnotherThresholdARerunsMasks) {
  const std::string dir = test::make_temp_dir("remask");
  const std::string source = generate_run(dir, "--save-cams");
  const std::vector<std::string> stems = stems_with_saved_cams(source + "/cams");
  ASSERT_EQ(stems, (std::vector<std::string>{"000000010764", "000000020992"}));

  const BatchSummary same = remask_from_saved_cams(stems, voc_options(source, dir + "/same"));
  EXPECT_EQ(same.processed, 2);
  EXPECT_EQ(same.failed, 0);
  for (const auto& s : stems) {
    expect_same_files(source + "/masks/" + s + ".png", dir + "/same/masks/" + s + ".png");
    expect_same_files(source + "/confidence/" + s + ".png", dir + "/same/confidence/" + s + ".png");
  }

  const std::string rerun = generate_run(dir, "--bg-threshold 0.5");
  RemaskOptions threshold = voc_options(source, dir + "/t05");
  threshold.mask.bg_threshold = 0.5;
  ASSERT_EQ(remask_from_saved_cams(stems, threshold).failed, 0);
  for (const auto& s : stems) {
    expect_same_files(rerun + "/masks/" + s + ".png", dir + "/t05/masks/" + s + ".png");
    expect_same_files(rerun + "/confidence/" + s + ".png", dir + "/t05/confidence/" + s + ".png");
  }
  // Resume: complete images are skipped.
  EXPECT_EQ(remask_from_saved_cams(stems, threshold).skipped, 2);
}

// The command on the toy world: SRC's settings by default, a new run folder
// eval and visualize read, resume, and refusals.
TEST(MasksCli, FromAToyRunAgreesWithGenerateAndMakesARunOfItsOwn) {
  const std::string dir = test::make_temp_dir("masks-cli");
  std::string log;
  ASSERT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + dir +
                                  "/val --count 6 --seed 5 --split val",
                              &log),
            0)
      << log;
  const std::string bin = test::clipes_binary();
  const std::string models = test::source_dir() + "/models/";
  const std::string generate = bin + " -q generate --model " + models + "toy-clip.pt --vocab " + models +
                               "toy-vocab.txt.gz --classes toy --dataset " + dir + "/val --format voc --split val";
  ASSERT_EQ(test::run_command(generate + " --save-cams --out " + dir + "/src", &log), 0) << log;
  ASSERT_EQ(test::run_command(generate + " --bg-threshold 0.45 --out " + dir + "/rerun", &log), 0) << log;

  ASSERT_EQ(test::run_command(bin + " masks --from " + dir + "/src --out " + dir + "/same", &log), 0) << log;
  EXPECT_NE(log.find("images/s"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(bin + " -q masks --from " + dir + "/src --out " + dir + "/t045 --bg-threshold 0.45", &log),
            0)
      << log;
  size_t masks = 0;
  for (const auto& e : fs::directory_iterator(dir + "/src/masks")) {
    const std::string name = e.path().filename().string();
    expect_same_files(e.path().string(), dir + "/same/masks/" + name);
    expect_same_files(dir + "/rerun/masks/" + name, dir + "/t045/masks/" + name);
    ++masks;
  }
  EXPECT_EQ(masks, 6u);
  // A run of its own: eval and visualize read its run.json (class set, image folder, GT).
  EXPECT_EQ(test::run_command(bin + " -q eval --pred " + dir + "/t045 --gt " + dir + "/val --split val --json " + dir +
                                  "/t045.json",
                              &log),
            0)
      << log;
  EXPECT_EQ(test::run_command(bin + " -q visualize --out " + dir + "/t045 --limit 1", &log), 0) << log;
  // Resume: nothing to do the second time; another threshold into the same folder is refused.
  ASSERT_EQ(test::run_command(bin + " masks --from " + dir + "/src --out " + dir + "/t045 --bg-threshold 0.45", &log), 0)
      << log;
  EXPECT_NE(log.find("6 already complete"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(bin + " masks --from " + dir + "/src --out " + dir + "/t045 --bg-threshold 0.3", &log), 2)
      << log;
  EXPECT_NE(log.find("other settings"), std::string::npos) << log;
  // Refused: SRC itself as OUT, and a run without saved CAMs.
  EXPECT_EQ(test::run_command(bin + " masks --from " + dir + "/src --out " + dir + "/src", &log), 2) << log;
  EXPECT_EQ(test::run_command(bin + " masks --from " + dir + "/rerun --out " + dir + "/x", &log), 2) << log;
  EXPECT_NE(log.find("--save-cams"), std::string::npos) << log;
}

}  // namespace
}  // namespace clipes

// Runs that remember what made them (pipeline/run_settings.h): a resume with
// other settings is refused, every invocation is appended to OUT/runs.jsonl,
// and eval / visualize take classes, label ids and the image folder from
// run.json. On six toy validation images with the bundled toy model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "clipes/pipeline/run_settings.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

struct ToyRun {
  std::string dir, data, out;
  std::string generate() const {
    return test::clipes_binary() + " generate -q --model " + test::source_dir() + "/models/toy-clip.pt --vocab " +
           test::source_dir() + "/models/toy-vocab.txt.gz --classes toy --dataset " + data +
           " --format voc --split val --out " + out;
  }
};

ToyRun make_toy_run(const std::string& name) {
  ToyRun r;
  r.dir = test::make_temp_dir(name);
  r.data = r.dir + "/toy";
  r.out = r.dir + "/out";
  EXPECT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + r.data +
                                  " --count 6 --seed 2 --split val",
                              nullptr),
            0);
  return r;
}

TEST(RunSettings, AResumeWithOtherSettingsIsRefusedNamingThem) {
  // Before: "6 already complete", exit 0, and run.json claimed settings that
  // had not made the masks on disk.
  const ToyRun r = make_toy_run("settings-refused");
  std::string log;
  ASSERT_EQ(test::run_command(r.generate(), &log), 0) << log;
  const std::string mask = read_file(r.out + "/masks/val_000000.png");
  EXPECT_EQ(test::run_command(r.generate() + " --box-threshold 0.9 --no-caa", &log), 2) << log;
  EXPECT_NE(log.find("box_threshold: 0.4 → 0.9"), std::string::npos) << log;
  EXPECT_NE(log.find("caa: true → false"), std::string::npos) << log;
  EXPECT_NE(log.find("--no-resume"), std::string::npos) << log;
  EXPECT_EQ(read_file(r.out + "/masks/val_000000.png"), mask);  // nothing touched
  // --force-resume keeps the outputs (and settings.json keeps what made them).
  ASSERT_EQ(test::run_command(r.generate() + " --box-threshold 0.9 --no-caa --force-resume", &log), 0) << log;
  const auto settings = nlohmann::json::parse(read_file(r.out + "/settings.json"));
  EXPECT_EQ(settings["settings"]["box_threshold"], 0.4);
  // --no-resume recomputes and records the new settings.
  ASSERT_EQ(test::run_command(r.generate() + " --box-threshold 0.9 --no-caa --no-resume", &log), 0) << log;
  EXPECT_EQ(nlohmann::json::parse(read_file(r.out + "/settings.json"))["settings"]["caa"], false);
  // Same settings again: a plain resume.
  EXPECT_EQ(test::run_command(r.generate() + " --box-threshold 0.9 --no-caa", &log), 0) << log;
  // The class set itself is part of the settings, not only its name.
  const auto diffs = settings_differences(nlohmann::json{{"class_set", {{"background", {"ground"}}}}},
                                          nlohmann::json{{"class_set", {{"background", {"grass"}}}}});
  ASSERT_EQ(diffs.size(), 1u);
  EXPECT_EQ(diffs[0].rfind("class_set.background", 0), 0u) << diffs[0];
}

TEST(RunSettings, AGenerateResumeWithAnotherActivationIsRefused) {
  // segment and tag recorded --activation, generate did not: a generate
  // resume with another activation reused masks made with the first one.
  const ToyRun r = make_toy_run("settings-activation");
  std::string log;
  ASSERT_EQ(test::run_command(r.generate() + " --activation quick-gelu", &log), 0) << log;
  EXPECT_EQ(test::run_command(r.generate() + " --activation gelu", &log), 2) << log;
  EXPECT_NE(log.find(R"(activation: "quick-gelu" → "gelu")"), std::string::npos) << log;
  // A run that never named an activation records none (settings written
  // before this key existed still resume).
  const ToyRun plain = make_toy_run("settings-no-activation");
  ASSERT_EQ(test::run_command(plain.generate(), &log), 0) << log;
  EXPECT_FALSE(nlohmann::json::parse(read_file(plain.out + "/settings.json"))["settings"].contains("activation"));
}

TEST(RunSettings, ARunThatWroteNothingDoesNotBlockTheNext) {
  // A first attempt that fails before any mask (here: every image is
  // unreadable) must not pin its settings on the folder.
  const std::string dir = test::make_temp_dir("settings-nothing-written");
  fs::create_directories(dir + "/images");
  write_file_atomic(dir + "/images/a.jpg", "not an image");
  write_file_atomic(dir + "/labels.csv", "a.jpg,circle\n");
  const std::string base = test::clipes_binary() + " generate -q --model " + test::source_dir() +
                           "/models/toy-clip.pt --vocab " + test::source_dir() +
                           "/models/toy-vocab.txt.gz --classes toy --format folder --dataset " + dir +
                           "/images --labels-file " + dir + "/labels.csv --out " + dir + "/out";
  std::string log;
  EXPECT_EQ(test::run_command(base, &log), 1) << log;  // nothing producible
  EXPECT_EQ(test::run_command(base + " --box-threshold 0.9", &log), 1) << log;  // not "other settings"
  EXPECT_EQ(log.find("other settings"), std::string::npos) << log;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/out/settings.json"))["settings"]["box_threshold"], 0.9);
}

TEST(RunSettings, EveryInvocationIsAppendedToTheHistory) {
  const ToyRun r = make_toy_run("settings-history");
  std::string log;
  ASSERT_EQ(test::run_command(r.generate(), &log), 0) << log;
  ASSERT_EQ(test::run_command(r.generate() + " --limit 3", &log), 0) << log;
  std::istringstream in(read_file(r.out + "/runs.jsonl"));
  std::vector<nlohmann::json> runs;
  for (std::string line; std::getline(in, line);) runs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["counts"]["processed"], 6);  // the first run's record survives the second
  EXPECT_EQ(runs[1]["counts"]["skipped_complete"], 3);
  EXPECT_EQ(runs[1]["argv"].back(), "3");
  for (const auto& run : runs) {
    EXPECT_TRUE(run.contains("started"));
    EXPECT_TRUE(run.contains("ended"));
    EXPECT_TRUE(run.contains("timings_s"));
  }
  // run.json holds the whole class set and the image folder.
  const auto record = nlohmann::json::parse(read_file(r.out + "/run.json"));
  EXPECT_EQ(record["config"]["class_set"]["name"], "toy");
  EXPECT_EQ(record["config"]["class_set"]["classes"][0]["name"], "circle");
  EXPECT_EQ(fs::path(record["images_folder"].get<std::string>()), fs::path(r.data) / "JPEGImages");
}

TEST(RunSettings, EvalAndVisualizeTakeClassesAndImagesFromRunJson) {
  // Before: eval of a toy run printed VOC names, and visualize labelled a toy
  // square "2 bicycle".
  const ToyRun r = make_toy_run("settings-readback");
  std::string log;
  ASSERT_EQ(test::run_command(r.generate() + " --save-cams", &log), 0) << log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " eval --pred " + r.out + " --gt " + r.data + " --split val", &log),
            0)
      << log;
  EXPECT_NE(log.find("circle"), std::string::npos) << log;
  EXPECT_EQ(log.find("bicycle"), std::string::npos) << log;
  // No --images, no --classes: both from run.json.
  ASSERT_EQ(test::run_command(test::clipes_binary() + " visualize --out " + r.out + " --limit 2", &log), 0) << log;
  EXPECT_TRUE(fs::exists(r.out + "/vis/val_000000.jpg")) << log;
}

}  // namespace
}  // namespace clipes

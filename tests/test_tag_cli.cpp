// clipes tag, generate --labels auto and eval --tags end to end on coco-tiny
// with the tiny fixture CLIP: the labels file tag writes is accepted
// unchanged by generate, and eval scores it against the COCO labels.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

std::string coco_root() { return test::shared("data/coco-tiny"); }
std::string model_args() { return " --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path(); }

TEST(TagCli, TagsALabelsFileThatGenerateAcceptsAndEvalScores) {
  const std::string root = test::make_temp_dir("tag-cli");
  const std::string out = root + "/tags";
  std::string log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " tag" + model_args() + " --dataset " + coco_root() +
                                  " --format coco --limit 3 --out '" + out + "'",
                              &log),
            0)
      << log;
  const auto labels = nlohmann::json::parse(read_file(out + "/labels.json"));
  ASSERT_EQ(labels.size(), 3u) << labels.dump();
  for (const auto& [image, tags] : labels.items()) {
    EXPECT_EQ(fs::path(image).extension(), ".jpg") << image;
    ASSERT_TRUE(tags.is_array());
    EXPECT_GE(tags.size(), 1u) << "at least one tag per image";
  }
  // tags.jsonl: one line per image with all 80 class scores.
  std::ifstream jsonl(out + "/tags.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(jsonl, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["scores"].size(), 80u);
    ++lines;
  }
  EXPECT_EQ(lines, 3);
  // A rerun resumes: nothing recomputed, same labels.
  ASSERT_EQ(test::run_command(test::clipes_binary() + " tag" + model_args() + " --dataset " + coco_root() +
                                  " --format coco --limit 3 --out '" + out + "'",
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("3 already complete"), std::string::npos) << log;
  EXPECT_EQ(nlohmann::json::parse(read_file(out + "/labels.json")), labels);

  // generate reads the labels file unchanged (folder format over the image folder).
  const std::string masks = root + "/masks";
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q generate" + model_args() + " --classes coco --format folder"
                                  " --dataset " + coco_root() + "/val2017 --labels-file '" + out +
                                  "/labels.json' --out '" + masks + "'",
                              &log),
            0)
      << log;
  size_t written = 0;
  for (const auto& e : fs::directory_iterator(masks + "/masks")) written += e.path().extension() == ".png";
  EXPECT_EQ(written, 3u);

  // eval --tags against the COCO annotations: the report has mAP (tags.jsonl beside), P, R, F1.
  const int rc = test::run_command(test::clipes_binary() + " eval --tags '" + out + "/labels.json' --gt " + coco_root() +
                                       " --json -",
                                   &log);
  EXPECT_EQ(rc, 1) << "77 of coco-tiny's 80 images have no tags: missing, exit 1\n" << log;
  const auto report = nlohmann::json::parse(log.substr(log.find('{'), log.rfind('}') - log.find('{') + 1));
  EXPECT_EQ(report["images"], 3);
  EXPECT_EQ(report["missing"], 77);
  EXPECT_TRUE(report["map"].is_number()) << report.dump();
  for (const char* k : {"precision", "recall", "f1"}) {
    EXPECT_GE(report[k].get<double>(), 0.0);
    EXPECT_LE(report[k].get<double>(), 1.0);
  }
  EXPECT_EQ(report["classes"].size(), 80u);
}

TEST(TagCli, GenerateWithAutoLabelsTagsThenSegmentsAndRecordsTheTags) {
  const std::string out = test::make_temp_dir("gen-auto") + "/out";
  std::string log;
  const std::string image = test::shared("fixtures/parity/coco6/images/000000020992.jpg");
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q generate" + model_args() + " --classes coco --image " +
                                  image + " --labels auto --out '" + out + "'",
                              &log),
            0)
      << log;
  EXPECT_TRUE(fs::exists(out + "/masks/000000020992.png"));
  const auto run = nlohmann::json::parse(read_file(out + "/run.json"));
  ASSERT_TRUE(run.contains("predicted_labels")) << run.dump();
  const auto& tags = run["predicted_labels"]["000000020992"];
  ASSERT_TRUE(tags.is_array());
  EXPECT_GE(tags.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(read_file(out + "/labels.json"))["000000020992.jpg"], tags);
  // The settings record the label source: a resume with real labels is refused.
  EXPECT_NE(test::run_command(test::clipes_binary() + " generate" + model_args() + " --classes coco --image " + image +
                                  " --labels dog --out '" + out + "'",
                              &log),
            0);
  EXPECT_NE(log.find("labels"), std::string::npos) << log;
  // --labels without --image (and not auto) is a mistake, said once.
  EXPECT_EQ(test::run_command(test::clipes_binary() + " generate" + model_args() + " --format coco --dataset " +
                                  coco_root() + " --labels dog --out '" + out + "-x'",
                              &log),
            2);
  EXPECT_NE(log.find("--labels goes with --image"), std::string::npos) << log;
}

TEST(TagCli, TagsNeverReplaceALabelsFileTheyDidNotWrite) {
  // Before: with --out equal to the image folder, tag (and generate --labels
  // auto) replaced the user's own labels.json.
  const std::string dir = test::make_temp_dir("tag-own-labels");
  fs::copy_file(test::shared("fixtures/parity/coco6/images/000000020992.jpg"), dir + "/a.jpg");
  const std::string mine = R"({"a.jpg": ["dog"]})" "\n";
  write_file_atomic(dir + "/labels.json", mine);
  std::string log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " -q tag" + model_args() + " --dataset " + dir +
                                  " --format folder --out " + dir,
                              &log),
            2)
      << log;
  EXPECT_NE(log.find(dir + "/labels.json: exists and was not written by a tag run"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " -q generate" + model_args() + " --image " + dir +
                                  "/a.jpg --labels auto --out " + dir,
                              &log),
            2)
      << log;
  EXPECT_EQ(read_file(dir + "/labels.json"), mine);
  // A tag run's own summaries are rewritten by the next run into that folder.
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q tag" + model_args() + " --image " + dir +
                                  "/a.jpg --out " + dir + "/tags-out",
                              &log),
            0)
      << log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " -q tag" + model_args() + " --image " + dir +
                                  "/a.jpg --out " + dir + "/tags-out",
                              &log),
            0)
      << log;
}

}  // namespace
}  // namespace clipes

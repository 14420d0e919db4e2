// RunRecord (pipeline/run_record.h): the one typed reader of OUT/run.json
// that eval, export and visualize share.
#include <gtest/gtest.h>

#include <filesystem>

#include "clipes/pipeline/run_record.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

TEST(RunRecord, ReadsTheFieldsTheReadersUseAndFallsBackToAShardRecord) {
  const std::string dir = test::make_temp_dir("run-record");
  EXPECT_FALSE(RunRecord::read(dir).has_value());  // no record: not an error
  // A sharded run that was never merged: the first shard's record.
  write_file_atomic(dir + "/run.shard-1-of-2.json",
                    R"({"command": "segment", "images_folder": "/data/img",
                        "input": {"format": "voc", "dataset": "/data"},
                        "config": {"label_ids": "dataset",
                                   "class_set": {"name": "pets", "background": ["ground"],
                                                 "classes": [{"name": "cat"}, {"name": "dog"}]}}})");
  write_file_atomic(dir + "/run.shard-0-of-2.json", R"({"command": "segment", "config": {}})");
  std::optional<RunRecord> r = RunRecord::read(dir);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::filesystem::path(r->path).filename(), "run.shard-0-of-2.json");
  EXPECT_FALSE(r->has_class_set);
  EXPECT_EQ(r->label_ids, "consecutive");  // the default when not recorded
  EXPECT_THROW(r->class_set(), Error);

  // run.json wins over shard records.
  write_file_atomic(dir + "/run.json", read_file(dir + "/run.shard-1-of-2.json"));
  r = RunRecord::read(dir);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::filesystem::path(r->path).filename(), "run.json");
  EXPECT_EQ(r->command, "segment");
  EXPECT_EQ(r->images_folder, "/data/img");
  EXPECT_EQ(r->label_ids, "dataset");
  EXPECT_EQ(r->input.value("format", ""), "voc");
  ASSERT_TRUE(r->has_class_set);
  EXPECT_EQ(r->class_set_name, "pets");
  const ClassConfig classes = r->class_set();
  ASSERT_EQ(classes.classes.size(), 2u);
  EXPECT_EQ(classes.classes[1].name, "dog");
}

TEST(RunRecord, LabelledDatasetIsAVocOrCocoInputWithItsSplit) {
  const std::string dir = test::make_temp_dir("run-record-dataset");
  auto dataset_of = [&](const std::string& input) {
    write_file_atomic(dir + "/run.json", R"({"command": "generate", "input": )" + input + "}");
    return RunRecord::read(dir)->labelled_dataset();
  };
  const auto voc = dataset_of(R"({"dataset": "/d/VOC2012", "format": "voc", "split": "val"})");
  ASSERT_TRUE(voc.has_value());
  EXPECT_EQ(voc->path, "/d/VOC2012");
  EXPECT_EQ(voc->format, "voc");
  EXPECT_EQ(voc->split, "val");
  const auto coco = dataset_of(R"({"dataset": "/d/coco", "format": "coco", "split": 3})");
  ASSERT_TRUE(coco.has_value());
  EXPECT_EQ(coco->split, "");  // not a string: no split
  EXPECT_FALSE(dataset_of(R"({"dataset": "/d/images", "format": "folder"})").has_value());
  EXPECT_FALSE(dataset_of(R"({"image": "/d/x.jpg"})").has_value());
}

TEST(RunRecord, AFieldOfTheWrongTypeIsOneLineNamingTheFileAndTheField) {
  const std::string dir = test::make_temp_dir("run-record-bad");
  for (const auto& [text, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"config": {"label_ids": 3}})", "config.label_ids"},
           {R"({"config": {"class_set": "voc"}})", "config.class_set"},
           {R"({"images_folder": ["a"]})", "images_folder"},
           {R"([1, 2])", "not a JSON object"},
           {R"({"config": )", "not valid JSON"}}) {
    write_file_atomic(dir + "/run.json", text);
    try {
      RunRecord::read(dir);
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(dir + "/run.json"), std::string::npos) << m;
      EXPECT_NE(m.find(field), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
}

}  // namespace
}  // namespace clipes

namespace clipes {
namespace {

TEST(RunRecord, SegmentScoreRuleComesFromTheRecordOrTheMethodOfOlderRuns) {
  const std::string dir = test::make_temp_dir("run-record-scores");
  auto rule = [&](const std::string& config) {
    write_file_atomic(dir + "/run.json", R"({"command": "segment", "config": )" + config + "}");
    return RunRecord::read(dir)->segment_score_rule();
  };
  SavedScoreRule r = rule(R"({"logit_scale": 40, "scores_channels": "query_cosines"})");
  EXPECT_TRUE(r.query_cosines);
  EXPECT_DOUBLE_EQ(r.logit_scale, 40.0);
  EXPECT_FALSE(rule(R"({"logit_scale": 100, "scores_channels": "class_probabilities"})").query_cosines);
  // Runs recorded before scores_channels: NACLIP's channels were cosines.
  EXPECT_TRUE(rule(R"({"logit_scale": 40, "method": "naclip"})").query_cosines);
  EXPECT_FALSE(rule(R"({"logit_scale": 100, "method": "maskclip"})").query_cosines);
  EXPECT_THROW(rule(R"({"method": "naclip"})"), Error);  // no scale: the scores cannot be read
  EXPECT_THROW(rule(R"({"logit_scale": 40, "scores_channels": "logits"})"), Error);
  write_file_atomic(dir + "/run.json", R"({"command": "generate", "config": {"logit_scale": 100}})");
  EXPECT_THROW(RunRecord::read(dir)->segment_score_rule(), Error);
}

}  // namespace
}  // namespace clipes

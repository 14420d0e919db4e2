// generate --cam-format clip-es end to end: the official pickled dict holds
// exactly the CAMs the npy layout holds, eval --cams scores both folders
// (and a folder as the official code writes it, without 'highres') the same,
// and visualize draws sheets from it with the ground-truth panel.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "clipes/io/clip_es_cams.h"
#include "clipes/io/contact_sheet.h"
#include "clipes/io/npy.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

std::string coco_root() { return test::shared("data/coco-tiny"); }
std::string coco_json() { return coco_root() + "/annotations/instances_val2017.json"; }

std::string generate(const std::string& out, const std::string& extra) {
  return test::clipes_binary() + " -q generate --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path() +
         " --format coco --dataset " + coco_root() + " --limit 3 --out '" + out + "' " + extra;
}

// Scores the run's own images (the run has --limit 3 of coco-tiny's 80).
nlohmann::json eval_cams(const std::string& pred, const std::vector<std::string>& ids, const std::string& extra = "") {
  std::string list_text, log;
  for (const auto& id : ids) list_text += id + "\n";
  write_file_atomic(pred + ".ids.txt", list_text);
  const int rc = test::run_command(test::clipes_binary() + " eval --cams --pred '" + pred + "' --gt " + coco_json() +
                                       " --list '" + pred + ".ids.txt' --json - " + extra,
                                   &log);
  EXPECT_EQ(rc, 0) << log;
  return rc == 0 ? nlohmann::json::parse(log.substr(log.find('{'))) : nlohmann::json();
}

std::vector<std::string> stems(const std::string& out) {
  std::vector<std::string> s;
  for (const auto& e : fs::directory_iterator(out + "/masks")) s.push_back(e.path().stem().string());
  std::sort(s.begin(), s.end());
  return s;
}

TEST(CamFormats, ClipEsDictHoldsTheSameCamsAndEvalScoresItTheSame) {
  const std::string root = test::make_temp_dir("cam-formats");
  const std::string npy = root + "/npy", clip_es = root + "/clip-es", official = root + "/official";
  std::string log;
  ASSERT_EQ(test::run_command(generate(npy, "--save-cams"), &log), 0) << log;
  // --cam-format clip-es implies --save-cams.
  ASSERT_EQ(test::run_command(generate(clip_es, "--cam-format clip-es"), &log), 0) << log;
  const std::vector<std::string> ids = stems(npy);
  ASSERT_EQ(ids.size(), 3u);
  ASSERT_EQ(stems(clip_es), ids);
  fs::create_directories(official + "/cams");
  for (const auto& id : ids) {
    EXPECT_FALSE(fs::exists(clip_es + "/cams/" + id + "_refined.npy"));
    const ClipEsCams dict = read_clip_es_cams(clip_es + "/cams/" + id + ".npy");
    EXPECT_TRUE(torch::equal(dict.attn_highres, read_npy(npy + "/cams/" + id + "_refined.npy"))) << id;
    EXPECT_TRUE(torch::equal(dict.highres, read_npy(npy + "/cams/" + id + "_cam.npy"))) << id;
    EXPECT_TRUE(torch::equal(dict.keys, read_npy(npy + "/cams/" + id + "_keys.npy"))) << id;
    EXPECT_EQ(read_file(clip_es + "/masks/" + id + ".png"), read_file(npy + "/masks/" + id + ".png")) << id;
    // What the official generate_cams_coco14.py writes: keys and attn_highres only.
    write_clip_es_cams(official + "/cams/" + id + ".npy", dict.keys, dict.attn_highres, at::Tensor());
  }
  const nlohmann::json a = eval_cams(npy, ids), b = eval_cams(clip_es, ids), c = eval_cams(official, ids);
  ASSERT_TRUE(a.contains("miou")) << a.dump();
  EXPECT_EQ(a["miou"], b["miou"]);
  EXPECT_EQ(a["miou"], c["miou"]);
  EXPECT_EQ(a["sweep"], b["sweep"]);
  EXPECT_EQ(a["evaluated"], 3);
  EXPECT_EQ(eval_cams(npy, ids, "--cam-kind cam")["miou"], eval_cams(clip_es, ids, "--cam-kind cam")["miou"]);
  // The official dict has no unrefined CAMs: said so, naming the file.
  EXPECT_NE(test::run_command(test::clipes_binary() + " eval --cams --cam-kind cam --pred '" + official + "' --gt " +
                                  coco_json() + " --list '" + npy + ".ids.txt'",
                              &log),
            0);
  EXPECT_NE(log.find("no unrefined CAMs"), std::string::npos) << log;

  // A resume with the other layout is refused: the settings differ.
  EXPECT_NE(test::run_command(generate(npy, "--cam-format clip-es"), &log), 0);
  EXPECT_NE(log.find("cam_format"), std::string::npos) << log;

  // visualize reads the dict, and run.json's dataset gives it the ground truth.
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q visualize --out '" + clip_es + "' --ids " + ids[0], &log), 0)
      << log;
  const cv::Mat sheet = cv::imread(clip_es + "/vis/" + ids[0] + ".jpg");
  ASSERT_FALSE(sheet.empty());
  const cv::Mat image = cv::imread(coco_root() + "/val2017/" + ids[0] + ".jpg");
  const ClipEsCams dict = read_clip_es_cams(clip_es + "/cams/" + ids[0] + ".npy");
  // Height with a GT row and one heat row per key; the legend's rows vary with the ids present.
  const ContactSheetGeometry with_gt =
      contact_sheet_geometry(image.rows, image.cols, static_cast<int>(dict.keys.size(0)), true, 0);
  EXPECT_GE(sheet.rows, with_gt.height);
  EXPECT_GE(sheet.cols, with_gt.width);
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q visualize --no-gt --out '" + clip_es + "' --ids " + ids[0], &log), 0)
      << log;
  const cv::Mat no_gt = cv::imread(clip_es + "/vis/" + ids[0] + ".jpg");
  EXPECT_GT(sheet.rows, no_gt.rows + with_gt.tile_height) << "the GT row is one more tile row";
}

}  // namespace
}  // namespace clipes

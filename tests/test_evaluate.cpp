// Confusion-matrix arithmetic by hand, ground truth scored against itself,
// the CAM background sweep, and `clipes eval` end to end.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "clipes/data/coco_mask.h"
#include "clipes/eval/confusion_matrix.h"
#include "clipes/eval/evaluate.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/text/class_config.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace clipes {
namespace {

std::string coco_tiny_json() { return test::shared("data/coco-tiny/annotations/instances_val2017.json"); }

cv::Mat row(const std::vector<int>& values) {
  cv::Mat m(1, static_cast<int>(values.size()), CV_8UC1);
  for (size_t i = 0; i < values.size(); ++i) m.at<uint8_t>(0, static_cast<int>(i)) = static_cast<uint8_t>(values[i]);
  return m;
}

TEST(ConfusionMatrix, HandWorkedCase) {
  ConfusionMatrix m(3);
  m.add(row({0, 1, 1, 1, 0, 2}), row({0, 0, 1, 1, 2, 255}));
  EXPECT_EQ(m.ignored_pixels(), 1u);
  EXPECT_EQ(m.total_pixels(), 5u);
  EXPECT_EQ(m.count(0, 1), 1u);
  EXPECT_EQ(m.count(2, 0), 1u);
  const auto iou = m.iou();
  EXPECT_DOUBLE_EQ(iou[0], 1.0 / 3);  // TP 1 / (GT 2 + Pred 2 − 1)
  EXPECT_DOUBLE_EQ(iou[1], 2.0 / 3);  // 2 / (2 + 3 − 2)
  EXPECT_DOUBLE_EQ(iou[2], 0.0);      // 0 / (1 + 0 − 0)
  EXPECT_DOUBLE_EQ(m.mean_iou(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.pixel_accuracy(), 3.0 / 5);
  EXPECT_DOUBLE_EQ(m.mean_class_accuracy(), (0.5 + 1.0 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(m.frequency_weighted_iou(), 0.4 * (1.0 / 3) + 0.4 * (2.0 / 3));
}

TEST(ConfusionMatrix, ClassesAbsentFromGroundTruthDoNotCountAndIgnoredPredictionsMiss) {
  ConfusionMatrix m(4);
  // Class 3 is only predicted; a 255 prediction predicts nothing.
  m.add(row({0, 3, 1, 255}), row({0, 0, 1, 1}));
  const auto iou = m.iou();
  EXPECT_DOUBLE_EQ(iou[3], 0.0);
  EXPECT_TRUE(std::isnan(iou[2]));
  EXPECT_DOUBLE_EQ(iou[0], 0.5);  // 1 / (2 + 1 − 1)
  EXPECT_DOUBLE_EQ(iou[1], 0.5);  // 1 / (2 + 1 − 1): the 255 pixel is a miss
  EXPECT_DOUBLE_EQ(m.mean_iou(), 0.5);  // over classes 0 and 1 only
  EXPECT_THROW(m.add(row({0, 1}), row({0})), Error);
}

// Writes coco-tiny's semantic ground truth as prediction PNGs.
std::string write_coco_tiny_masks(const std::string& name, bool dataset_ids) {
  const std::string dir = test::make_temp_dir(name);
  const CocoGroundTruth gt = CocoGroundTruth::load(coco_tiny_json());
  for (const auto& image : gt.images())
    write_indexed_png(dir + "/masks/" + image.stem + ".png", gt.semantic_mask(image.id, dataset_ids));
  return dir;
}

TEST(Evaluate, CocoGroundTruthAgainstItselfIsPerfect) {
  const std::string pred = write_coco_tiny_masks("eval-self", false);
  const GtSource gt = GtSource::open(coco_tiny_json());
  EXPECT_EQ(gt.kind(), GtSource::Kind::Coco);
  const auto ids = gt.default_ids("");
  ASSERT_EQ(ids.size(), 80u);
  const EvalReport report = evaluate_masks(pred, gt, ids);
  EXPECT_EQ(report.num_evaluated, 80u);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_DOUBLE_EQ(report.mean_iou, 1.0);
  EXPECT_DOUBLE_EQ(report.pixel_accuracy, 1.0);
  EXPECT_GT(report.classes_in_gt, 20);
  EXPECT_GT(report.ignored_pixels, 0u);  // the crowd regions
  EXPECT_EQ(report.classes.front().name, "background");
  EXPECT_EQ(report.classes[1].name, "person");
  const auto j = eval_report_json(report);
  EXPECT_DOUBLE_EQ(j["miou"].get<double>(), 1.0);

  // Off by one class everywhere → only background stays right.
  const std::string shifted = test::make_temp_dir("eval-shifted");
  for (const auto& id : ids) {
    cv::Mat mask = read_label_png(pred + "/masks/" + id + ".png");
    mask.setTo(cv::Scalar(1), mask == 2);  // bicycle pixels predicted as person
    write_indexed_png(shifted + "/" + id + ".png", mask);  // a flat folder works too
  }
  const EvalReport worse = evaluate_masks(shifted, gt, ids);
  EXPECT_LT(worse.mean_iou, 1.0);
  EXPECT_DOUBLE_EQ(worse.classes[2].iou, 0.0);

  // Per image and the confusion matrix (issue 27 item 8): the images with
  // bicycles are exactly the imperfect ones, and the matrix says where the
  // bicycle pixels went.
  ASSERT_EQ(report.per_image.size(), 80u);
  for (const auto& im : report.per_image) EXPECT_DOUBLE_EQ(im.mean_iou, 1.0) << im.id;
  ASSERT_EQ(worse.per_image.size(), 80u);
  size_t imperfect = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const cv::Mat mask = read_label_png(pred + "/masks/" + ids[i] + ".png");
    const bool has_bicycle = cv::countNonZero(mask == 2) > 0;
    EXPECT_EQ(worse.per_image[i].id, ids[i]);
    EXPECT_EQ(worse.per_image[i].mean_iou < 1.0, has_bicycle) << ids[i];
    imperfect += has_bicycle;
  }
  ASSERT_GT(imperfect, 0u);
  const auto worst = worst_images(worse, 3);
  ASSERT_EQ(worst.size(), std::min<size_t>(3, imperfect));
  EXPECT_LE(worst[0].mean_iou, worst.back().mean_iou);
  EXPECT_LT(worst.back().mean_iou, 1.0);
  ASSERT_GT(worse.confusion.size(), 2u);
  EXPECT_EQ(worse.confusion[2][2], 0u);
  EXPECT_EQ(worse.confusion[2][1], report.confusion[2][2]);  // every bicycle pixel went to person
  EXPECT_EQ(worse.confusion[1][1], report.confusion[1][1]);
  const auto wj = eval_report_json(worse);
  EXPECT_EQ(wj["per_image"].size(), 80u);
  EXPECT_EQ(wj["confusion_matrix"]["counts"][2][1].get<uint64_t>(), worse.confusion[2][1]);
  EXPECT_EQ(wj["per_image"][0]["iou"].is_object(), true);
  EXPECT_NE(format_eval_report(worse).find("lowest image mIoU: " + worst[0].id), std::string::npos);
}

TEST(Evaluate, CamSweepMarksTheBestBackground) {
  const std::string dir = test::make_temp_dir("eval-cams");
  cv::Mat truth = (cv::Mat_<uint8_t>(2, 2) << 0, 15, 15, 0);
  write_indexed_png(dir + "/gt/a.png", truth);
  write_indexed_png(dir + "/gt/b.png", truth);  // has ground truth but no CAMs
  const at::Tensor cam = torch::tensor({0.2f, 0.9f, 0.6f, 0.4f}).reshape({1, 2, 2}).to(torch::kHalf);
  write_npy(dir + "/out/cams/a_refined.npy", cam);
  write_npy(dir + "/out/cams/a_keys.npy", torch::tensor({int64_t{14}}));  // person
  EvalOptions options;
  options.labels = voc_label_set();
  const GtSource gt = GtSource::open(dir + "/gt");
  EXPECT_EQ(gt.kind(), GtSource::Kind::Folder);
  const EvalReport report = evaluate_cams(dir + "/out", gt, {"a", "b"}, options);
  EXPECT_EQ(report.missing, std::vector<std::string>{"b"});
  ASSERT_EQ(report.sweep.size(), 21u);
  // α = 1: bg = 1 − max = (.8, .1, .4, .6) → exactly the ground truth.
  EXPECT_EQ(report.sweep[0].background, "alpha");
  EXPECT_DOUBLE_EQ(report.sweep[0].mean_iou, 1.0);
  EXPECT_TRUE(report.sweep[0].best);
  // α = 2: bg = (.64, .01, .16, .36) → the 0.4 pixel turns person: (1/2 + 2/3) / 2.
  EXPECT_NEAR(report.sweep[1].mean_iou, (0.5 + 2.0 / 3) / 2, 1e-12);
  // Constant 0.05: everything is person → (0 + 2/4) / 2.
  EXPECT_EQ(report.sweep[2].background, "threshold");
  EXPECT_NEAR(report.sweep[2].mean_iou, 0.25, 1e-12);
  // Constant 0.40 ties with the 0.4 CAM pixel (both float16) → background wins → perfect.
  EXPECT_NEAR(report.sweep[2 + 7].parameter, 0.40, 1e-12);
  EXPECT_DOUBLE_EQ(report.sweep[2 + 7].mean_iou, 1.0);
  EXPECT_FALSE(report.sweep[2 + 7].best);  // the first best wins
  EXPECT_EQ(report.best_setting, "alpha=1");
  EXPECT_NE(format_eval_report(report).find("<- best"), std::string::npos);
  // The hint for refined CAMs is generate with CAA on (its default) ...
  const std::string refined_table = format_eval_report(report);
  EXPECT_NE(refined_table.find("clipes generate ... --bg-power 1.00\n"), std::string::npos) << refined_table;
  // ... and for unrefined ones, generate with CAA off (issue 27 item 1: the
  // hint without --no-caa gave 28.65 instead of the 59.88 it measured).
  write_npy(dir + "/out/cams/a_cam.npy", cam);
  EvalOptions unrefined = options;
  unrefined.cam_suffix = "cam";
  const EvalReport cam_report = evaluate_cams(dir + "/out", gt, {"a"}, unrefined);
  const std::string cam_table = format_eval_report(cam_report);
  EXPECT_NE(cam_table.find("clipes generate ... --bg-power 1.00 --no-caa\n"), std::string::npos) << cam_table;
  // Unrefined CAMs sweep α = 1..10 as eval_cam.py does for 'highres' (issue 27 item 9).
  ASSERT_EQ(cam_report.sweep.size(), 29u);
  EXPECT_EQ(cam_report.sweep[9].background, "alpha");
  EXPECT_DOUBLE_EQ(cam_report.sweep[9].parameter, 10.0);
  EXPECT_EQ(cam_report.sweep[10].background, "threshold");
  // α = 3: bg = (.512, .001, .064, .216) → only the 0.4 pixel is wrong, as for α = 2.
  EXPECT_NEAR(cam_report.sweep[2].mean_iou, (0.5 + 2.0 / 3) / 2, 1e-12);
  ASSERT_EQ(report.per_image.size(), 1u);  // the best setting's image score
  EXPECT_DOUBLE_EQ(report.per_image[0].mean_iou, 1.0);

  // CAMs of another size than the ground truth: an error naming the CAM file.
  write_npy(dir + "/out/cams/a_refined.npy", torch::zeros({1, 3, 2}).to(torch::kHalf));
  try {
    evaluate_cams(dir + "/out", gt, {"a"}, options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a_refined.npy"), std::string::npos) << e.what();
  }
}

TEST(EvalCli, TableExitCodesAndErrors) {
  const std::string pred = write_coco_tiny_masks("eval-cli", false);
  const std::string bin = test::clipes_binary();
  std::string out;
  const std::string json_path = pred + "/report.json";
  int rc = test::run_command(bin + " eval --pred " + pred + " --gt " + coco_tiny_json() + " --json " + json_path, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("mIoU 100.00"), std::string::npos) << out;
  EXPECT_NE(out.find("person"), std::string::npos) << out;
  EXPECT_NE(out.find("images: 80  evaluated: 80  missing: 0"), std::string::npos) << out;
  const auto report = nlohmann::json::parse(read_file(json_path));
  EXPECT_DOUBLE_EQ(report["miou"].get<double>(), 1.0);
  EXPECT_EQ(report["evaluated"].get<int>(), 80);

  // A COCO root works as --gt too, and --list restricts the ids.
  write_file_atomic(pred + "/two.txt", "000000005001\n000000010764\n");
  rc = test::run_command(bin + " eval --pred " + pred + " --gt " + test::shared("data/coco-tiny") + " --list " +
                             pred + "/two.txt",
                         &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("images: 2  evaluated: 2"), std::string::npos) << out;

  // One prediction missing: scored without it, said loudly, exit code 1.
  fs::remove(pred + "/masks/000000005001.png");
  rc = test::run_command(bin + " eval --pred " + pred + " --gt " + coco_tiny_json(), &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("WARNING: 1 of 80 images have no prediction"), std::string::npos) << out;
  EXPECT_NE(out.find("000000005001"), std::string::npos) << out;

  // A prediction of the wrong size: exit 2 and the error names the file.
  write_indexed_png(pred + "/masks/000000010764.png", cv::Mat(5, 7, CV_8UC1, cv::Scalar(0)));
  rc = test::run_command(bin + " eval --pred " + pred + " --gt " + coco_tiny_json(), &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("clipes: error: " + pred + "/masks/000000010764.png: prediction is 7x5"), std::string::npos)
      << out;

  // No predictions at all is an error, not a score.
  const std::string empty = test::make_temp_dir("eval-empty");
  rc = test::run_command(bin + " eval --pred " + empty + " --gt " + coco_tiny_json(), &out);
  EXPECT_EQ(rc, 2) << out;
}

TEST(EvalCli, ExportGtPngWritesCocoAsClassPngsTheOfficialEvalReads) {
  // Issue 27 item 9: the official eval_cam.py reads <gt_root>/<id>.png, which
  // COCO does not ship; `export gt-png` rasterises the instances json.
  const std::string dir = test::make_temp_dir("gt-png");
  const std::string bin = test::clipes_binary();
  std::string out;
  ASSERT_EQ(test::run_command(bin + " -q export gt-png " + dir + " --gt " + coco_tiny_json(), &out), 0) << out;
  const CocoGroundTruth coco = CocoGroundTruth::load(coco_tiny_json());
  size_t n = 0;
  for (const auto& image : coco.images()) {
    const cv::Mat written = read_label_png(dir + "/export/gt-png/" + image.stem + ".png");
    const cv::Mat expected = coco.semantic_mask(image.id, false);
    ASSERT_EQ(written.size(), expected.size()) << image.stem;
    EXPECT_EQ(cv::countNonZero(written != expected), 0) << image.stem;
    ++n;
  }
  EXPECT_EQ(n, 80u);
  // The folder is ground truth for eval as well: coco-tiny's own masks score 100.
  const std::string pred = write_coco_tiny_masks("gt-png-pred", false);
  ASSERT_EQ(test::run_command(bin + " eval --pred " + pred + " --gt " + dir + "/export/gt-png --classes coco", &out), 0)
      << out;
  EXPECT_NE(out.find("mIoU 100.00"), std::string::npos) << out;
  // Resumable: a second run writes nothing; no --gt and no run: one line, exit 2.
  ASSERT_EQ(test::run_command(bin + " export gt-png " + dir + " --gt " + coco_tiny_json(), &out), 0) << out;
  EXPECT_NE(out.find("0 written now, 80 already there"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(bin + " export gt-png " + dir, &out), 2) << out;
  EXPECT_NE(out.find("give --gt"), std::string::npos) << out;
}

TEST(EvalCli, VocRootWithSplitAndMissingGroundTruth) {
  const std::string root = test::make_temp_dir("eval-voc") + "/VOC2012";
  cv::Mat a = (cv::Mat_<uint8_t>(2, 3) << 0, 15, 255, 0, 15, 8);
  cv::Mat b = (cv::Mat_<uint8_t>(2, 2) << 1, 1, 0, 0);
  write_indexed_png(root + "/SegmentationClass/a.png", a);
  write_indexed_png(root + "/SegmentationClassAug/b.png", b);  // only in the augmented set
  write_file_atomic(root + "/ImageSets/Segmentation/train.txt", "a\nb\n");
  write_file_atomic(root + "/ImageSets/Segmentation/val.txt", "a\nzzz\n");
  const std::string pred = root + "/../pred";
  cv::Mat wrong = a.clone();
  wrong.at<uint8_t>(0, 1) = 0;  // one person pixel missed
  write_indexed_png(pred + "/masks/a.png", wrong);
  write_indexed_png(pred + "/masks/b.png", b);
  const GtSource gt = GtSource::open(root + "/..");  // finds VOC2012/ inside
  EXPECT_EQ(gt.kind(), GtSource::Kind::Voc);
  const EvalReport report = evaluate_masks(pred, gt, gt.default_ids("train"));
  EXPECT_EQ(report.num_evaluated, 2u);
  // background: TP 4, GT 4, pred 5 → 4/5; aeroplane 1; cat 1; person: 1 of 2 → 1/2.
  EXPECT_NEAR(report.mean_iou, (0.8 + 1.0 + 1.0 + 0.5) / 4, 1e-12);
  EXPECT_EQ(report.classes_in_gt, 4);
  std::string out;
  int rc = test::run_command(test::clipes_binary() + " eval --pred " + pred + " --gt " + root, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("   15  person                 50.00"), std::string::npos) << out;
  EXPECT_NE(out.find("mIoU 82.50 over 4 classes"), std::string::npos) << out;
  // The val list names an image without ground truth: an error naming the file.
  rc = test::run_command(test::clipes_binary() + " eval --pred " + pred + " --gt " + root + " --split val", &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("zzz.png: ground-truth mask does not exist"), std::string::npos) << out;
}

TEST(EvalCli, CocoCategoryIds) {
  const std::string pred = write_coco_tiny_masks("eval-cli-ids", true);
  std::string out;
  int rc = test::run_command(test::clipes_binary() + " eval --pred " + pred + " --gt " + coco_tiny_json() +
                                 " --label-ids coco",
                             &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("mIoU 100.00"), std::string::npos) << out;
  EXPECT_NE(out.find("   90  toothbrush"), std::string::npos) << out;
  // Category-id masks read as consecutive ids are wrong.
  rc = test::run_command(test::clipes_binary() + " eval --pred " + pred + " --gt " + coco_tiny_json(), &out);
  EXPECT_EQ(out.find("mIoU 100.00"), std::string::npos) << out;
}

TEST(Evaluate, CocoGroundTruthIsNumberedByClassNameNotByTheJsonsOrder) {
  // Issue 26 item 4: a json holding only person(1) and dog(18) made dog the
  // second category, value 2 ("bicycle"), while predictions use the run's
  // coco set where dog is 17: perfect masks scored mIoU 50.
  const std::string dir = test::make_temp_dir("eval-by-name");
  nlohmann::json j;
  j["images"] = {{{"id", 1}, {"file_name", "a.jpg"}, {"height", 8}, {"width", 8}}};
  j["categories"] = {{{"id", 1}, {"name", "person"}}, {{"id", 18}, {"name", "dog"}}};
  j["annotations"] = {
      {{"id", 1}, {"image_id", 1}, {"category_id", 1}, {"iscrowd", 0}, {"segmentation", {{0, 0, 4, 0, 4, 8, 0, 8}}}},
      {{"id", 2}, {"image_id", 1}, {"category_id", 18}, {"iscrowd", 0}, {"segmentation", {{4, 0, 8, 0, 8, 8, 4, 8}}}}};
  write_file_atomic(dir + "/instances.json", j.dump());
  GtSource gt = GtSource::open(dir + "/instances.json");
  const cv::Mat own = gt.mask("a");
  ASSERT_EQ(own.at<uint8_t>(4, 6), 2);  // the json's own order, as before
  gt.map_categories(coco_label_set(false));
  const cv::Mat truth = gt.mask("a");
  EXPECT_EQ(truth.at<uint8_t>(4, 1), 1);
  EXPECT_EQ(truth.at<uint8_t>(4, 6), 17);
  write_indexed_png(dir + "/pred/a.png", truth);
  EvalOptions options;
  options.labels = coco_label_set(false);
  EXPECT_DOUBLE_EQ(evaluate_masks(dir + "/pred", gt, {"a"}, options).mean_iou, 1.0);
  // VOC's class file names the same animals (dog 12, person 15) and COCO's
  // words as aliases: mapped by name too.
  GtSource as_voc = GtSource::open(dir + "/instances.json");
  as_voc.map_categories(parse_label_set(ClassConfig::resolve("voc").to_json_text(), "voc", false));
  EXPECT_EQ(as_voc.mask("a").at<uint8_t>(4, 6), 12);
  EXPECT_EQ(as_voc.mask("a").at<uint8_t>(4, 1), 15);
  // A category the class set does not have is refused, naming it.
  j["categories"].push_back({{"id", 24}, {"name", "giraffe"}});
  write_file_atomic(dir + "/with-giraffe.json", j.dump());
  GtSource giraffe = GtSource::open(dir + "/with-giraffe.json");
  try {
    giraffe.map_categories(voc_label_set());
    FAIL() << "a category outside the class set was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(dir + "/with-giraffe.json: ", 0), 0u) << msg;
    EXPECT_NE(msg.find("'giraffe' (id 24)"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace clipes

// Issue 27 (research workflow, second pass), as a researcher meets it on the
// toy world: finding the bad images, and class sets that do not match the run.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "clipes/io/image_decode.h"
#include "clipes/io/indexed_png.h"
#include "clipes/methods/segment_classes.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

// A 6-image toy val set and a generate run on it with saved CAMs; made once.
struct ToyRun {
  std::string dir, bin, generate;
};

const ToyRun& toy_run() {
  static const ToyRun run = [] {
    ToyRun r;
    r.dir = test::make_temp_dir("research-workflow");
    r.bin = test::clipes_binary();
    const std::string models = test::source_dir() + "/models/";
    std::string log;
    if (test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + r.dir +
                              "/val --count 6 --seed 11 --split val",
                          &log) != 0)
      throw std::runtime_error(log);
    r.generate = r.bin + " -q generate --model " + models + "toy-clip.pt --vocab " + models +
                 "toy-vocab.txt.gz --classes toy --dataset " + r.dir + "/val --format voc --split val";
    if (test::run_command(r.generate + " --save-cams --out " + r.dir + "/run", &log) != 0)
      throw std::runtime_error(log);
    return r;
  }();
  return run;
}

TEST(ResearchWorkflow, VisualizeWorstShowsTheLowestScoringImagesFirst) {
  // Issue 27 item 8: "finding bad images is hard".
  const ToyRun& t = toy_run();
  std::string log;
  ASSERT_EQ(test::run_command(t.bin + " -q eval --pred " + t.dir + "/run --gt " + t.dir + "/val --split val --json " +
                                  t.dir + "/eval.json",
                              &log),
            0)
      << log;
  const auto report = nlohmann::json::parse(read_file(t.dir + "/eval.json"));
  ASSERT_EQ(report["per_image"].size(), 6u);
  std::vector<std::pair<double, std::string>> by_iou;
  for (const auto& im : report["per_image"]) by_iou.emplace_back(im["miou"].get<double>(), im["id"].get<std::string>());
  std::sort(by_iou.begin(), by_iou.end());
  // The confusion matrix covers the toy set (background + 8 classes) and sums to the scored pixels.
  ASSERT_EQ(report["confusion_matrix"]["counts"].size(), 9u);
  uint64_t total = 0;
  for (const auto& row : report["confusion_matrix"]["counts"])
    for (const auto& c : row) total += c.get<uint64_t>();
  EXPECT_LE(total, report["pixels"].get<uint64_t>());
  EXPECT_GT(total, 0u);

  const std::string out = t.dir + "/worst";
  fs::create_directories(out);
  fs::copy(t.dir + "/run", out, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  fs::remove_all(out + "/vis");
  ASSERT_EQ(test::run_command(t.bin + " visualize --out " + out + " --worst 2", &log), 0) << log;
  std::set<std::string> sheets;
  for (const auto& e : fs::directory_iterator(out + "/vis")) sheets.insert(e.path().stem().string());
  // Ties at the cut would make the pair ambiguous; the toy set at seed 11 has none.
  ASSERT_LT(by_iou[1].first, by_iou[2].first);
  EXPECT_EQ(sheets, (std::set<std::string>{by_iou[0].second, by_iou[1].second})) << log;
  EXPECT_NE(log.find("lowest of 6 images"), std::string::npos) << log;
  // No ground truth: --worst cannot rank, and says so.
  EXPECT_EQ(test::run_command(t.bin + " visualize --out " + out + " --worst 2 --no-gt", &log), 2) << log;
  EXPECT_NE(log.find("--worst ranks images"), std::string::npos) << log;
}

TEST(ResearchWorkflow, EvalWarnsWhenClassesRelabelARunsOwnSet) {
  // Issue 27 item 8: `eval --classes voc` on a toy run silently showed VOC names.
  const ToyRun& t = toy_run();
  std::string log;
  test::run_command(t.bin + " eval --pred " + t.dir + "/run --gt " + t.dir + "/val --split val --classes voc", &log);
  EXPECT_NE(log.find("records the class set 'toy'"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(t.bin + " eval --pred " + t.dir + "/run --gt " + t.dir + "/val --split val", &log), 0)
      << log;
  EXPECT_EQ(log.find("records the class set"), std::string::npos) << log;
}

TEST(ResearchWorkflow, SeveralWordsCanMeanBackgroundInAFreeClassList) {
  // Issue 27 item 10: only the literal word "background" could map to 0.
  const ClassConfig config = with_background_words(class_config_from_list("cat,dog"), "grass, sky");
  EXPECT_EQ(config.background, (std::vector<std::string>{"grass", "sky"}));
  const SegmentClasses classes = SegmentClasses::from_class_config(config);
  EXPECT_EQ(classes.background, 0);
  EXPECT_EQ(classes.names, (std::vector<std::string>{"background", "cat", "dog"}));
  EXPECT_EQ(classes.mask_values, (std::vector<int>{0, 1, 2}));
  ASSERT_EQ(classes.queries.size(), 4u);
  EXPECT_EQ(classes.query_class, (std::vector<int>{0, 0, 1, 2}));
  EXPECT_THROW(with_background_words(class_config_from_list("cat,dog"), "grass,Dog"), Error);
  EXPECT_THROW(with_background_words(class_config_from_list("cat,dog"), "sky,SKY"), Error);
  EXPECT_THROW(with_background_words(class_config_from_list("cat,dog"), " , "), Error);

  // The command: recorded in run.json, so eval and visualize name value 0.
  const std::string dir = test::make_temp_dir("background-words");
  std::string log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q segment --model " + test::tiny_clip_path() + " --vocab " +
                                  test::vocab_path() + " --image " +
                                  test::shared("fixtures/parity/coco6/images/000000010764.jpg") +
                                  " --classes cat,dog,person --background grass,sky --out " + dir + "/run",
                              &log),
            0)
      << log;
  const auto run = nlohmann::json::parse(read_file(dir + "/run/run.json"));
  EXPECT_EQ(run["config"]["class_set"]["background"], nlohmann::json::array({"grass", "sky"})) << run.dump(1);
}

TEST(ResearchWorkflow, SmallerFrictions) {
  // Issue 27's smaller list, each as the researcher met it.
  const ToyRun& t = toy_run();
  const std::string dir = test::make_temp_dir("frictions");
  const std::string models = test::source_dir() + "/models/";
  std::string log;
  // The toy class file's synonyms are label names too (moon = crescent).
  ASSERT_EQ(test::run_command(t.bin + " -q generate --model " + models + "toy-clip.pt --vocab " + models +
                                  "toy-vocab.txt.gz --classes toy --image " + t.dir +
                                  "/val/JPEGImages/$(head -n 1 " + t.dir +
                                  "/val/ImageSets/Segmentation/val.txt).png --labels moon,disc --out " + dir + "/syn",
                              &log),
            0)
      << log;
  // --list <(...) is a pipe: read once, accepted.
  ASSERT_EQ(test::run_command("bash -c '" + t.generate.substr(0, t.generate.find(" --dataset ")) + " --dataset " +
                                  t.dir + "/val --format voc --list <(head -n 2 " + t.dir +
                                  "/val/ImageSets/Segmentation/val.txt) --out " + dir + "/fifo'",
                              &log),
            0)
      << log;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/fifo/run.json"))["counts"]["complete"], 2) << log;
  // prompts rank on a val-only set: ranks on val and says so (was: train.txt missing).
  ASSERT_EQ(test::run_command(t.bin + " prompts rank --model " + models + "toy-clip.pt --vocab " + models +
                                  "toy-vocab.txt.gz --classes toy --dataset " + t.dir + "/val --limit 3 --top 2",
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("ranking on the val split"), std::string::npos) << log;
  // The official vocabulary beside the model is found without --vocab; with
  // none there, one line says where to get it.
  fs::create_directories(dir + "/weights");
  fs::copy_file(test::tiny_clip_path(), dir + "/weights/tiny.pt");
  const std::string image = test::shared("fixtures/parity/coco6/images/000000010764.jpg");
  const std::string classify = t.bin + " classify --model " + dir + "/weights/tiny.pt --image " + image +
                               " --classes dog,person";
  EXPECT_EQ(test::run_command(classify, &log), 2) << log;
  EXPECT_NE(log.find("--vocab: give the BPE vocabulary, bpe_simple_vocab_16e6.txt.gz"), std::string::npos) << log;
  fs::copy_file(test::vocab_path(), dir + "/weights/bpe_simple_vocab_16e6.txt.gz");
  ASSERT_EQ(test::run_command(classify, &log), 0) << log;
  EXPECT_NE(log.find("beside the model"), std::string::npos) << log;
}

TEST(ResearchWorkflow, VisualizeDrawsASegmentRunsSavedScores) {
  // Issue 27 item 10: visualize ignored segment's cams/<stem>_scores.npy.
  const ToyRun& t = toy_run();
  const std::string dir = test::make_temp_dir("segment-scores");
  const std::string models = test::source_dir() + "/models/";
  std::string log;
  ASSERT_EQ(test::run_command(t.bin + " -q segment --model " + models + "toy-clip.pt --vocab " + models +
                                  "toy-vocab.txt.gz --classes toy --method maskclip --dataset " + t.dir +
                                  "/val --format voc --split val --limit 2 --save-cams --out " + dir + "/run",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(t.bin + " -q visualize --out " + dir + "/run --no-gt", &log), 0) << log;
  std::vector<std::string> sheets;
  for (const auto& e : fs::directory_iterator(dir + "/run/vis")) sheets.push_back(e.path().string());
  ASSERT_EQ(sheets.size(), 2u);
  std::sort(sheets.begin(), sheets.end());
  const cv::Mat with_scores = decode_image_rgb(sheets[0]);
  // The same sheet without the scores is mask-only, so shorter.
  fs::remove_all(dir + "/run/cams");
  fs::remove_all(dir + "/run/vis");
  ASSERT_EQ(test::run_command(t.bin + " -q visualize --out " + dir + "/run --no-gt", &log), 0) << log;
  const cv::Mat mask_only = decode_image_rgb(sheets[0]);
  EXPECT_GT(with_scores.rows, mask_only.rows);
  EXPECT_GT(with_scores.total(), mask_only.total());
}

// eval --json's sweep entry for a setting, by its background kind and parameter.
double sweep_miou(const nlohmann::json& report, const std::string& background, double parameter) {
  for (const auto& s : report["sweep"])
    if (s["background"] == background && std::abs(s["parameter"].get<double>() - parameter) < 1e-9)
      return s["miou"].get<double>();
  throw std::runtime_error("no sweep setting " + background + " " + std::to_string(parameter) + " in " +
                           report.dump());
}

double masks_miou(const ToyRun& t, const std::string& run) {
  std::string log;
  if (test::run_command(t.bin + " -q eval --pred " + run + " --gt " + t.dir + "/val --split val --json -", &log) != 0)
    throw std::runtime_error(log);
  return nlohmann::json::parse(log)["miou"].get<double>();
}

TEST(ResearchWorkflow, EvalSweepsASegmentRunsSavedScoresAndSegmentAppliesTheThreshold) {
  // Issue 27 item 10: eval --cams did not read segment's _scores.npy, segment
  // had no --cam-format, and its run.json no stage timings.
  const ToyRun& t = toy_run();
  const std::string dir = test::make_temp_dir("segment-sweep");
  const std::string models = test::source_dir() + "/models/";
  const std::string segment = t.bin + " -q segment --model " + models + "toy-clip.pt --vocab " + models +
                              "toy-vocab.txt.gz --classes toy --dataset " + t.dir + "/val --format voc --split val";
  std::string log;
  for (const char* method : {"maskclip", "naclip"}) {
    SCOPED_TRACE(method);
    const std::string run = dir + "/" + method;
    ASSERT_EQ(test::run_command(segment + " --method " + method + " --save-cams --out " + run, &log), 0) << log;
    const auto record = nlohmann::json::parse(read_file(run + "/run.json"));
    EXPECT_EQ(record["config"]["scores_channels"],
              std::string(method) == "naclip" ? "query_cosines" : "class_probabilities");
    for (const char* stage : {"preprocess", "forward", "upsample_and_labels"})
      EXPECT_TRUE(record["stage_ms_mean"][stage].is_number()) << stage;
    EXPECT_GT(record["stage_ms_mean"]["forward"].get<double>(), 0.0);

    ASSERT_EQ(test::run_command(t.bin + " -q eval --cams --pred " + run + " --gt " + t.dir +
                                    "/val --split val --json -",
                                &log),
              0)
        << log;
    const auto sweep = nlohmann::json::parse(log);
    ASSERT_EQ(sweep["sweep"].size(), 20u) << log;  // the background class, then 0.05 … 0.95
    EXPECT_EQ(sweep["sweep"][0]["background"], "method");
    EXPECT_EQ(sweep["cam_kind"], "probabilities");
    // MaskCLIP's own decision is the argmax over every class: the "method"
    // setting re-makes its masks from the float16 scores.
    if (std::string(method) == "maskclip") EXPECT_NEAR(sweep_miou(sweep, "method", 0), masks_miou(t, run), 0.005);

    // A threshold of the sweep, applied by segment, gives the sweep's score.
    for (const double threshold : {0.3, 0.6}) {
      const std::string thresholded = run + "-t" + std::to_string(static_cast<int>(threshold * 10));
      ASSERT_EQ(test::run_command(segment + " --method " + method + " --bg-threshold " + std::to_string(threshold) +
                                      " --out " + thresholded,
                                  &log),
                0)
          << log;
      EXPECT_NEAR(sweep_miou(sweep, "threshold", threshold), masks_miou(t, thresholded), 0.005) << threshold;
    }
    // The table's hint names what applies the best setting: segment's option, not generate's.
    ASSERT_EQ(test::run_command(t.bin + " eval --cams --pred " + run + " --gt " + t.dir + "/val --split val", &log), 0)
        << log;
    EXPECT_TRUE(log.find("clipes segment ... --bg-threshold") != std::string::npos ||
                log.find("the run's own") != std::string::npos)
        << log;
    EXPECT_EQ(log.find("clipes generate"), std::string::npos) << log;
    // The two settings differ, or the test would not tell them apart.
    EXPECT_NE(sweep_miou(sweep, "threshold", 0.3), sweep_miou(sweep, "threshold", 0.6));
  }

  // --cam-format clip-es: the official dict, read by eval the same way.
  const std::string official = dir + "/clip-es";
  ASSERT_EQ(test::run_command(segment + " --method maskclip --cam-format clip-es --out " + official, &log), 0) << log;
  EXPECT_FALSE(fs::exists(official + "/cams/" + fs::path(t.dir).filename().string() + "_scores.npy"));
  size_t dicts = 0;
  for (const auto& e : fs::directory_iterator(official + "/cams")) {
    EXPECT_EQ(e.path().string().find("_scores"), std::string::npos) << e.path();
    dicts += e.path().extension() == ".npy";
  }
  EXPECT_EQ(dicts, 6u);
  ASSERT_EQ(test::run_command(t.bin + " -q eval --cams --pred " + official + " --gt " + t.dir +
                                  "/val --split val --json -",
                              &log),
            0)
      << log;
  const auto dict_sweep = nlohmann::json::parse(log);
  ASSERT_EQ(test::run_command(t.bin + " -q eval --cams --pred " + dir + "/maskclip --gt " + t.dir +
                                  "/val --split val --json -",
                              &log),
            0)
      << log;
  const auto npy_sweep = nlohmann::json::parse(log);
  for (const double threshold : {0.2, 0.5, 0.8})
    EXPECT_NEAR(sweep_miou(dict_sweep, "threshold", threshold), sweep_miou(npy_sweep, "threshold", threshold), 0.005)
        << threshold;
}

TEST(ResearchWorkflow, BgThresholdWithoutABackgroundClassWritesZero) {
  const ToyRun& t = toy_run();
  const std::string dir = test::make_temp_dir("segment-no-bg");
  const std::string models = test::source_dir() + "/models/";
  std::string log;
  ASSERT_EQ(test::run_command(t.bin + " -q segment --model " + models + "toy-clip.pt --vocab " + models +
                                  "toy-vocab.txt.gz --classes circle,square,star --method maskclip --dataset " +
                                  t.dir + "/val --format voc --split val --limit 2 --bg-threshold 0.9 --out " + dir,
                              &log),
            0)
      << log;
  size_t zeros = 0, masks = 0;
  for (const auto& e : fs::directory_iterator(dir + "/masks")) {
    const cv::Mat mask = read_label_png(e.path().string());
    zeros += static_cast<size_t>(cv::countNonZero(mask == 0));
    double max_value = 0;
    cv::minMaxLoc(mask, nullptr, &max_value);
    EXPECT_LE(max_value, 3.0) << e.path();
    ++masks;
  }
  EXPECT_EQ(masks, 2u);
  EXPECT_GT(zeros, 0u);
}

size_t count_files(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

TEST(ResearchWorkflow, SigtermStopsAfterTheImagesInFlightAndIsRecorded) {
  // Issue 27 item 10: a run ended by SIGTERM (Slurm pre-emption, scancel) or
  // SIGINT wrote no runs.jsonl line although the README promises one per
  // invocation. Now the images in flight finish, the line and run.json say
  // which signal, the exit code is 128 + 15, and a rerun finishes the rest.
  const ToyRun& t = toy_run();
  const std::string dir = test::make_temp_dir("sigterm");
  std::string log;
  ASSERT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + dir +
                                  "/val --count 120 --seed 3 --split val",
                              &log),
            0)
      << log;
  const std::string generate = t.generate.substr(0, t.generate.find(" --dataset ")) + " --dataset " + dir +
                               "/val --format voc --split val --out " + dir + "/out";
  // Started in the background; SIGTERM once the first mask is there.
  const std::string script = generate + " & pid=$!; for i in $(seq 600); do [ -n \"$(ls " + dir +
                             "/out/masks 2>/dev/null)\" ] && break; sleep 0.05; done; kill -TERM $pid; wait $pid; "
                             "echo \"rc=$?\"";
  test::run_command("bash -c '" + script + "'", &log);
  EXPECT_NE(log.find("rc=143"), std::string::npos) << log;
  const size_t written = count_files(dir + "/out/masks");
  EXPECT_GT(written, 0u);
  EXPECT_LT(written, 120u) << "the run ended before the signal: nothing was tested";
  const std::string history = read_file(dir + "/out/runs.jsonl");
  ASSERT_EQ(std::count(history.begin(), history.end(), '\n'), 1) << history;
  const auto line = nlohmann::json::parse(history);
  EXPECT_EQ(line["stopped_by"], "SIGTERM");
  EXPECT_EQ(line["counts"]["complete"].get<size_t>(), written);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/out/run.json"))["stopped_by"], "SIGTERM");
  // No half-written file, and the rerun does the rest.
  for (const auto& e : fs::recursive_directory_iterator(dir + "/out"))
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
  ASSERT_EQ(test::run_command(generate, &log), 0) << log;
  EXPECT_EQ(count_files(dir + "/out/masks"), 120u);
  const auto rerun = nlohmann::json::parse(read_file(dir + "/out/run.json"));
  EXPECT_EQ(rerun["counts"]["skipped_complete"].get<size_t>(), written);
  EXPECT_FALSE(rerun.contains("stopped_by"));
}

}  // namespace
}  // namespace clipes

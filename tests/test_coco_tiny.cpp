// Issue #4 acceptance, end to end through the built binary on data/coco-tiny
// (80 COCO val2017 images) with the tiny CLIP fixture: every image gets a mask,
// eval scores them, a killed run resumes to byte-identical outputs, shards
// partition the dataset, bad images become failures.jsonl lines, and an id
// that would escape OUT is refused.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "clipes/data/dataset.h"
#include "clipes/io/indexed_png.h"
#include "clipes/pipeline/batch_runner.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

std::string coco_root() { return test::shared("data/coco-tiny"); }
std::string coco_json() { return coco_root() + "/annotations/instances_val2017.json"; }

std::string generate_command(const std::string& out) {
  return test::clipes_binary() + " generate --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path() +
         " --out '" + out + "'";
}
std::string coco_generate(const std::string& out) {
  return generate_command(out) + " --format coco --dataset " + coco_root();
}

// Relative path → bytes of every regular file under `root`/`sub`.
std::map<std::string, std::string> files_under(const std::string& root, const std::string& sub) {
  std::map<std::string, std::string> files;
  const fs::path dir = fs::path(root) / sub;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = read_file(e.path().string());
  return files;
}

std::set<std::string> mask_stems(const std::string& out) {
  std::set<std::string> stems;
  if (!fs::exists(out + "/masks")) return stems;
  for (const auto& e : fs::directory_iterator(out + "/masks"))
    if (e.path().extension() == ".png") stems.insert(e.path().stem().string());
  return stems;
}

std::vector<std::string> temporaries_under(const std::string& root) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) found.push_back(e.path().string());
  return found;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The whole of coco-tiny, generated once and shared by the tests below.
class CocoTiny : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    full_out_ = new std::string(test::make_temp_dir("coco-tiny-full"));
    full_rc_ = test::run_command(coco_generate(*full_out_), full_log_ = new std::string);
  }
  static void TearDownTestSuite() {
    delete full_out_;
    delete full_log_;
  }
  void SetUp() override { ASSERT_EQ(full_rc_, 0) << *full_log_; }

  static std::string* full_out_;
  static std::string* full_log_;
  static int full_rc_;
};
std::string* CocoTiny::full_out_ = nullptr;
std::string* CocoTiny::full_log_ = nullptr;
int CocoTiny::full_rc_ = -1;

TEST_F(CocoTiny, EveryImageGetsAMaskAndAConfidenceMap) {
  const std::vector<ImageRecord> records = read_coco_dataset(coco_root());
  ASSERT_EQ(records.size(), 80u);
  // Every coco-tiny image has annotations (815 over 80 images), so none may fail.
  for (const auto& r : records) ASSERT_FALSE(r.labels.empty()) << r.id;
  EXPECT_FALSE(fs::exists(*full_out_ + "/failures.jsonl")) << read_file(*full_out_ + "/failures.jsonl");

  const auto& categories = coco_categories();
  for (const auto& r : records) {
    SCOPED_TRACE(r.id);
    const cv::Mat mask = read_label_png(*full_out_ + "/masks/" + r.id + ".png");
    const cv::Mat confidence = read_label_png(*full_out_ + "/confidence/" + r.id + ".png");
    const cv::Mat image = cv::imread(r.image_path, cv::IMREAD_UNCHANGED);
    EXPECT_EQ(mask.size(), image.size());
    EXPECT_EQ(confidence.size(), image.size());
    // Consecutive ids: only background and the image's own labels.
    std::set<int> allowed = {0};
    for (const auto& name : r.labels)
      for (size_t i = 0; i < categories.size(); ++i)
        if (categories[i].second == name) allowed.insert(static_cast<int>(i) + 1);
    for (int y = 0; y < mask.rows; ++y)
      for (int x = 0; x < mask.cols; ++x)
        ASSERT_TRUE(allowed.count(mask.at<uint8_t>(y, x))) << "id " << int(mask.at<uint8_t>(y, x));
  }
  EXPECT_EQ(mask_stems(*full_out_).size(), 80u);
  const auto run = nlohmann::json::parse(read_file(*full_out_ + "/run.json"));
  EXPECT_EQ(run["counts"]["listed"], 80);
  EXPECT_EQ(run["counts"]["processed"], 80);
  EXPECT_EQ(run["counts"]["failed"], 0);
  EXPECT_TRUE(temporaries_under(*full_out_).empty());
}

TEST_F(CocoTiny, EvalPrintsATableAndWritesJson) {
  const std::string report = test::make_temp_dir("coco-tiny-eval") + "/report.json";
  std::string output;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " eval --pred '" + *full_out_ + "' --gt " + coco_json() +
                                  " --json '" + report + "'",
                              &output),
            0)
      << output;
  std::cout << output;  // the table the closing note quotes
  EXPECT_NE(output.find("mIoU"), std::string::npos) << output;
  EXPECT_NE(output.find("person"), std::string::npos) << output;
  EXPECT_NE(output.find("background"), std::string::npos) << output;
  EXPECT_NE(output.find("evaluated: 80"), std::string::npos) << output;
  const auto j = nlohmann::json::parse(read_file(report));
  EXPECT_EQ(j["evaluated"], 80);
  EXPECT_TRUE(j["missing"].empty());
  ASSERT_TRUE(j["miou"].is_number());
  EXPECT_GT(j["miou"].get<double>(), 0.0);
  EXPECT_LE(j["miou"].get<double>(), 1.0);
  bool has_person = false;
  for (const auto& c : j["classes"]) has_person |= c["name"] == "person" && c["gt_pixels"].get<uint64_t>() > 0;
  EXPECT_TRUE(has_person);
}

TEST_F(CocoTiny, KilledRunResumesToByteIdenticalOutputs) {
  const std::string dir = test::make_temp_dir("coco-tiny-resume");
  const std::string a = dir + "/a", b = dir + "/b";
  const std::string subset = " --limit 6 --save-cams";
  std::string log;
  ASSERT_EQ(test::run_command(coco_generate(a) + subset, &log), 0) << log;
  ASSERT_EQ(mask_stems(a).size(), 6u);

  // B: the same run, SIGKILLed once a few images are written.
  const std::string command = "exec " + coco_generate(b) + subset + " > '" + dir + "/b.log' 2>&1";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  int status = 0;
  bool exited = false;
  while (mask_stems(b).size() < 2 && std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ASSERT_FALSE(exited) << "the run ended before it could be killed: " << read_file(dir + "/b.log");
  ASSERT_TRUE(WIFSIGNALED(status));
  const size_t done_before_kill = mask_stems(b).size();
  ASSERT_GE(done_before_kill, 2u);
  ASSERT_LT(done_before_kill, 6u) << "killed too late to test resume";

  ASSERT_EQ(test::run_command(coco_generate(b) + subset, &log), 0) << log;
  const auto run = nlohmann::json::parse(read_file(b + "/run.json"));
  // The mask is written last, so every mask present at the kill is complete.
  EXPECT_EQ(run["counts"]["skipped_complete"], static_cast<int64_t>(done_before_kill));
  EXPECT_EQ(run["counts"]["processed"], static_cast<int64_t>(6 - done_before_kill));
  EXPECT_EQ(run["counts"]["failed"], 0);

  for (const char* sub : {"masks", "confidence", "cams"}) {
    SCOPED_TRACE(sub);
    const auto expected = files_under(a, sub), got = files_under(b, sub);
    EXPECT_EQ(expected.size(), got.size());
    for (const auto& [rel, bytes] : expected) {
      const auto it = got.find(rel);
      ASSERT_NE(it, got.end()) << rel << " missing after resume";
      EXPECT_TRUE(it->second == bytes) << rel << " differs from the uninterrupted run";
    }
  }
  EXPECT_EQ(files_under(a, "cams").size(), 18u);  // _cam, _refined, _keys per image
  // Also identical to the full 80-image run (same images, same bytes).
  for (const auto& [rel, bytes] : files_under(b, "masks")) EXPECT_TRUE(read_file(*full_out_ + "/" + rel) == bytes) << rel;
  EXPECT_TRUE(temporaries_under(b).empty()) << temporaries_under(b).front();
}

TEST_F(CocoTiny, ThreeShardsPartitionTheDataset) {
  // --limit applies after sharding (BatchOptions): each shard takes the first
  // 4 of its own images, which keeps this test at 12 images.
  const std::vector<ImageRecord> records = read_coco_dataset(coco_root());
  const std::string out = test::make_temp_dir("coco-tiny-shards");
  std::set<std::string> seen, expected;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("shard " + std::to_string(i));
    std::set<std::string> mine;
    for (const auto& r : records)
      if (mine.size() < 4 && ShardSpec{i, 3}.contains(r.id)) mine.insert(r.id);
    ASSERT_EQ(mine.size(), 4u) << "a hash split of 80 ids leaves every shard at least 4";
    std::string log;
    ASSERT_EQ(test::run_command(coco_generate(out) + " --limit 4 --shard " + std::to_string(i) + "/3", &log), 0)
        << log;
    const auto run = nlohmann::json::parse(read_file(out + "/run.shard-" + std::to_string(i) + "-of-3.json"));
    // Nothing this shard selected was already written by an earlier shard: disjoint.
    EXPECT_EQ(run["counts"]["skipped_complete"], 0);
    EXPECT_EQ(run["counts"]["failed"], 0);
    EXPECT_EQ(run["counts"]["selected"], 4);
    EXPECT_EQ(run["counts"]["processed"], 4);
    const std::set<std::string> now = mask_stems(out);
    std::set<std::string> added;
    for (const auto& id : now)
      if (!seen.count(id)) added.insert(id);
    EXPECT_EQ(added, mine);
    for (const auto& id : mine) EXPECT_TRUE(expected.insert(id).second) << id << " in two shards";
    seen = now;
  }
  EXPECT_FALSE(fs::exists(out + "/run.json"));
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(seen.size(), 12u);
  // Same masks as the unsharded run, byte for byte.
  for (const auto& [rel, bytes] : files_under(out, "masks")) EXPECT_TRUE(read_file(*full_out_ + "/" + rel) == bytes) << rel;

  // Without --limit the three shards split all 80 ids exactly once.
  size_t total = 0;
  for (const auto& r : records) {
    int owners = 0;
    for (int i = 0; i < 3; ++i) owners += ShardSpec{i, 3}.contains(r.id) ? 1 : 0;
    EXPECT_EQ(owners, 1) << r.id;
    total += static_cast<size_t>(owners);
  }
  EXPECT_EQ(total, 80u);
}

TEST(CocoTinyFailures, CorruptAndMissingImagesAreRecordedAndTheRestCompletes) {
  const std::string dir = test::make_temp_dir("coco-tiny-failures");
  const std::string images = dir + "/images", out = dir + "/out";
  fs::create_directories(images);
  std::map<std::string, std::vector<std::string>> labels;
  for (const auto& r : read_coco_dataset(coco_root())) labels[r.id] = r.labels;
  const std::vector<std::string> good = {"000000005001", "000000020992"};
  const std::string truncated = "000000010764", missing = "000000999999";
  std::string csv = "image,labels\n";
  for (const auto& stem : {good[0], truncated, missing, good[1]}) {
    if (stem != missing) {
      std::string bytes = read_file(coco_root() + "/val2017/" + stem + ".jpg");
      if (stem == truncated) bytes.resize(bytes.size() / 2);
      write_file_atomic(images + "/" + stem + ".jpg", bytes);
    }
    std::string names;
    for (const auto& n : stem == missing ? std::vector<std::string>{"person"} : labels.at(stem))
      names += (names.empty() ? "" : ";") + n;
    csv += stem + ".jpg," + names + "\n";
  }
  write_file_atomic(dir + "/labels.csv", csv);

  std::string log;
  ASSERT_EQ(test::run_command(generate_command(out) + " --format folder --dataset '" + images +
                                  "' --labels-file '" + dir + "/labels.csv' --classes coco --vis",
                              &log),
            0)
      << log;
  const auto failures = read_jsonl(out + "/failures.jsonl");
  ASSERT_EQ(failures.size(), 2u) << read_file(out + "/failures.jsonl");
  std::map<std::string, std::string> reason_by_id;
  for (const auto& f : failures) {
    EXPECT_EQ(f["stage"], "decode") << f.dump();
    reason_by_id[f["id"].get<std::string>()] = f["reason"].get<std::string>();
  }
  ASSERT_TRUE(reason_by_id.count(truncated) && reason_by_id.count(missing)) << read_file(out + "/failures.jsonl");
  EXPECT_NE(reason_by_id[truncated].find("truncated"), std::string::npos) << reason_by_id[truncated];
  EXPECT_NE(reason_by_id[missing].find("not found"), std::string::npos) << reason_by_id[missing];

  EXPECT_EQ(mask_stems(out), std::set<std::string>(good.begin(), good.end()));
  for (const auto& stem : good) {
    // --vis: one decodable contact sheet per written mask.
    const cv::Mat sheet = cv::imread(out + "/vis/" + stem + ".jpg", cv::IMREAD_COLOR);
    ASSERT_FALSE(sheet.empty()) << stem;
    EXPECT_GT(sheet.rows, read_label_png(out + "/masks/" + stem + ".png").rows / 2);
  }
  EXPECT_FALSE(fs::exists(out + "/vis/" + truncated + ".jpg"));
  const auto run = nlohmann::json::parse(read_file(out + "/run.json"));
  EXPECT_EQ(run["counts"]["processed"], 4);
  EXPECT_EQ(run["counts"]["failed"], 2);

  // Without --save-cams, visualize redraws mask-only sheets (no heat-map
  // rows, so shorter than generate --vis's) instead of failing.
  std::map<std::string, int> vis_rows;
  for (const auto& stem : good) vis_rows[stem] = cv::imread(out + "/vis/" + stem + ".jpg").rows;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " visualize --out '" + out + "' --images '" + images +
                                  "' --classes coco",
                              &log),
            0)
      << log;
  for (const auto& stem : good) {
    const cv::Mat mask_only = cv::imread(out + "/vis/" + stem + ".jpg");
    ASSERT_FALSE(mask_only.empty()) << stem;
    EXPECT_LT(mask_only.rows, vis_rows[stem]) << stem;
  }
}

TEST(CocoTinyFailures, TraversalIdIsRejectedAndNothingIsWritten) {
  const std::string dir = test::make_temp_dir("coco-tiny-traversal");
  const std::string root = dir + "/voc", out = dir + "/voc/out";
  fs::create_directories(root + "/JPEGImages");
  write_file_atomic(root + "/JPEGImages/000000005001.jpg", read_file(coco_root() + "/val2017/000000005001.jpg"));
  write_file_atomic(dir + "/list.txt", "000000005001\n../evil\n");
  std::string log;
  EXPECT_EQ(test::run_command(generate_command(out) + " --format voc --dataset '" + root + "' --list '" + dir +
                                  "/list.txt'",
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("clipes: error:"), std::string::npos) << log;
  EXPECT_NE(log.find("../evil"), std::string::npos) << log;
  EXPECT_NE(log.find("list.txt"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out));  // refused before anything is written
  for (const auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find("evil"), std::string::npos) << e.path();
}

}  // namespace
}  // namespace clipes

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>

#include "clipes/pipeline/batch_runner.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;
namespace fs = std::filesystem;

namespace {
std::vector<BatchJob> make_jobs(int n) {
  std::vector<BatchJob> jobs;
  for (int i = 0; i < n; ++i) jobs.push_back({"img" + std::to_string(i), "img" + std::to_string(i) + ".jpg"});
  return jobs;
}

// Outputs are one file per id; "bad-decode" and "bad-compute" ids fail.
BatchCallbacks file_callbacks(const std::string& out, std::atomic<int>* computed) {
  BatchCallbacks cb;
  cb.is_complete = [out](const BatchJob& j) { return fs::exists(out + "/" + j.id + ".txt"); };
  cb.decode = [](const BatchJob& j) {
    if (j.id == "img3") throw Error(j.image_path + ": cannot decode image");
    return cv::Mat(2, 2, CV_8UC3, cv::Scalar(1, 2, 3));
  };
  cb.compute = [out, computed](size_t, const BatchJob& j, const cv::Mat&) -> std::function<void()> {
    if (j.id == "img5") throw Error(j.id + ": image has no labels");
    ++*computed;
    return [out, j] { write_file_atomic(out + "/" + j.id + ".txt", j.id); };
  };
  return cb;
}

int count_lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}
}  // namespace

TEST(BatchRunner, FailuresAreRecordedAndTheRunGoesOn) {
  const std::string out = test::make_temp_dir("batch");
  std::atomic<int> computed{0};
  BatchOptions opt;
  opt.out_dir = out;
  const BatchSummary s = run_batch(make_jobs(10), opt, file_callbacks(out, &computed));
  EXPECT_EQ(s.processed, 10);
  EXPECT_EQ(s.failed, 2);
  EXPECT_EQ(computed.load(), 8);
  EXPECT_EQ(count_lines(out + "/failures.jsonl"), 2);
  EXPECT_TRUE(fs::exists(out + "/img9.txt"));
  EXPECT_FALSE(fs::exists(out + "/img5.txt"));
}

TEST(BatchRunner, ResumeSkipsCompleteOutputs) {
  const std::string out = test::make_temp_dir("batch-resume");
  std::atomic<int> computed{0};
  BatchOptions opt;
  opt.out_dir = out;
  opt.limit = 4;
  run_batch(make_jobs(10), opt, file_callbacks(out, &computed));
  EXPECT_EQ(computed.load(), 3);  // img0..img3, img3 fails to decode
  computed = 0;
  opt.limit = -1;
  const BatchSummary s = run_batch(make_jobs(10), opt, file_callbacks(out, &computed));
  EXPECT_EQ(s.skipped, 3);
  EXPECT_EQ(computed.load(), 5);  // img4, img6..img9 (img3 and img5 fail again)
}

TEST(BatchRunner, ShardsCoverEveryImageExactlyOnce) {
  const auto jobs = make_jobs(257);
  std::multiset<std::string> seen;
  for (int i = 0; i < 5; ++i)
    for (size_t j : select_shard(jobs, ShardSpec::parse(std::to_string(i) + "/5"))) seen.insert(jobs[j].id);
  EXPECT_EQ(seen.size(), jobs.size());
  for (const auto& j : jobs) EXPECT_EQ(seen.count(j.id), 1u);
  // Stable: the same shard twice gives the same selection.
  EXPECT_EQ(select_shard(jobs, ShardSpec::parse("2/5")), select_shard(jobs, ShardSpec::parse("2/5")));
}

TEST(BatchRunner, ShardSpecRejectsNonsense) {
  for (const char* bad : {"", "3", "5/5", "-1/2", "a/b", "1/0", "1/2x"}) EXPECT_THROW(ShardSpec::parse(bad), Error) << bad;
  EXPECT_EQ(ShardSpec::parse("1/3").index, 1);
}

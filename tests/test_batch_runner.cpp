#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
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

TEST(BatchRunner, AnExceptionOfAnyTypeBelongsToItsImage) {
  // Before: only clipes::Error was recorded; std::bad_alloc, c10::Error or
  // cv::Exception from compute ended the whole batch, and anything thrown on
  // the decode or write thread called std::terminate (exit 134).
  const std::string out = test::make_temp_dir("batch-any-exception");
  BatchCallbacks cb;
  cb.is_complete = [out](const BatchJob& j) { return fs::exists(out + "/" + j.id + ".txt"); };
  cb.decode = [](const BatchJob& j) -> cv::Mat {
    if (j.id == "img6") throw 42;  // not even a std::exception
    return cv::Mat(2, 2, CV_8UC3, cv::Scalar(1, 2, 3));
  };
  cb.compute = [out](size_t, const BatchJob& j, const cv::Mat&) -> std::function<void()> {
    if (j.id == "img1") throw std::bad_alloc();
    if (j.id == "img2") throw cv::Exception(cv::Error::StsNoMem, "Failed to allocate 9 GB", "resize", "f.cpp", 1);
    if (j.id == "img4") throw std::runtime_error("c10-like error\nwith a backtrace on later lines");
    if (j.id == "img5") throw 7;
    return [out, j] {
      if (j.id == "img7") throw std::runtime_error("No space left on device");
      write_file_atomic(out + "/" + j.id + ".txt", j.id);
    };
  };
  BatchOptions opt;
  opt.out_dir = out;
  const BatchSummary s = run_batch(make_jobs(10), opt, cb);
  EXPECT_EQ(s.processed, 10);
  EXPECT_EQ(s.failed, 6);
  EXPECT_EQ(s.write_failed, 1);
  EXPECT_EQ(s.complete(), 4);
  for (const char* id : {"img0", "img3", "img8", "img9"}) EXPECT_TRUE(fs::exists(out + "/" + id + ".txt")) << id;
  std::map<std::string, BatchFailure> by_id;
  for (const auto& f : s.failures) by_id[f.id] = f;
  // Every reason names its image first, whatever threw (issue 26 friction).
  EXPECT_EQ(by_id["img1"].reason, "img1.jpg: out of memory");
  EXPECT_EQ(by_id["img1"].stage, "compute");
  EXPECT_NE(by_id["img2"].reason.find("Failed to allocate 9 GB"), std::string::npos);
  EXPECT_EQ(by_id["img4"].reason, "img4.jpg: c10-like error");  // first line only: records are one line
  EXPECT_EQ(by_id["img5"].reason, "img5.jpg: unknown exception");
  EXPECT_EQ(by_id["img6"].stage, "decode");
  EXPECT_EQ(by_id["img7"].stage, "write");
  EXPECT_TRUE(s.failure_log_written);
  EXPECT_EQ(count_lines(out + "/failures.jsonl"), 6);
}

TEST(BatchRunner, AFailureLogOfAnEarlierRunIsReplaced) {
  const std::string out = test::make_temp_dir("batch-stale-log");
  write_file_atomic(out + "/failures.jsonl", "{\"id\": \"old\"}\n");
  std::atomic<int> computed{0};
  BatchCallbacks cb = file_callbacks(out, &computed);
  cb.decode = [](const BatchJob&) { return cv::Mat(2, 2, CV_8UC3); };
  cb.compute = [out](size_t, const BatchJob& j, const cv::Mat&) -> std::function<void()> {
    return [out, j] { write_file_atomic(out + "/" + j.id + ".txt", j.id); };
  };
  BatchOptions opt;
  opt.out_dir = out;
  run_batch(make_jobs(3), opt, cb);
  EXPECT_FALSE(fs::exists(out + "/failures.jsonl"));  // nothing failed: no stale records remain
}

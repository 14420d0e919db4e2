#include "clipes/pipeline/batch_runner.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "clipes/pipeline/bounded_queue.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// FNV-1a: tiny, stable across platforms and standard libraries (std::hash is not).
uint64_t stable_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Appends one JSON line per failure and flushes at once, so a killed run
// keeps the failures it already saw.
class FailureLog {
 public:
  explicit FailureLog(const std::string& path) : path_(path) {}
  void record(const BatchJob& job, const std::string& stage, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!out_.is_open()) {
      out_.open(path_, std::ios::trunc);
      if (!out_) throw file_error(path_, "cannot write failure log");
    }
    nlohmann::json line = {{"id", job.id}, {"image", job.image_path}, {"stage", stage}, {"reason", reason}};
    out_ << line.dump() << "\n";
    out_.flush();
  }

 private:
  std::string path_;
  std::mutex mutex_;
  std::ofstream out_;
};

struct Decoded {
  size_t job_index;
  cv::Mat image;
  std::string error;  // non-empty: decoding failed
  double decode_s = 0;
};

struct PendingWrite {
  size_t job_index;
  std::function<void()> write;
};

}  // namespace

ShardSpec ShardSpec::parse(const std::string& text) {
  const auto slash = text.find('/');
  ShardSpec s;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    s.index = std::stoi(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("junk");
    const std::string count = text.substr(slash + 1);
    s.count = std::stoi(count, &used);
    if (used != count.size()) throw std::invalid_argument("junk");
  } catch (const std::exception&) {
    throw Error("--shard " + text + ": expected i/N, e.g. 0/4");
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    throw Error("--shard " + text + ": need 0 <= i < N");
  return s;
}

bool ShardSpec::contains(const std::string& id) const {
  return count <= 1 || static_cast<int>(stable_hash(id) % static_cast<uint64_t>(count)) == index;
}

std::vector<size_t> select_shard(const std::vector<BatchJob>& jobs, const ShardSpec& shard) {
  std::vector<size_t> selected;
  for (size_t i = 0; i < jobs.size(); ++i)
    if (shard.contains(jobs[i].id)) selected.push_back(i);
  return selected;
}

BatchSummary run_batch(const std::vector<BatchJob>& jobs, const BatchOptions& options,
                       const BatchCallbacks& callbacks) {
  namespace fs = std::filesystem;
  const auto start = Clock::now();
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) throw file_error(options.out_dir, "cannot create output folder: " + ec.message());

  BatchSummary summary;
  std::vector<size_t> selected = select_shard(jobs, options.shard);
  if (options.limit >= 0 && static_cast<int64_t>(selected.size()) > options.limit)
    selected.resize(static_cast<size_t>(options.limit));
  summary.selected = static_cast<int64_t>(selected.size());

  std::vector<size_t> todo;
  for (size_t i : selected) {
    if (options.resume && callbacks.is_complete && callbacks.is_complete(jobs[i]))
      ++summary.skipped;
    else
      todo.push_back(i);
  }

  // Shards of one job may share OUT: each keeps its own failure log.
  const std::string log_name =
      options.shard.count > 1 ? "failures.shard-" + std::to_string(options.shard.index) + "-of-" +
                                    std::to_string(options.shard.count) + ".jsonl"
                              : "failures.jsonl";
  FailureLog failures((fs::path(options.out_dir) / log_name).string());

  BatchProgress progress;
  progress.total = static_cast<int64_t>(todo.size());
  progress.skipped = summary.skipped;
  std::mutex progress_mutex;
  auto report = [&](bool failed) {
    std::lock_guard<std::mutex> lock(progress_mutex);
    ++progress.done;
    if (failed) ++progress.failed;
    progress.elapsed_s = seconds_since(start);
    if (callbacks.progress) callbacks.progress(progress);
  };

  BoundedQueue<Decoded> decoded(options.queue_depth);
  BoundedQueue<PendingWrite> writes(options.queue_depth);
  double decode_s = 0, write_s = 0;

  std::thread decoder([&] {
    for (size_t i : todo) {
      Decoded d{i, {}, {}, 0};
      const auto t = Clock::now();
      try {
        d.image = callbacks.decode(jobs[i]);
      } catch (const std::exception& e) {
        d.error = e.what();
      }
      d.decode_s = seconds_since(t);
      decode_s += d.decode_s;
      if (!decoded.push(std::move(d))) break;
    }
    decoded.close();
  });

  std::thread writer([&] {
    while (auto w = writes.pop()) {
      const auto t = Clock::now();
      bool failed = false;
      try {
        w->write();
      } catch (const std::exception& e) {
        failures.record(jobs[w->job_index], "write", e.what());
        failed = true;
      }
      write_s += seconds_since(t);
      report(failed);
    }
  });

  std::exception_ptr fatal;
  while (auto d = decoded.pop()) {
    const BatchJob& job = jobs[d->job_index];
    if (!d->error.empty()) {
      failures.record(job, "decode", d->error);
      report(true);
      continue;
    }
    const auto t = Clock::now();
    try {
      auto write = callbacks.compute(d->job_index, job, d->image);
      summary.compute_s += seconds_since(t);
      writes.push(PendingWrite{d->job_index, std::move(write)});
    } catch (const Error& e) {
      summary.compute_s += seconds_since(t);
      failures.record(job, "compute", e.what());
      report(true);
    } catch (...) {
      // Anything but clipes::Error (out of memory, a LibTorch bug) is fatal:
      // stop cleanly, keep what was written, and let the caller report it.
      fatal = std::current_exception();
      decoded.close();
      break;
    }
  }
  // Drain the decoder if we stopped early, then finish pending writes.
  while (decoded.pop()) {
  }
  decoder.join();
  writes.close();
  writer.join();
  if (fatal) std::rethrow_exception(fatal);

  summary.processed = progress.done;
  summary.failed = progress.failed;
  summary.decode_s = decode_s;
  summary.write_s = write_s;
  summary.wall_s = seconds_since(start);
  return summary;
}

}  // namespace clipes

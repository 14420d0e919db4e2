#include "clipes/pipeline/batch_runner.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "clipes/pipeline/bounded_queue.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/stop_request.h"
#include "clipes/util/json_text.h"
#include "clipes/util/strings.h"
#include "clipes/util/option_error.h"

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

// The first line of an exception's message: LibTorch's c10::Error carries a
// multi-line backtrace, and a failure record is one line.
std::string first_line(const char* what) {
  std::string s = what ? what : "";
  const auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s.empty() ? "unknown error" : s;
}

// The reason of the exception in flight, whatever its type.
std::string current_exception_reason() {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return "out of memory";
  } catch (const std::exception& e) {
    return first_line(e.what());
  } catch (...) {
    return "unknown exception";
  }
}

// Appends one JSON line per failure and flushes at once, so a killed run
// keeps the failures it already saw. Never throws: a record that cannot be
// written (disk full) stays in memory, the whole log is rewritten once more
// at the end, and the caller learns whether that worked.
class FailureLog {
 public:
  explicit FailureLog(std::string path) : path_(std::move(path)) {}

  void record(BatchFailure failure) {
    std::lock_guard<std::mutex> lock(mutex_);
    records_.push_back(std::move(failure));
    if (!append_ok_) return;
    try {
      if (!out_.is_open()) out_.open(path_, std::ios::trunc);
      out_ << to_line(records_.back());
      out_.flush();
      append_ok_ = static_cast<bool>(out_);
    } catch (...) {
      append_ok_ = false;
    }
  }

  // Returns whether the file holds every record. Removes a stale log of an
  // earlier run when this one had no failures.
  bool finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (out_.is_open()) out_.close();
    std::error_code ec;
    if (records_.empty()) {
      std::filesystem::remove(path_, ec);
      return true;
    }
    if (append_ok_) return true;
    try {  // once more, whole, now that the workers are done
      std::string text;
      for (const auto& r : records_) text += to_line(r);
      write_file_atomic(path_, text);
      return true;
    } catch (...) {
      return false;
    }
  }

  std::vector<BatchFailure> records() {
    std::lock_guard<std::mutex> lock(mutex_);
    return records_;
  }

 private:
  static std::string to_line(const BatchFailure& f) {
    nlohmann::json line = nlohmann::json::object();
    put_bytes(line, "id", f.id);
    put_bytes(line, "image", f.image_path);
    line["stage"] = f.stage;
    line["reason"] = printable(f.reason);
    return line.dump() + "\n";
  }

  std::string path_;
  std::mutex mutex_;
  std::ofstream out_;
  std::vector<BatchFailure> records_;
  bool append_ok_ = true;
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
    throw option_error(option_key("shard") + " " + printable(text) + ": expected i/N, e.g. 0/4");
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    throw option_error(option_key("shard") + " " + printable(text) + ": need 0 <= i < N");
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

std::vector<size_t> select_jobs(const std::vector<BatchJob>& jobs, const BatchOptions& options) {
  std::vector<size_t> selected = select_shard(jobs, options.shard);
  if (options.limit >= 0 && static_cast<int64_t>(selected.size()) > options.limit)
    selected.resize(static_cast<size_t>(options.limit));
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
  const std::vector<size_t> selected = select_jobs(jobs, options);
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
  const std::string log_path = (fs::path(options.out_dir) / log_name).string();
  FailureLog failures(log_path);
  auto fail = [&](size_t job_index, const char* stage, std::string reason) {
    // Every failure line names its image, whatever threw: a class file's
    // "unknown class "unicorn"" alone does not say which image had it.
    const std::string& image = jobs[job_index].image_path;
    if (reason.find(image) == std::string::npos) reason = image + ": " + reason;
    failures.record({jobs[job_index].id, image, stage, std::move(reason)});
  };

  BatchProgress progress;
  progress.total = static_cast<int64_t>(todo.size());
  progress.skipped = summary.skipped;
  std::mutex progress_mutex;
  int64_t write_failed = 0;
  auto report = [&](bool failed) {
    std::lock_guard<std::mutex> lock(progress_mutex);
    ++progress.done;
    if (failed) ++progress.failed;
    progress.elapsed_s = seconds_since(start);
    try {
      if (callbacks.progress) callbacks.progress(progress);
    } catch (...) {  // a progress display must never end the batch
    }
  };

  BoundedQueue<Decoded> decoded(options.queue_depth);
  BoundedQueue<PendingWrite> writes(options.queue_depth);
  double decode_s = 0, write_s = 0;

  std::thread decoder([&] {
    for (size_t i : todo) {
      if (stop_requested()) break;  // SIGTERM/SIGINT: no new image (util/stop_request.h)
      Decoded d{i, {}, {}, 0};
      const auto t = Clock::now();
      try {
        d.image = callbacks.decode(jobs[i]);
      } catch (...) {
        d.error = current_exception_reason();
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
      } catch (...) {
        fail(w->job_index, "write", current_exception_reason());
        failed = true;
        std::lock_guard<std::mutex> lock(progress_mutex);
        ++write_failed;
      }
      w->write = nullptr;  // release the image's tensors now, not at the next pop
      write_s += seconds_since(t);
      report(failed);
    }
  });

  while (auto d = decoded.pop()) {
    if (stop_requested()) continue;  // drain: decoded images are not started, they stay to do
    const BatchJob& job = jobs[d->job_index];
    if (!d->error.empty()) {
      fail(d->job_index, "decode", d->error);
      report(true);
      continue;
    }
    const auto t = Clock::now();
    // Any exception of any type — clipes::Error for bad input, c10::Error,
    // std::bad_alloc for an image too big for this machine, cv::Exception —
    // belongs to this image: record it and go on. Memory held for the image
    // is released by the unwinding, so the next image starts clean.
    try {
      auto write = callbacks.compute(d->job_index, job, d->image);
      d->image.release();
      summary.compute_s += seconds_since(t);
      writes.push(PendingWrite{d->job_index, std::move(write)});
    } catch (...) {
      summary.compute_s += seconds_since(t);
      fail(d->job_index, "compute", current_exception_reason());
      report(true);
    }
  }
  decoder.join();
  writes.close();
  writer.join();

  summary.failure_log_written = failures.finish();
  summary.failures = failures.records();
  summary.failure_log = log_path;
  summary.processed = progress.done;
  summary.failed = progress.failed;
  summary.write_failed = write_failed;
  summary.decode_s = decode_s;
  summary.write_s = write_s;
  summary.wall_s = seconds_since(start);
  summary.stopped_by_signal = stop_requested();
  return summary;
}

}  // namespace clipes

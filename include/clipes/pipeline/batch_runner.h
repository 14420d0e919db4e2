// BatchRunner — runs one function over many images, the way `generate` needs:
//   * a decode thread and a write thread overlap with compute (bounded queues,
//     so memory stays bounded whatever the dataset size);
//   * one failing image (unreadable, corrupt, no labels, out of memory, any
//     exception of any type) is recorded in OUT/failures.jsonl with its stage
//     and reason and the run goes on; records are also kept in memory, so
//     none is lost when the log itself cannot be written (disk full);
//   * resume: images whose outputs are complete are skipped;
//   * --shard i/N: a deterministic split by a hash of the image id, so it does
//     not depend on list order and is stable under resume;
//   * progress is reported through a callback (the library never prints);
//   * a stop request (SIGTERM/SIGINT, util/stop_request.h) ends it after the
//     images in flight, with the summary and failure log as usual.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace clipes {

struct BatchJob {
  std::string id;          // image id, used for output names (already validated)
  std::string image_path;  // file to decode
};

struct ShardSpec {
  int index = 0;  // 0-based
  int count = 1;
  // Parses "i/N" (0 <= i < N); throws clipes::Error on anything else.
  static ShardSpec parse(const std::string& text);
  bool contains(const std::string& id) const;
};

struct BatchOptions {
  std::string out_dir;
  ShardSpec shard;
  int64_t limit = -1;       // at most this many images (after sharding), -1 = all
  bool resume = true;       // skip images whose outputs are complete
  size_t queue_depth = 2;   // decoded images / pending writes in flight
};

struct BatchProgress {
  int64_t done = 0;      // processed in this run (ok + failed)
  int64_t total = 0;     // to process in this run (after shard, limit, resume)
  int64_t failed = 0;
  int64_t skipped = 0;   // already complete (resume)
  double elapsed_s = 0;
};

struct BatchFailure {
  std::string id, image_path;
  std::string stage;   // decode | compute | write
  std::string reason;  // one line
};

struct BatchSummary {
  int64_t selected = 0;  // in this shard (after limit)
  int64_t processed = 0;
  int64_t failed = 0;
  int64_t write_failed = 0;  // of `failed`: the image was fine, writing its outputs was not
  int64_t skipped = 0;
  double wall_s = 0;
  double decode_s = 0, compute_s = 0, write_s = 0;  // summed per stage
  std::vector<BatchFailure> failures;  // every failure of this run, in order
  std::string failure_log;             // its path
  bool failure_log_written = true;     // false: some records could not be written there
  // The signal that stopped the run early (util/stop_request.h): images not
  // started stay to do, a resume finishes them. 0: ran to the end.
  int stopped_by_signal = 0;
  // Images of the shard whose outputs are complete at the end (written now or before).
  int64_t complete() const { return skipped + processed - failed; }
};

struct BatchCallbacks {
  // True when all outputs of this job exist (resume).
  std::function<bool(const BatchJob&)> is_complete;
  // Decodes the image (may throw clipes::Error). Runs on the decode thread.
  std::function<cv::Mat(const BatchJob&)> decode;
  // Heavy work on the calling thread; returns the closure that writes the
  // outputs, which runs on the write thread. May throw clipes::Error.
  std::function<std::function<void()>(size_t job_index, const BatchJob&, const cv::Mat& image)> compute;
  // Called after each image (optional).
  std::function<void(const BatchProgress&)> progress;
};

// Runs the jobs. Writes OUT/failures.jsonl (one JSON object per failed image:
// id, image, stage, reason; names that are not UTF-8 as util/json_text.h says).
// A log left by an earlier run is replaced: every image without outputs is
// retried, so this run's failures are exactly the incomplete images. Throws
// only for fatal problems (cannot create OUT); never lets an exception of a
// worker thread escape.
BatchSummary run_batch(const std::vector<BatchJob>& jobs, const BatchOptions& options,
                       const BatchCallbacks& callbacks);

// The jobs of `jobs` that fall into `shard` (stable order).
std::vector<size_t> select_shard(const std::vector<BatchJob>& jobs, const ShardSpec& shard);
// The jobs a run with `options` processes, resumed or not: its shard's, at
// most `options.limit` of them (stable order).
std::vector<size_t> select_jobs(const std::vector<BatchJob>& jobs, const BatchOptions& options);

}  // namespace clipes

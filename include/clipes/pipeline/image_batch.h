// run_image_batch — the per-dataset machinery `generate`, `segment` (and
// `tag`) share: dataset records → batch jobs, the sweep of temporaries a
// killed run left, resume by "outputs complete", decoding under the pixel
// limit, and the failure log (pipeline/batch_runner.h). A command supplies
// only what differs: its output files and its per-image compute step.
#pragma once
#include <opencv2/core.hpp>

#include <functional>
#include <string>
#include <vector>

#include "clipes/data/dataset.h"
#include "clipes/io/image_decode.h"
#include "clipes/pipeline/batch_runner.h"

namespace clipes {

struct ImageBatchSpec {
  // Every file this command may write for an image id (swept of stale
  // "<file>.tmp-<pid>" leftovers before the run; only this shard's images).
  std::function<std::vector<std::string>(const std::string& id)> output_files;
  // True when the image's outputs are complete (resume skips it).
  std::function<bool(const std::string& id)> is_complete;
  // The heavy step on the calling thread; returns the writer closure, which
  // runs on the write thread. Throws for a failure of this image.
  std::function<std::function<void()>(const ImageRecord& record, const cv::Mat& rgb)> compute;
};

BatchSummary run_image_batch(const std::vector<ImageRecord>& records, const BatchOptions& batch,
                             const DecodeLimits& decode, const ImageBatchSpec& spec,
                             const std::function<void(const BatchProgress&)>& progress = {});

}  // namespace clipes

#include "clipes/pipeline/ground_truth_png.h"

#include <filesystem>
#include <memory>

#include "clipes/eval/ground_truth.h"
#include "clipes/io/indexed_png.h"
#include "clipes/util/file_checks.h"

namespace clipes {

BatchSummary write_ground_truth_pngs(const GtSource& gt, const std::vector<std::string>& ids,
                                     const BatchOptions& batch,
                                     const std::function<void(const BatchProgress&)>& progress) {
  namespace fs = std::filesystem;
  std::vector<BatchJob> jobs;
  for (const auto& id : ids) jobs.push_back({id, gt.describe(id)});
  auto png = [&](const std::string& id) { return (fs::path(batch.out_dir) / (id + ".png")).string(); };
  BatchCallbacks callbacks;
  callbacks.is_complete = [&](const BatchJob& job) { return is_file(png(job.id)); };
  callbacks.decode = [](const BatchJob&) { return cv::Mat(); };  // nothing to decode: the json is in memory
  callbacks.compute = [&](size_t, const BatchJob& job, const cv::Mat&) -> std::function<void()> {
    auto mask = std::make_shared<cv::Mat>(gt.mask(job.id));
    return [path = png(job.id), mask]() { write_indexed_png(path, *mask, voc_palette()); };
  };
  callbacks.progress = progress;
  return run_batch(jobs, batch, callbacks);
}

}  // namespace clipes

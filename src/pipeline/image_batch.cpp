#include "clipes/pipeline/image_batch.h"

#include "clipes/util/atomic_file.h"

namespace clipes {

BatchSummary run_image_batch(const std::vector<ImageRecord>& records, const BatchOptions& batch,
                             const DecodeLimits& decode, const ImageBatchSpec& spec,
                             const std::function<void(const BatchProgress&)>& progress) {
  std::vector<BatchJob> jobs;
  jobs.reserve(records.size());
  for (const auto& r : records) jobs.push_back({r.id, r.image_path});

  // A run killed mid-write leaves "<output>.tmp-<pid>" files; this shard owns
  // its images' outputs, so it may sweep theirs (never another shard's).
  std::vector<std::string> targets;
  for (size_t i : select_shard(jobs, batch.shard))
    for (auto& f : spec.output_files(jobs[i].id)) targets.push_back(std::move(f));
  remove_stale_temporaries(targets);

  BatchCallbacks callbacks;
  callbacks.is_complete = [&](const BatchJob& job) { return spec.is_complete(job.id); };
  callbacks.decode = [&](const BatchJob& job) { return decode_image_rgb(job.image_path, decode); };
  callbacks.compute = [&](size_t index, const BatchJob&, const cv::Mat& rgb) {
    return spec.compute(records[index], rgb);
  };
  callbacks.progress = progress;
  return run_batch(jobs, batch, callbacks);
}

}  // namespace clipes

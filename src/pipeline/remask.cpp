#include "clipes/pipeline/remask.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "clipes/io/saved_cams.h"
#include "clipes/util/error.h"

namespace clipes {

namespace fs = std::filesystem;

std::vector<std::string> stems_with_saved_cams(const std::string& cams_dir) {
  std::set<std::string> candidates;
  std::error_code ec;
  if (!fs::is_directory(cams_dir, ec)) return {};  // a run without --save-cams: the caller says so
  for (const auto& e : fs::directory_iterator(cams_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    std::string stem = name.substr(0, name.size() - 4);
    for (const char* suffix : {"_refined", "_cam", "_keys", "_scores"}) {
      const std::string s(suffix);
      if (stem.size() > s.size() && stem.compare(stem.size() - s.size(), s.size(), s) == 0) {
        stem.resize(stem.size() - s.size());
        break;
      }
    }
    candidates.insert(stem);
  }
  if (ec) throw file_error(cams_dir, "cannot list the CAM folder: " + ec.message());
  std::vector<std::string> stems;
  for (const auto& s : candidates)
    if (saved_cams_exist(cams_dir, s)) stems.push_back(s);
  return stems;
}

BatchSummary remask_from_saved_cams(const std::vector<std::string>& stems, const RemaskOptions& options,
                                    const std::function<void(const BatchProgress&)>& progress) {
  std::vector<BatchJob> jobs;
  for (const auto& s : stems) jobs.push_back({s, saved_cams_file(options.cams_dir, s)});
  BatchCallbacks callbacks;
  callbacks.is_complete = [&](const BatchJob& job) {
    return mask_outputs_complete(MaskOutputPaths::for_stem(options.batch.out_dir, job.id), options.write);
  };
  // Nothing to decode: the CAMs are read in compute, which is short.
  callbacks.decode = [](const BatchJob&) { return cv::Mat(); };
  callbacks.compute = [&](size_t, const BatchJob& job, const cv::Mat&) -> std::function<void()> {
    const SavedCams saved = read_saved_cams(options.cams_dir, job.id);
    if (options.unrefined && !saved.cams.defined())
      throw file_error(saved.refined_file, "holds no unrefined CAMs (the official layout saves only the refined "
                                           "ones): use the refined CAMs");
    const at::Tensor cams = (options.unrefined ? saved.cams : saved.refined).to(torch::kFloat32).contiguous();
    const at::Tensor keys = saved.keys.to(torch::kInt64).contiguous();
    std::vector<int> values;
    std::vector<int64_t> class_indices;
    for (int64_t k = 0; k < keys.size(0); ++k) {
      const int64_t c = keys.data_ptr<int64_t>()[k];
      if (c < 0 || c >= static_cast<int64_t>(options.value_of_class.size()))
        throw file_error(saved.keys_file, "class index " + std::to_string(c) + " is not in the run's class set");
      values.push_back(options.value_of_class[static_cast<size_t>(c)]);
      class_indices.push_back(c);
    }
    auto mask = std::make_shared<PseudoMask>(make_pseudo_mask(cams, values, options.mask));
    const MaskOutputPaths paths = MaskOutputPaths::for_stem(options.batch.out_dir, job.id);
    return [paths, mask, class_indices, &options]() {
      write_mask_outputs(paths, *mask, nullptr, nullptr, class_indices, options.write);
    };
  };
  callbacks.progress = progress;
  return run_batch(jobs, options.batch, callbacks);
}

}  // namespace clipes

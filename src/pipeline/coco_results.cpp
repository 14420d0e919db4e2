#include "clipes/pipeline/coco_results.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <filesystem>

#include "clipes/data/coco_mask.h"
#include "clipes/io/indexed_png.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {

std::optional<int64_t> coco_image_id_from_stem(const std::string& stem) {
  const size_t underscore = stem.rfind('_');
  const std::string digits = underscore == std::string::npos ? stem : stem.substr(underscore + 1);
  if (underscore != std::string::npos && stem.rfind("COCO_", 0) != 0) return std::nullopt;
  if (digits.empty() || digits.size() > 15 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return std::stoll(digits);
}

CocoResultsSummary write_coco_results(
    const std::string& run_dir, const std::map<int, int>& category_of_value, const std::string& path,
    const std::function<std::optional<int64_t>(const std::string&)>& image_id_of) {
  namespace fs = std::filesystem;
  const fs::path masks = fs::path(run_dir) / "masks";
  std::error_code ec;
  if (!fs::is_directory(masks, ec)) throw file_error(run_dir, "no masks/ folder here (not a generate or segment output)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(masks, ec))
    if (e.path().extension() == ".png") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  CocoResultsSummary summary;
  nlohmann::json results = nlohmann::json::array();
  for (const auto& f : files) {
    const std::string stem = f.stem().string();
    const std::optional<int64_t> image_id = image_id_of(stem);
    if (!image_id) {
      ++summary.skipped_stems;
      continue;
    }
    const cv::Mat labels = read_label_png(f.string());
    const cv::Mat confidence =
        cv::imread((fs::path(run_dir) / "confidence" / (stem + ".png")).string(), cv::IMREAD_GRAYSCALE);
    ++summary.images;
    for (const auto& [value, category] : category_of_value) {
      const cv::Mat region = labels == value;
      if (cv::countNonZero(region) == 0) continue;
      double score = 1.0;
      if (!confidence.empty() && confidence.size() == labels.size()) score = cv::mean(confidence, region)[0] / 255.0;
      results.push_back({{"image_id", *image_id},
                         {"category_id", category},
                         {"segmentation",
                          {{"size", {labels.rows, labels.cols}}, {"counts", encode_rle_string(encode_rle(region))}}},
                         {"score", score}});
      ++summary.entries;
    }
  }
  if (summary.images == 0)
    throw file_error(masks.string(), "no mask named by a COCO image id (000000000042 or COCO_val2014_000000000042), "
                                     "nothing to write");
  write_file_atomic(path, results.dump() + "\n");
  return summary;
}

}  // namespace clipes

#include "clipes/pipeline/segment.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "clipes/cam/mask_from_cams.h"
#include "clipes/io/clip_es_cams.h"
#include "clipes/io/contact_sheet.h"
#include "clipes/io/mask_writer.h"
#include "clipes/io/npy.h"
#include "clipes/pipeline/image_batch.h"
#include "clipes/methods/image_segmenter.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"

namespace clipes {
namespace {

// The sheet's rows: up to four classes, largest area first, background last.
// Index num_classes (background by --bg-threshold in a set without one) is never shown.
std::vector<int> classes_to_show(const cv::Mat& labels, int num_classes, int background) {
  std::vector<int64_t> area(static_cast<size_t>(num_classes) + 1, 0);
  for (int y = 0; y < labels.rows; ++y) {
    const int* row = labels.ptr<int>(y);
    for (int x = 0; x < labels.cols; ++x) ++area[static_cast<size_t>(row[x])];
  }
  std::vector<int> order;
  for (int c = 0; c < num_classes; ++c)
    if (area[static_cast<size_t>(c)] > 0 && c != background) order.push_back(c);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return area[static_cast<size_t>(a)] > area[static_cast<size_t>(b)]; });
  if (order.size() > 4) order.resize(4);
  if (order.empty() && background >= 0) order.push_back(background);
  return order;
}

}  // namespace

SegmentPaths SegmentPaths::for_stem(const std::string& out_dir, const std::string& stem) {
  const MaskOutputPaths m = MaskOutputPaths::for_stem(out_dir, stem);
  const std::filesystem::path out(out_dir);
  return {m.mask, m.confidence, (out / "cams" / (stem + "_scores.npy")).string(), m.keys, m.clip_es,
          (out / "vis" / (stem + ".jpg")).string()};
}

namespace {

// The CLIP-ES dict's maps: the foreground classes that win the foreground
// argmax at some pixel (every setting of a constant or (1 − max)^α
// background labels a pixel with that class or background, so no other map
// can change a label; 80 COCO maps of a 640×480 image would be 49 MB).
// keys: the class's index in the class file (segment index − 1 when the set
// has a background class at 0).
std::pair<at::Tensor, at::Tensor> clip_es_maps(const at::Tensor& probabilities, int background) {
  std::vector<int64_t> foreground;
  for (int64_t c = 0; c < probabilities.size(0); ++c)
    if (c != background) foreground.push_back(c);
  const at::Tensor fg = probabilities.index_select(0, torch::tensor(foreground, torch::kLong));
  const at::Tensor winners = std::get<1>(fg.max(0)).flatten().bincount({}, static_cast<int64_t>(foreground.size()));
  std::vector<int64_t> rows, keys;
  for (int64_t r = 0; r < static_cast<int64_t>(foreground.size()); ++r)
    if (winners[r].item<int64_t>() > 0) {
      rows.push_back(r);
      keys.push_back(foreground[static_cast<size_t>(r)] - (background >= 0 ? 1 : 0));
    }
  return {torch::tensor(keys, torch::kLong), fg.index_select(0, torch::tensor(rows, torch::kLong))};
}

}  // namespace

SegmentStats segment_images(const ImageSegmenter& segmenter, const SegmentClasses& classes,
                            const std::vector<ImageRecord>& records, const SegmentRunOptions& options,
                            const std::function<void(const BatchProgress&)>& progress) {
  const std::vector<int64_t> channel_classes = segmenter.channel_classes();
  const bool clip_es = options.save_scores && options.cam_format == CamFormat::ClipEs;
  SegmentStats stats;
  std::mutex stats_mutex;
  ImageBatchSpec spec;
  spec.output_files = [&](const std::string& id) {
    const SegmentPaths p = SegmentPaths::for_stem(options.batch.out_dir, id);
    return std::vector<std::string>{p.mask, p.confidence, p.scores, p.keys, p.clip_es, p.vis};
  };
  spec.is_complete = [&](const std::string& id) {
    const SegmentPaths p = SegmentPaths::for_stem(options.batch.out_dir, id);
    if (!is_file(p.mask) || !is_file(p.confidence)) return false;
    if (clip_es) return is_file(p.clip_es);
    return !options.save_scores || (is_file(p.scores) && is_file(p.keys));
  };
  spec.compute = [&](const ImageRecord& record, const cv::Mat& rgb) -> std::function<void()> {
    auto result = std::make_shared<SegmentResult>(segmenter.run(rgb, /*keep_probabilities=*/clip_es));
    {
      std::lock_guard<std::mutex> lock(stats_mutex);
      stats.stage_ms_sum += result->timings;
      ++stats.images_computed;
    }
    // Non-finite scores (e.g. a zero projection) would become a mask of
    // whatever class wins a NaN comparison: a failure instead.
    if (!at::isfinite(result->scores).all().item<bool>())
      throw Error(record.image_path + ": the class scores hold NaN or infinite values (the model's features are "
                                      "not finite for this image)");
    auto mask = std::make_shared<PseudoMask>();
    // Class index → mask value through a 256-entry table.
    // Index num_classes: background by --bg-threshold in a set without one, 0.
    cv::Mat lut(1, 256, CV_8UC1, cv::Scalar(255));
    for (int c = 0; c < classes.num_classes(); ++c)
      lut.at<uchar>(0, c) = static_cast<uchar>(classes.mask_values[static_cast<size_t>(c)]);
    if (classes.num_classes() < 256) lut.at<uchar>(0, classes.num_classes()) = 0;
    cv::Mat index_u8;
    result->class_index.convertTo(index_u8, CV_8UC1);
    cv::LUT(index_u8, lut, mask->labels);
    mask->confidence = result->confidence;
    at::Tensor sheet_probs, sheet_regions;
    std::vector<std::string> sheet_names;
    if (options.vis) {
      const std::vector<int> shown = classes_to_show(result->class_index, classes.num_classes(), classes.background);
      const at::Tensor probs = segmenter.class_probabilities(result->scores);
      const at::Tensor labels = torch::from_blob(result->class_index.data, {rgb.rows, rgb.cols}, torch::kInt).clone();
      std::vector<at::Tensor> p, r;
      for (int c : shown) {
        sheet_names.push_back(classes.names[static_cast<size_t>(c)]);
        p.push_back(probs[c]);
        r.push_back(labels.eq(c).to(torch::kFloat));
      }
      sheet_probs = torch::stack(p);
      sheet_regions = torch::stack(r);
    }
    const SegmentPaths paths = SegmentPaths::for_stem(options.batch.out_dir, record.id);
    at::Tensor scores = options.save_scores && !clip_es ? result->scores : at::Tensor();
    at::Tensor clip_es_keys, clip_es_maps_;
    if (clip_es) std::tie(clip_es_keys, clip_es_maps_) = clip_es_maps(result->probabilities, classes.background);
    result.reset();
    return [&options, &classes, &channel_classes, clip_es, paths, mask, scores, clip_es_keys, clip_es_maps_,
            sheet_probs, sheet_regions, sheet_names, rgb = options.vis ? rgb : cv::Mat()]() {
      std::vector<std::string> written;
      try {
        if (clip_es) {
          write_clip_es_cams(paths.clip_es, clip_es_keys, clip_es_maps_, at::Tensor());
          written.push_back(paths.clip_es);
        } else if (options.save_scores) {
          write_npy(paths.scores, scores.to(torch::kHalf).contiguous());
          written.push_back(paths.scores);
          write_npy(paths.keys, torch::tensor(channel_classes, torch::kLong));
          written.push_back(paths.keys);
        }
        write_mask_outputs({paths.mask, paths.confidence, "", "", "", ""}, *mask, nullptr, nullptr, {}, {});
      } catch (...) {
        std::error_code ignored;
        for (const auto& p : written) std::filesystem::remove(p, ignored);
        throw;
      }
      // After the mask, as `generate --vis` does: a sheet is never the only output.
      if (options.vis) {
        ContactSheetInput sheet;
        sheet.rgb = rgb;
        sheet.mask_ids = mask->labels;
        sheet.label_names = sheet_names;
        sheet.cams = sheet_probs;
        sheet.cam_title = "probability";
        sheet.refined = sheet_regions;
        sheet.refined_title = "region";
        sheet.class_name_by_id = classes.names_by_mask_value();
        sheet.palette = voc_palette();
        write_contact_sheet(paths.vis, sheet);
      }
    };
  };
  stats.batch = run_image_batch(records, options.batch, options.decode, spec, progress);
  return stats;
}

}  // namespace clipes

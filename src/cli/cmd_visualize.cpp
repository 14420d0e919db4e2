// clipes visualize — contact sheets of what `generate` or `segment` wrote: for
// each image, the original, the mask, the ground truth with the image's IoU
// (when the dataset has it), every label's CAM before and after refinement
// (when CAMs were saved, in either layout), a colour bar and a legend, as
// OUT/vis/<stem>.jpg (io/contact_sheet.h).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "clipes/data/dataset.h"
#include "clipes/eval/evaluate.h"
#include "clipes/eval/ground_truth.h"
#include "clipes/io/contact_sheet.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/saved_cams.h"
#include "clipes/methods/segment_classes.h"
#include "clipes/text/class_config.h"
#include "clipes/data/safe_path.h"
#include "clipes/pipeline/run_record.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/strings.h"
#include "command.h"

namespace clipes::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string out, images, classes, label_ids, ids;  // empty: from the run's run.json
  std::string gt;      // empty: the dataset run.json names, when it has label maps
  bool no_gt = false;
  int limit = 0;
  int worst = 0;  // > 0: only the N images with the lowest mIoU against the ground truth
  int64_t max_pixels = kDefaultMaxPixels;
};

std::vector<std::string> split_ids(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string id;
  while (std::getline(in, id, ','))
    if (!id.empty()) out.push_back(id);
  return out;
}

std::string find_image(const std::string& dir, const std::string& stem) {
  const std::string found = find_image_file(dir, stem);
  if (found.empty()) throw file_error((fs::path(dir) / stem).string() + ".*", "no image with this stem (any of " +
                                          std::to_string(image_extensions().size()) + " image extensions)");
  return found;
}

// A segment run's saved scores (issue 27 item 10: visualize ignored them):
// for the classes the mask shows (by area, at most 4, background only when
// alone), each class's score map scaled to its own min..max, and its region.
// The scores are the method's raw channels (cosines, logits), whose range
// differs by method, hence the per-map scaling, said in the title.
void add_segment_scores(ContactSheetInput& sheet, const SegmentClasses& segment, const SavedScores& saved) {
  std::vector<std::pair<int64_t, size_t>> area;  // pixels, row of saved.scores
  for (size_t row = 0; row < saved.classes.size(); ++row) {
    const int64_t c = saved.classes[row];
    if (c >= segment.num_classes())
      throw file_error(saved.keys_file, "class index " + std::to_string(c) + " outside the run's " +
                                            std::to_string(segment.num_classes()) + " classes");
    const int64_t n = cv::countNonZero(sheet.mask_ids == segment.mask_values[static_cast<size_t>(c)]);
    if (n > 0) area.emplace_back(n, row);
  }
  std::stable_sort(area.begin(), area.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<size_t> rows;
  for (const auto& [n, row] : area)
    if (saved.classes[row] != segment.background) rows.push_back(row);
  if (rows.size() > 4) rows.resize(4);
  if (rows.empty() && !area.empty()) rows.push_back(area.front().second);
  if (rows.empty()) return;
  std::vector<at::Tensor> heat, region;
  for (size_t row : rows) {
    const at::Tensor s = saved.scores[static_cast<int64_t>(row)];
    const at::Tensor lo = s.min(), span = (s.max() - lo).clamp_min(1e-12);
    heat.push_back((s - lo) / span);
    const int value = segment.mask_values[static_cast<size_t>(saved.classes[row])];
    const cv::Mat in_class = sheet.mask_ids == value;  // 0/255
    region.push_back(torch::from_blob(in_class.data, {in_class.rows, in_class.cols}, torch::kUInt8)
                         .to(torch::kFloat32)
                         .div(255.0));
    sheet.label_names.push_back(segment.names[static_cast<size_t>(saved.classes[row])]);
  }
  sheet.cams = torch::stack(heat);
  sheet.cam_title = "score (min-max)";
  sheet.refined = torch::stack(region);
  sheet.refined_title = "region";
}

std::string write_sheet(const Options& o, const ClassConfig& classes, const std::vector<std::string>& names_by_id,
                        const GtSource* gt, const std::string& id, const SegmentClasses* segment) {
  // Every id, from --ids or from the masks folder, names files under OUT:
  // the same check as dataset ids (no "..", separators, control characters).
  const std::string stem = safe_stem(id, "--ids");
  const fs::path out(o.out);
  const std::string cams_dir = (out / "cams").string();
  ContactSheetInput sheet;
  sheet.rgb = decode_image_rgb(find_image(o.images, stem), DecodeLimits{o.max_pixels});
  sheet.mask_ids = read_label_png((out / "masks" / (stem + ".png")).string());
  sheet.class_name_by_id = names_by_id;
  sheet.palette = voc_palette();
  // CAMs in either layout (ours or the official dict); none: a mask-only sheet.
  if (saved_cams_exist(cams_dir, stem)) {
    const SavedCams saved = read_saved_cams(cams_dir, stem);
    for (int64_t i = 0; i < saved.keys.size(0); ++i) {
      const int64_t key = saved.keys[i].item<int64_t>();
      if (key < 0 || key >= classes.num_classes())
        throw file_error(saved.keys_file, "class index " + std::to_string(key) + " outside the " +
                                              std::to_string(classes.num_classes()) + " classes of '" + classes.name +
                                              "' (wrong --classes?)");
      sheet.label_names.push_back(classes.classes[static_cast<size_t>(key)].name);
    }
    sheet.cams = saved.cams;
    sheet.refined = saved.refined;
  } else if (segment && saved_scores_exist(cams_dir, stem)) {
    add_segment_scores(sheet, *segment, read_saved_scores(cams_dir, stem));
  }
  if (gt && !o.no_gt) {
    try {
      sheet.ground_truth = gt->mask(stem);
    } catch (const Error&) {
      // An image without ground truth (a test image, an unlabelled one) gets no GT row.
    }
    if (!sheet.ground_truth.empty()) {
      if (sheet.ground_truth.size() != sheet.mask_ids.size())
        throw file_error(gt->describe(stem), "ground truth is " + std::to_string(sheet.ground_truth.cols) + "x" +
                                                 std::to_string(sheet.ground_truth.rows) + ", the mask " +
                                                 std::to_string(sheet.mask_ids.cols) + "x" +
                                                 std::to_string(sheet.mask_ids.rows));
      sheet.ground_truth_title = image_iou_title(sheet.mask_ids, sheet.ground_truth);
    }
  }
  const std::string path = (out / "vis" / (stem + ".jpg")).string();
  write_contact_sheet(path, sheet);
  return path;
}

// The ground truth to show: --gt, else the dataset run.json names when it has
// label maps (VOC SegmentationClass/, COCO instances json). None is fine.
std::unique_ptr<GtSource> open_ground_truth(const Options& o, const std::optional<RunRecord>& record,
                                            const ClassConfig& classes) {
  if (o.no_gt) return nullptr;
  std::string path = o.gt, split, format;
  if (path.empty() && record) {
    if (const auto dataset = record->labelled_dataset()) {
      path = dataset->path;
      format = dataset->format;
      // generate ignores --split for COCO unless given, and records its default
      // anyway; with one instances json beside the images no split is needed.
      if (format == "voc") split = dataset->split;
    }
  }
  if (path.empty()) return nullptr;
  const bool dataset_ids = ClassConfig::parse_label_ids(o.label_ids) == ClassConfig::LabelIds::Dataset;
  try {
    auto gt = std::make_unique<GtSource>(GtSource::open(path, dataset_ids, split));
    // A VOC root without SegmentationClass[Aug]/ opens as a plain folder of
    // PNGs, which it is not: that dataset simply has no label maps.
    if (format == "voc" && gt->kind() != GtSource::Kind::Voc) return nullptr;
    // COCO label maps numbered like the masks shown beside them, by class name.
    gt->map_categories(parse_label_set(classes.to_json_text(), classes.name, dataset_ids));
    return gt;
  } catch (const Error& e) {
    if (!o.gt.empty()) throw;  // asked for explicitly: an error
    spdlog::warn("no ground-truth panel: {}", printable(e.what()));
    return nullptr;
  }
}

// --worst N (issue 27 item 8): the N stems whose masks score lowest against
// the ground truth, lowest first, by the per-image mIoU eval reports (and the
// GT panel's title shows). Stems without ground truth are left out.
std::vector<std::string> worst_stems(const Options& o, const ClassConfig& classes, const GtSource* gt,
                                     const std::vector<std::string>& stems) {
  if (!gt)
    throw Error("--worst ranks images by their IoU against the ground truth, and there is none: give --gt "
                "(a VOC root, COCO json or mask folder)");
  std::vector<std::string> with_gt;
  for (const auto& stem : stems) {
    try {
      gt->require(stem);
      with_gt.push_back(stem);
    } catch (const Error&) {
    }
  }
  if (with_gt.empty()) throw Error(printable(gt->path()) + ": none of the masks has ground truth here");
  EvalOptions options;
  options.labels = parse_label_set(classes.to_json_text(), classes.name,
                                   ClassConfig::parse_label_ids(o.label_ids) == ClassConfig::LabelIds::Dataset);
  const EvalReport report = evaluate_masks(o.out, *gt, with_gt, options);
  std::vector<std::string> out;
  std::string listed;
  for (const auto& im : worst_images(report, static_cast<size_t>(o.worst))) {
    out.push_back(im.id);
    char iou[32];
    std::snprintf(iou, sizeof iou, "%.1f", 100 * im.mean_iou);
    listed += (listed.empty() ? "" : ", ") + printable(im.id) + " " + iou;
  }
  spdlog::info("the {} lowest of {} images by mIoU: {}", out.size(), with_gt.size(), listed);
  return out;
}

int run_visualize(const Options& given) {
  // What generate recorded in run.json fills every option not given: the
  // class set itself (not just its name), the label ids, the image folder.
  Options o = given;
  const std::optional<RunRecord> record = RunRecord::read(o.out);
  if (o.label_ids.empty()) o.label_ids = record ? record->label_ids : "consecutive";
  if (o.images.empty() && record) o.images = record->images_folder;
  if (o.images.empty()) throw Error("--images: give the folder of the input images (" + printable(o.out) + " has no run.json naming it)");
  const ClassConfig classes = !o.classes.empty()                  ? ClassConfig::resolve(o.classes)
                              : record && record->has_class_set ? record->class_set()
                                                                : ClassConfig::resolve("voc");
  // The legend must name mask values the way generate wrote them.
  const std::vector<std::string> names_by_id =
      classes.names_by_mask_value(ClassConfig::parse_label_ids(o.label_ids));
  const std::unique_ptr<GtSource> gt = open_ground_truth(o, record, classes);
  // A segment run's saved scores are indexed by its segment classes (background first when there is one).
  std::unique_ptr<SegmentClasses> segment;
  if (record && record->command == "segment")
    segment = std::make_unique<SegmentClasses>(
        SegmentClasses::from_class_config(classes, ClassConfig::parse_label_ids(o.label_ids)));

  std::vector<std::string> stems = split_ids(o.ids);
  if (stems.empty()) {
    const fs::path masks = fs::path(o.out) / "masks";
    if (!is_dir(masks)) throw file_error(masks.string(), "no such folder (run clipes generate first)");
    for (const auto& entry : fs::directory_iterator(masks))
      if (entry.path().extension() == ".png") stems.push_back(entry.path().stem().string());
    std::sort(stems.begin(), stems.end());
    if (stems.empty()) throw file_error(masks.string(), "no masks to visualise");
  }
  if (o.worst > 0) stems = worst_stems(o, classes, gt.get(), stems);
  if (o.limit > 0 && stems.size() > static_cast<size_t>(o.limit)) stems.resize(static_cast<size_t>(o.limit));

  size_t failed = 0;
  for (const auto& stem : stems) {
    try {
      std::cout << printable(write_sheet(o, classes, names_by_id, gt.get(), stem, segment.get())) << "\n";
    } catch (const std::exception& e) {  // one bad image does not stop the others
      spdlog::error("{}", printable(e.what()));
      ++failed;
    }
  }
  spdlog::info("{} contact sheet(s) in {}{}", stems.size() - failed, printable((fs::path(o.out) / "vis").string()),
               failed ? ", " + std::to_string(failed) + " failed" : "");
  if (failed == stems.size()) return 2;
  return failed ? 1 : 0;
}

const bool registered = register_command({
    "visualize", "contact sheets (image, CAMs, refined CAMs, mask) of a generate run", [](CLI::App& sub) {
      auto o = std::make_shared<Options>();
      sub.add_option("--out", o->out, "the folder `clipes generate` wrote (masks/, cams/)")->required();
      sub.add_option("--images", o->images, "folder with the input images (default: the one run.json names)");
      sub.add_option("--classes", o->classes, "class file generate used (default: the class set run.json records, else voc)");
      sub.add_option("--label-ids", o->label_ids, "mask values as generate wrote them: consecutive | dataset (default: run.json's)");
      sub.add_option("--ids", o->ids, "only these stems, comma-separated");
      sub.add_option("--gt", o->gt,
                     "ground truth for the GT panel and per-image IoU: VOC root, COCO json or mask folder "
                     "(default: the dataset run.json names, when it has label maps)");
      sub.add_flag("--no-gt", o->no_gt, "no ground-truth panel");
      sub.add_option("--worst", o->worst,
                     "only the N images with the lowest mIoU against the ground truth (lowest first)")
          ->check(count_at_least(1));
      sub.add_option("--limit", o->limit, "at most N images, N ≥ 1 (default: all)")->check(count_at_least(1));
      add_max_pixels_option(sub, o->max_pixels);
      return [o]() { return run_visualize(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

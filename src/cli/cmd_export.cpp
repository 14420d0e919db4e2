// clipes export mmseg|deeplab|coco|gt-png OUT — the split list and config
// snippet to train a segmentation network on a run's pseudo masks
// (pipeline/training_export.h), a COCO results file, or the ground truth as
// class PNGs (pipeline/ground_truth_png.h). Classes and the image folder come from the
// run's run.json unless --images / --dataset say otherwise.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <memory>
#include <iostream>
#include <nlohmann/json.hpp>

#include "clipes/eval/ground_truth.h"
#include "clipes/pipeline/coco_results.h"
#include "clipes/pipeline/ground_truth_png.h"
#include "clipes/pipeline/run_record.h"
#include "clipes/pipeline/training_export.h"
#include "clipes/data/coco_mask.h"
#include "clipes/data/dataset.h"
#include "clipes/text/class_config.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"
#include "command.h"
#include "progress_bar.h"

namespace clipes::cli {
namespace {

struct ExportCli {
  std::string framework, out, images, dataset, gt, split, label_ids;
};

// export gt-png (issue 27 item 9): the ground truth as class PNGs under
// OUT/export/gt-png/, numbered like the run's masks, for the official
// eval_cam.py --gt_root. OUT need not be a run when --gt is given.
int run_gt_png_export(const ExportCli& o, const std::optional<RunRecord>& record) {
  std::string gt_path = o.gt, split = o.split;
  if (gt_path.empty() && record) {
    if (const auto dataset = record->labelled_dataset()) {
      gt_path = dataset->path;
      if (split.empty() && dataset->format == "voc") split = dataset->split;
    }
  }
  if (gt_path.empty())
    throw Error("export gt-png: give --gt (a COCO instances json or root, or a VOC root); " + printable(o.out) +
                " records no dataset with label maps");
  const std::string label_ids = !o.label_ids.empty() ? o.label_ids : record ? record->label_ids : "consecutive";
  const bool dataset_ids = ClassConfig::parse_label_ids(label_ids) == ClassConfig::LabelIds::Dataset;
  GtSource gt = GtSource::open(gt_path, dataset_ids, split);
  if (record && record->has_class_set)  // numbered like the masks beside them, by class name
    gt.map_categories(parse_label_set(record->class_set_text, record->path, dataset_ids));
  const std::vector<std::string> ids = gt.default_ids(split.empty() ? "train" : split);
  BatchOptions batch;
  batch.out_dir = (std::filesystem::path(o.out) / "export" / "gt-png").string();
  ProgressBar bar("gt-png");
  const BatchSummary s = write_ground_truth_pngs(gt, ids, batch, [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();
  std::cout << batch.out_dir << "\n";
  spdlog::info("{} ground-truth PNGs in {} ({} written now, {} already there){}", s.complete(), printable(batch.out_dir),
               s.processed - s.failed, s.skipped,
               s.failed ? ", " + std::to_string(s.failed) + " failed (" + s.failure_log + ")" : "");
  return s.failed ? 1 : 0;
}

int run_export(const ExportCli& o) {
  const std::optional<RunRecord> record = RunRecord::read(o.out);
  if (o.framework == "gt-png") return run_gt_png_export(o, record);
  if (!record || !record->has_class_set)
    throw file_error(o.out, "no run.json with a class set here (export needs the output folder of generate or segment)");
  const ClassConfig classes = record->class_set();
  const auto ids = ClassConfig::parse_label_ids(record->label_ids);
  if (o.framework == "coco") {
    // Mask value → the class's COCO category id, whichever ids the masks hold.
    std::map<int, int> category_of_value;
    for (int i = 0; i < classes.num_classes(); ++i)
      category_of_value[classes.label_id(i, ids)] = classes.label_id(i, ClassConfig::LabelIds::Dataset);
    const std::string path = (std::filesystem::path(o.out) / "export" / "coco" / "results.json").string();
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    // The run's instances json maps its file names to ids exactly; without
    // one, the file-name rule (2017 digits, 2014 COCO_<split>_<digits>).
    std::function<std::optional<int64_t>(const std::string&)> image_id_of = coco_image_id_from_stem;
    std::shared_ptr<CocoGroundTruth> coco;
    const auto dataset = record->labelled_dataset();
    if (dataset && dataset->format == "coco") {
      try {
        coco = std::make_shared<CocoGroundTruth>(
            CocoGroundTruth::load(find_coco_annotations(dataset->path, dataset->split)));
        image_id_of = [coco](const std::string& stem) -> std::optional<int64_t> {
          const CocoImageInfo* image = coco->find_image_by_stem(stem);
          return image ? std::optional<int64_t>(image->id) : coco_image_id_from_stem(stem);
        };
      } catch (const Error& e) {
        spdlog::warn("image ids from file names ({})", printable(e.what()));
      }
    }
    const CocoResultsSummary s = write_coco_results(o.out, category_of_value, path, image_id_of);
    if (s.skipped_stems > 0) spdlog::warn("{} mask(s) not named by a COCO image id; left out", s.skipped_stems);
    std::cout << path << "\n";
    spdlog::info("{} entries for {} images", s.entries, s.images);
    return 0;
  }
  const TrainingFramework framework = parse_training_framework(o.framework);
  TrainingExportInputs in;
  in.run_dir = o.out;
  if (!o.images.empty()) {
    in.images_dir = o.images;
  } else if (!o.dataset.empty()) {
    std::error_code ec;
    const std::filesystem::path voc = std::filesystem::path(o.dataset) / "JPEGImages";
    in.images_dir = std::filesystem::is_directory(voc, ec) ? voc.string() : o.dataset;
  } else if (!record->images_folder.empty()) {
    in.images_dir = record->images_folder;
  } else {
    throw file_error(record->path, "records no image folder; pass --images DIR");
  }
  in.class_names = classes.names_by_mask_value(ids);
  in.has_background = !classes.background.empty();
  // With dataset ids (COCO category ids) the masks hold values up to the largest id.
  in.num_classes = static_cast<int>(in.class_names.size()) - (in.has_background ? 0 : 1);
  const TrainingExport e = export_for_training(framework, in);
  if (e.masks_without_image > 0)
    spdlog::warn("{} mask(s) have no image in {}; left out of the list", e.masks_without_image, printable(in.images_dir));
  std::cout << e.list_file << "\n" << e.config_file << "\n";
  spdlog::info("{} images listed for {}", e.images, o.framework);
  return 0;
}

const bool registered = register_command({
    "export", "training lists + config (mmseg, deeplab) or a COCO results file from a run's masks", [](CLI::App& sub) {
      auto o = std::make_shared<ExportCli>();
      sub.add_option("format", o->framework,
                     "mmseg | deeplab (training lists) | coco (a COCO results file, RLE) | gt-png (the ground truth "
                     "as class PNGs for the official eval_cam.py)")
          ->required()
          ->check(CLI::IsMember({"mmseg", "deeplab", "coco", "gt-png"}));
      sub.add_option("out", o->out, "output folder of generate or segment")->required();
      sub.add_option("--gt", o->gt, "gt-png: COCO instances json or root, or VOC root (default: run.json's dataset)");
      sub.add_option("--split", o->split, "gt-png: the split (VOC list; COCO instances_<split>.json)");
      sub.add_option("--label-ids", o->label_ids, "gt-png: consecutive | coco (default: the run's, else consecutive)")
          ->check(CLI::IsMember({"consecutive", "dataset", "coco"}));
      sub.add_option("--images", o->images, "image folder (default: run.json's)");
      sub.add_option("--dataset", o->dataset, "dataset root; its JPEGImages/ for VOC (default: run.json's image folder)");
      return [o]() { return run_export(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

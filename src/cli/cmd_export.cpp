// clipes export mmseg|deeplab OUT — the split list and config snippet to
// train a segmentation network on a run's pseudo masks
// (pipeline/training_export.h). Classes and the image folder come from the
// run's run.json unless --images / --dataset say otherwise.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <memory>
#include <iostream>
#include <nlohmann/json.hpp>

#include "clipes/pipeline/coco_results.h"
#include "clipes/pipeline/run_record.h"
#include "clipes/pipeline/training_export.h"
#include "clipes/data/coco_mask.h"
#include "clipes/data/dataset.h"
#include "clipes/text/class_config.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"
#include "command.h"

namespace clipes::cli {
namespace {

struct ExportCli {
  std::string framework, out, images, dataset;
};

int run_export(const ExportCli& o) {
  const std::optional<RunRecord> record = RunRecord::read(o.out);
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
    const nlohmann::json& input = record->input;
    if (input.value("format", "") == "coco" && input.contains("dataset") && input["dataset"].is_string()) {
      try {
        coco = std::make_shared<CocoGroundTruth>(CocoGroundTruth::load(
            find_coco_annotations(input["dataset"].get<std::string>(), input.value("split", ""))));
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
      sub.add_option("format", o->framework, "mmseg | deeplab (training lists) | coco (a COCO results file, RLE)")
          ->required()
          ->check(CLI::IsMember({"mmseg", "deeplab", "coco"}));
      sub.add_option("out", o->out, "output folder of generate or segment")->required();
      sub.add_option("--images", o->images, "image folder (default: run.json's)");
      sub.add_option("--dataset", o->dataset, "dataset root; its JPEGImages/ for VOC (default: run.json's image folder)");
      return [o]() { return run_export(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

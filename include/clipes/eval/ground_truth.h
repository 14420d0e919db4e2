// Where `clipes eval` gets ground-truth label maps from, and which class each
// mask value is.
//
// Three sources: a VOC root (SegmentationClass/ or SegmentationClassAug/), a
// COCO instances json (rasterised on the fly with pycocotools arithmetic,
// crowd → 255) and a plain folder of <stem>.png masks (palette or grey).
#pragma once
#include <opencv2/core.hpp>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace clipes {

class CocoGroundTruth;

// Foreground classes and the mask values they are written with.
struct LabelSet {
  std::vector<std::string> names;  // class index → display name
  std::vector<int> values;         // class index → mask value (index + 1, or a dataset id)
  std::vector<std::vector<std::string>> aliases;  // class index → other names (class files' "aliases"); may be shorter
  bool empty() const { return names.empty(); }
  // Mask value → name, 0 = "background", "" where no class has that value.
  std::vector<std::string> names_by_value() const;
};

LabelSet voc_label_set();
// COCO's 80 categories: values index + 1, or the official ids when `dataset_ids`.
LabelSet coco_label_set(bool dataset_ids);
// A class configuration file: a JSON array of names or of {"name", "id"}
// objects, optionally under a "classes" key, or a text file with one name per
// line. A name's synonyms after the first comma are dropped for display.
// `dataset_ids` takes the values from "id" (an error if a class has none).
LabelSet read_label_set(const std::string& path, bool dataset_ids);
// The same from the file's text (e.g. the class set a run recorded in run.json).
LabelSet parse_label_set(const std::string& text, const std::string& name_for_errors, bool dataset_ids);

class GtSource {
 public:
  enum class Kind { Voc, Coco, Folder };

  // Detects the kind: a .json file or a folder holding annotations/instances_*.json
  // → COCO (`split` picks instances_<split>.json among several); a folder with
  // SegmentationClass/ or SegmentationClassAug/ (also under VOC2012/) → VOC;
  // any other folder → mask PNGs. Throws clipes::Error naming the path.
  static GtSource open(const std::string& path, bool coco_dataset_ids = false, const std::string& split = "");

  Kind kind() const { return kind_; }
  const char* kind_name() const;
  const std::string& path() const { return path_; }

  // The ids evaluated when none are listed: VOC ImageSets/Segmentation/<split>.txt,
  // every image of the COCO json, every <stem>.png of the folder (sorted).
  std::vector<std::string> default_ids(const std::string& split) const;

  // The label map of `id` (CV_8UC1). VOC prefers the official
  // SegmentationClass/<id>.png, else SegmentationClassAug/<id>.png. Throws
  // clipes::Error naming the file when there is none.
  cv::Mat mask(const std::string& id) const;
  // Throws clipes::Error naming the missing file (or the json) unless `id` has ground truth.
  void require(const std::string& id) const;
  // What to name in messages about `id`'s ground truth.
  std::string describe(const std::string& id) const;

  // The classes of this source: VOC's 20, the json's categories, nothing for a folder.
  LabelSet default_labels() const;

  // COCO: paint each category with the value of the class of its name in
  // `labels` (names and aliases, case-insensitive) instead of the json's own
  // order — a json holding only person(1) and dog(18) has dog second, the
  // run's class set has it 17th (issue 26 item 4). Throws clipes::Error naming
  // the json and the categories `labels` does not have. No-op for other kinds.
  void map_categories(const LabelSet& labels);

 private:
  Kind kind_ = Kind::Folder;
  std::string path_;
  bool dataset_ids_ = false;
  std::shared_ptr<const CocoGroundTruth> coco_;
  std::unordered_map<int64_t, int> category_values_;  // COCO category id → mask value; empty: the json's order
};

}  // namespace clipes

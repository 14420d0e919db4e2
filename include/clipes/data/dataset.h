// Dataset readers: which images to process and their image-level labels.
//
// Three layouts are read: PASCAL VOC (JPEGImages/, ImageSets/, Annotations/,
// SegmentationClass[Aug]/), COCO (instances_*.json + an image folder) and a
// plain folder of images with a labels file (CSV or JSON). Every reader returns
// the same ImageRecord list; ids are validated with safe_stem because they
// become output file names.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace clipes {

struct ImageRecord {
  std::string id;                   // output stem (validated with safe_stem)
  std::string image_path;
  // Image-level class names as the annotations spell them, no duplicates.
  // VOC and COCO: in class order (VOC index / COCO category id), as the
  // reference's one-hot label files have them. Folder: in the labels file's order.
  std::vector<std::string> labels;
  // Why the labels could not be read (a VOC XML <object> without <name>):
  // the image fails with this reason, the run goes on. Empty when they could.
  std::string label_error;
};

// The 20 VOC names: aeroplane ... tvmonitor (index 0..19; mask value index+1).
const std::vector<std::string>& voc_class_names();

// The 80 COCO categories as {official id, name}, in id order (mask value with
// consecutive ids = position + 1; with dataset ids = the id).
const std::vector<std::pair<int, std::string>>& coco_categories();

struct VocOptions {
  std::string list_file;   // explicit id list (one id per line); else ImageSets/Segmentation/<split>.txt
  std::string split = "train";
  // Auto: Annotations/<id>.xml if present, else SegmentationClassAug/<id>.png,
  // then SegmentationClass/<id>.png; an image with none of them gets no labels.
  enum class LabelSource { Auto, Annotations, SegmentationMasks } label_source = LabelSource::Auto;
};

// Images: JPEGImages/<id>.jpg, or .png/.jpeg if that is what exists (the .jpg
// path is kept when none exists, so that generate reports the image as failed).
// XML labels are the <object><name> values (difficult objects included, as the
// reference's label files do); mask labels are the values 1..20 present.
// Throws clipes::Error naming the file for a missing list, a malformed XML or
// a mask value that is no VOC class.
std::vector<ImageRecord> read_voc_dataset(const std::string& root, const VocOptions& options = {});

// `root_or_json`: a COCO root (annotations/instances_*.json — the only one, or
// the one whose split has an image folder) or the json path itself. Images are
// looked up in `images_dir`, else in <root>/<split>/ where the split comes from
// the json name (instances_val2017.json → val2017/). Labels: category names of
// the image's annotations, crowd ones included (a crowd of people still shows
// people), in category-id order. Images without annotations get empty labels
// (generate reports and skips them).
std::vector<ImageRecord> read_coco_dataset(const std::string& root_or_json, const std::string& images_dir = "",
                                           const std::string& split = "");

// Resolves a COCO root folder to its instances json (the path itself when it
// is a file). `split` picks annotations/instances_<split>.json when several exist.
std::string find_coco_annotations(const std::string& root_or_json, const std::string& split = "");

// A folder of images and a labels file, in either format:
//  - JSON: {"<image file or stem>": ["cat", "dog"], ...} (a single string is one label);
//  - CSV: one image per line, "image,label1;label2" or "image,label1,label2"
//    (fields split on ',' then ';', trimmed; "quoted, fields" allowed; blank
//    lines and '#' comments skipped; a first line starting with the field
//    image/file/filename is a header).
// An entry without an extension is looked up as <stem> + each of image_extensions().
// Order: the labels file's order. Duplicate images throw clipes::Error.
std::vector<ImageRecord> read_folder_dataset(const std::string& images_dir, const std::string& labels_file);
// Every image file directly inside `images_dir` (image_extensions(), any
// case), sorted by name, with no labels: the input of commands that need
// none (`segment`). Names that are not safe stems are an error naming them.
std::vector<ImageRecord> read_image_folder(const std::string& images_dir);

// The extensions image folders are searched for, lower case, most common
// first: every format io/image_decode reads (JPEG, PNG, WebP, BMP, TIFF, PNM,
// GIF). One list, so that no command skips a file another one decodes.
const std::vector<std::string>& image_extensions();
// True when the extension of `path`, in any case, is one of image_extensions().
bool has_image_extension(const std::string& path);
// <dir>/<stem><ext> for the first extension of image_extensions() (lower,
// then upper case) naming a regular file; "" when there is none.
std::string find_image_file(const std::string& dir, const std::string& stem);

// One entry of a folder labels file, before any file lookup: the image key as
// written (file name or stem, not yet checked with safe_stem) and its labels
// (trimmed, no empties, no duplicates, in the file's order).
struct LabelEntry {
  std::string image;
  std::vector<std::string> labels;
};
enum class LabelsFormat {
  Auto,  // JSON when `name_for_errors` ends in ".json" or the text starts with '{', else CSV
  Csv,
  Json,
};
// The text-parsing half of read_folder_dataset (no file system access, so it
// can be tested and fuzzed on its own). A leading UTF-8 byte-order mark (as
// Excel writes) is skipped. Throws clipes::Error "<name_for_errors>: <problem>".
std::vector<LabelEntry> parse_labels_text(const std::string& text, const std::string& name_for_errors,
                                          LabelsFormat format = LabelsFormat::Auto);

// A dataset as the commands name it (--dataset, --format and friends).
struct DatasetSource {
  std::string root;         // dataset root (COCO: root or the instances json)
  std::string format;       // voc | coco | folder
  std::string split = "train", list_file;  // VOC
  std::string labels_file;  // folder (required)
  std::string images_dir;   // COCO image folder override
};
// Dispatches to the reader of `format`; an unknown format or a folder without
// a labels file is a clipes::Error naming the option.
std::vector<ImageRecord> read_dataset(const DatasetSource& source);

// One id per line (the first whitespace-separated field, so VOC's
// "id label" class lists work too); blank lines skipped, duplicates dropped,
// every id checked with safe_stem.
std::vector<std::string> read_id_list(const std::string& path);

}  // namespace clipes

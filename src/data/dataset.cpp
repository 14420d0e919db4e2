#include "clipes/data/dataset.h"

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <sstream>
#include <unordered_set>

#include "clipes/data/coco_mask.h"
#include "clipes/data/safe_path.h"
#include "clipes/io/indexed_png.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/strings.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/error.h"
#include "clipes/util/option_error.h"

namespace fs = std::filesystem;

namespace clipes {

const std::vector<std::string>& voc_class_names() {
  static const std::vector<std::string> names = {
      "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",   "car",
      "cat",       "chair",   "cow",   "diningtable", "dog",    "horse", "motorbike",
      "person",    "pottedplant", "sheep", "sofa",    "train",  "tvmonitor"};
  return names;
}

const std::vector<std::pair<int, std::string>>& coco_categories() {
  // The official COCO 2014/2017 detection categories (ids have gaps).
  static const std::vector<std::pair<int, std::string>> categories = {
      {1, "person"}, {2, "bicycle"}, {3, "car"}, {4, "motorcycle"}, {5, "airplane"},
      {6, "bus"}, {7, "train"}, {8, "truck"}, {9, "boat"}, {10, "traffic light"},
      {11, "fire hydrant"}, {13, "stop sign"}, {14, "parking meter"}, {15, "bench"},
      {16, "bird"}, {17, "cat"}, {18, "dog"}, {19, "horse"}, {20, "sheep"}, {21, "cow"},
      {22, "elephant"}, {23, "bear"}, {24, "zebra"}, {25, "giraffe"}, {27, "backpack"},
      {28, "umbrella"}, {31, "handbag"}, {32, "tie"}, {33, "suitcase"}, {34, "frisbee"},
      {35, "skis"}, {36, "snowboard"}, {37, "sports ball"}, {38, "kite"},
      {39, "baseball bat"}, {40, "baseball glove"}, {41, "skateboard"}, {42, "surfboard"},
      {43, "tennis racket"}, {44, "bottle"}, {46, "wine glass"}, {47, "cup"}, {48, "fork"},
      {49, "knife"}, {50, "spoon"}, {51, "bowl"}, {52, "banana"}, {53, "apple"},
      {54, "sandwich"}, {55, "orange"}, {56, "broccoli"}, {57, "carrot"}, {58, "hot dog"},
      {59, "pizza"}, {60, "donut"}, {61, "cake"}, {62, "chair"}, {63, "couch"},
      {64, "potted plant"}, {65, "bed"}, {67, "dining table"}, {70, "toilet"}, {72, "tv"},
      {73, "laptop"}, {74, "mouse"}, {75, "remote"}, {76, "keyboard"}, {77, "cell phone"},
      {78, "microwave"}, {79, "oven"}, {80, "toaster"}, {81, "sink"}, {82, "refrigerator"},
      {84, "book"}, {85, "clock"}, {86, "vase"}, {87, "scissors"}, {88, "teddy bear"},
      {89, "hair drier"}, {90, "toothbrush"}};
  return categories;
}

namespace {

// Appends `name` unless already there.
void add_unique(std::vector<std::string>& labels, const std::string& name) {
  if (std::find(labels.begin(), labels.end(), name) == labels.end()) labels.push_back(name);
}

// VOC names first in class-index order (the reference's one-hot order), any
// other names after them in the order met.
std::vector<std::string> in_voc_order(const std::vector<std::string>& names) {
  std::vector<std::string> ordered;
  for (const auto& voc : voc_class_names())
    if (std::find(names.begin(), names.end(), voc) != names.end()) ordered.push_back(voc);
  for (const auto& name : names)
    if (std::find(ordered.begin(), ordered.end(), name) == ordered.end()) ordered.push_back(name);
  return ordered;
}

std::vector<std::string> voc_labels_from_xml(const std::string& path) {
  pugi::xml_document doc;
  const pugi::xml_parse_result result = doc.load_file(path.c_str());
  if (!result) throw file_error(path, std::string("malformed XML (") + result.description() + ")");
  pugi::xml_node annotation = doc.child("annotation");
  if (!annotation) throw file_error(path, "no <annotation> element");
  std::vector<std::string> names;
  for (pugi::xml_node object : annotation.children("object")) {
    const std::string name = trim(object.child_value("name"));
    if (name.empty()) throw file_error(path, "an <object> has no <name>");
    add_unique(names, name);
  }
  return in_voc_order(names);
}

std::vector<std::string> voc_labels_from_mask(const std::string& path) {
  const cv::Mat mask = read_label_png(path);
  bool present[256] = {};
  for (int r = 0; r < mask.rows; ++r) {
    const uint8_t* row = mask.ptr<uint8_t>(r);
    for (int c = 0; c < mask.cols; ++c) present[row[c]] = true;
  }
  std::vector<std::string> labels;
  const auto& names = voc_class_names();
  for (int v = 1; v < 255; ++v) {
    if (!present[v]) continue;
    if (v > static_cast<int>(names.size()))
      throw file_error(path, "mask value " + std::to_string(v) + " is not a VOC class (1..20, 255)");
    labels.push_back(names[v - 1]);
  }
  return labels;
}

// The image of `stem` in `dir`, else <dir>/<stem>.jpg (for the error that follows).
std::string find_image(const fs::path& dir, const std::string& stem) {
  const std::string found = find_image_file(dir.string(), stem);
  return found.empty() ? (dir / (stem + ".jpg")).string() : found;
}

}  // namespace

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> exts = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff",
                                                ".ppm", ".pgm",  ".pbm",  ".pnm",  ".gif"};
  return exts;
}

bool has_image_extension(const std::string& path) {
  const std::string ext = lower(fs::path(path).extension().string());
  const auto& exts = image_extensions();
  return std::find(exts.begin(), exts.end(), ext) != exts.end();
}

std::string find_image_file(const std::string& dir, const std::string& stem) {
  for (const std::string& ext : image_extensions()) {
    for (const std::string& e : {ext, upper(ext)}) {
      const fs::path candidate = fs::path(dir) / (stem + e);
      if (is_file(candidate)) return candidate.string();
    }
  }
  return "";
}

std::vector<std::string> read_id_list(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::string> ids;
  std::unordered_set<std::string> seen;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id;
    if (!(fields >> id)) continue;
    if (seen.insert(id).second) ids.push_back(safe_stem(id, path));
  }
  return ids;
}

std::vector<ImageRecord> read_voc_dataset(const std::string& root, const VocOptions& options) {
  const fs::path base(root);
  if (!is_dir(base)) throw file_error(root, "VOC root is not a folder");
  const std::string list = !options.list_file.empty()
                               ? options.list_file
                               : (base / "ImageSets" / "Segmentation" / (options.split + ".txt")).string();
  const std::vector<std::string> ids = read_id_list(list);
  std::vector<ImageRecord> records;
  records.reserve(ids.size());
  using Source = VocOptions::LabelSource;
  for (const auto& id : ids) {
    ImageRecord record;
    record.id = id;
    record.image_path = find_image(base / "JPEGImages", id);
    const fs::path xml = base / "Annotations" / (id + ".xml");
    const fs::path aug = base / "SegmentationClassAug" / (id + ".png");
    const fs::path cls = base / "SegmentationClass" / (id + ".png");
    // One damaged annotation fails its image, not the run.
    try {
      if (options.label_source != Source::SegmentationMasks && is_file(xml)) {
        record.labels = voc_labels_from_xml(xml.string());
      } else if (options.label_source != Source::Annotations) {
        if (is_file(aug)) record.labels = voc_labels_from_mask(aug.string());
        else if (is_file(cls)) record.labels = voc_labels_from_mask(cls.string());
      }
    } catch (const Error& e) {
      record.label_error = e.what();
    }
    records.push_back(std::move(record));
  }
  return records;
}

std::string find_coco_annotations(const std::string& root_or_json, const std::string& split) {
  const fs::path path(root_or_json);
  if (is_file(path)) return path.string();
  if (!is_dir(path)) {
    const std::string why = why_not_a_readable_file(root_or_json);
    throw file_error(root_or_json, why == "file not found" ? "no such COCO annotation file or folder" : why);
  }
  const fs::path annotations = is_dir(path / "annotations") ? path / "annotations" : path;
  std::vector<std::string> found;
  std::error_code ec;
  for (fs::directory_iterator it(annotations, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("instances_", 0) == 0 && it->path().extension() == ".json") found.push_back(name);
  }
  std::sort(found.begin(), found.end());
  std::string names;
  for (const auto& f : found) names += (names.empty() ? "" : ", ") + f;
  if (!split.empty()) {
    // An explicit split is honoured or refused, never swapped for another file.
    const fs::path wanted = annotations / ("instances_" + split + ".json");
    if (is_file(wanted)) return wanted.string();
    throw file_error(wanted.string(), "no such file (split '" + split + "'; found: " +
                                          (names.empty() ? "none" : names) + ")");
  }
  if (found.empty()) throw file_error(annotations.string(), "no instances_*.json in this folder");
  if (found.size() > 1)
    throw option_error(printable(annotations.string()) + ": several instances_*.json (" + names + "); pass " +
                       option_key("split") + " or the json file");
  return (annotations / found.front()).string();
}

std::vector<ImageRecord> read_coco_dataset(const std::string& root_or_json, const std::string& images_dir,
                                           const std::string& split) {
  const std::string json_path = find_coco_annotations(root_or_json, split);
  fs::path image_folder(images_dir);
  if (images_dir.empty()) {
    // instances_val2017.json → <root>/val2017/ (the json usually sits in <root>/annotations/).
    std::string split = fs::path(json_path).stem().string();
    if (split.rfind("instances_", 0) == 0) split = split.substr(10);
    fs::path json_dir = fs::path(json_path).parent_path();
    if (json_dir.empty()) json_dir = ".";
    const fs::path beside_root = json_dir.parent_path() / split;
    image_folder = is_dir(beside_root) ? beside_root : json_dir / split;
    if (!is_dir(image_folder))
      throw file_error(json_path, "cannot find its image folder (tried " + beside_root.string() +
                                      "); pass the images folder");
  }
  const CocoGroundTruth gt = CocoGroundTruth::load(json_path);
  std::vector<ImageRecord> records;
  records.reserve(gt.images().size());
  for (const auto& image : gt.images()) {
    ImageRecord record;
    record.id = safe_stem(image.stem, json_path);
    record.image_path = (image_folder / image.file_name).string();
    record.labels = gt.image_labels(image.id);
    records.push_back(std::move(record));
  }
  return records;
}

std::vector<ImageRecord> read_folder_dataset(const std::string& images_dir, const std::string& labels_file) {
  const fs::path folder(images_dir);
  if (!is_dir(folder)) throw file_error(images_dir, "image folder does not exist");
  const std::vector<LabelEntry> entries = parse_labels_text(read_file(labels_file), labels_file);

  std::vector<ImageRecord> records;
  std::unordered_set<std::string> seen;
  for (const LabelEntry& entry : entries) {
    const std::string& key = entry.image;
    const fs::path key_path(key);
    // The key must name a file directly inside the folder (no sub-paths).
    safe_stem(key, labels_file);
    ImageRecord record;
    if (key_path.has_extension() && is_file(folder / key_path)) {
      record.id = safe_stem(key_path.stem().string(), labels_file);
      record.image_path = (folder / key_path).string();
    } else {
      const bool known_ext = has_image_extension(key);
      const std::string stem = known_ext ? key_path.stem().string() : key;
      record.id = safe_stem(stem, labels_file);
      record.image_path = known_ext ? (folder / key_path).string() : find_image(folder, stem);
    }
    if (!seen.insert(record.id).second)
      throw file_error(labels_file, "image '" + record.id + "' is listed twice");
    record.labels = entry.labels;
    records.push_back(std::move(record));
  }
  return records;
}

std::vector<ImageRecord> read_image_folder(const std::string& images_dir) {
  const fs::path folder(images_dir);
  if (!is_dir(folder)) throw file_error(images_dir, "image folder does not exist");
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (has_image_extension(entry.path().string())) files.push_back(entry.path());
  }
  if (ec) throw file_error(images_dir, "cannot list the folder: " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<ImageRecord> records;
  std::unordered_set<std::string> seen;
  for (const auto& f : files) {
    ImageRecord r;
    r.id = safe_stem(f.stem().string(), f.string());
    if (!seen.insert(r.id).second) throw file_error(f.string(), "another image in the folder has the stem " + r.id);
    r.image_path = f.string();
    records.push_back(std::move(r));
  }
  return records;
}

std::vector<ImageRecord> read_dataset(const DatasetSource& source) {
  if (source.format == "voc") {
    VocOptions voc;
    voc.list_file = source.list_file;
    voc.split = source.split;
    return read_voc_dataset(source.root, voc);
  }
  if (source.format == "coco") return read_coco_dataset(source.root, source.images_dir, source.split);
  if (source.format == "folder") {
    if (source.labels_file.empty()) throw option_error(option_key("format") + " folder needs " + option_key("labels_file") + " (CSV or JSON)");
    return read_folder_dataset(source.root, source.labels_file);
  }
  throw option_error(option_key("format") + ": expected voc, coco or folder, got '" + printable(source.format) + "'");
}

}  // namespace clipes

#include "clipes/eval/ground_truth.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "clipes/data/coco_mask.h"
#include "clipes/data/dataset.h"
#include "clipes/data/safe_path.h"
#include "clipes/io/indexed_png.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"

namespace fs = std::filesystem;

namespace clipes {

namespace {

std::string display_name(const std::string& name) {
  std::string first = name.substr(0, name.find(','));
  const auto begin = first.find_first_not_of(" \t");
  const auto end = first.find_last_not_of(" \t\r");
  return begin == std::string::npos ? "" : first.substr(begin, end - begin + 1);
}

}  // namespace

std::vector<std::string> LabelSet::names_by_value() const {
  int max_value = 0;
  for (int v : values) max_value = std::max(max_value, v);
  std::vector<std::string> by_value(max_value + 1);
  by_value[0] = "background";
  for (size_t i = 0; i < names.size(); ++i)
    if (values[i] > 0) by_value[values[i]] = names[i];
  return by_value;
}

LabelSet voc_label_set() {
  LabelSet set;
  set.names = voc_class_names();
  for (size_t i = 0; i < set.names.size(); ++i) set.values.push_back(static_cast<int>(i) + 1);
  return set;
}

LabelSet coco_label_set(bool dataset_ids) {
  LabelSet set;
  const auto& categories = coco_categories();
  for (size_t i = 0; i < categories.size(); ++i) {
    set.names.push_back(categories[i].second);
    set.values.push_back(dataset_ids ? categories[i].first : static_cast<int>(i) + 1);
  }
  return set;
}

LabelSet read_label_set(const std::string& path, bool dataset_ids) {
  return parse_label_set(read_file(path), path, dataset_ids);
}

LabelSet parse_label_set(const std::string& text, const std::string& path, bool dataset_ids) {
  LabelSet set;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    nlohmann::json root;
    try {
      root = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw file_error(path, std::string("not valid JSON (") + e.what() + ")");
    }
    if (root.is_object() && root.contains("classes")) root = root["classes"];
    if (!root.is_array()) throw file_error(path, "expected a list of classes (or {\"classes\": [...]})");
    for (const auto& entry : root) {
      std::string name;
      int id = -1;
      if (entry.is_string()) {
        name = entry.get<std::string>();
      } else if (entry.is_object() && entry.contains("name") && entry["name"].is_string()) {
        name = entry["name"].get<std::string>();
        if (entry.contains("id") && entry["id"].is_number_integer()) id = entry["id"].get<int>();
        if (entry.contains("aliases") && entry["aliases"].is_array()) {
          set.aliases.resize(set.names.size() + 1);
          for (const auto& a : entry["aliases"])
            if (a.is_string()) set.aliases.back().push_back(a.get<std::string>());
        }
      } else {
        throw file_error(path, "a class is neither a name nor an object with a \"name\"");
      }
      if (dataset_ids && id < 0) throw file_error(path, "class '" + name + "' has no \"id\" (needed for dataset ids)");
      set.names.push_back(display_name(name));
      set.values.push_back(dataset_ids ? id : static_cast<int>(set.names.size()));
    }
  } else {
    if (dataset_ids) throw file_error(path, "a text class list has no ids; use a JSON list with \"id\"");
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      const std::string name = display_name(line);
      if (name.empty() || name[0] == '#') continue;
      set.names.push_back(name);
      set.values.push_back(static_cast<int>(set.names.size()));
    }
  }
  if (set.names.empty()) throw file_error(path, "no classes");
  for (int v : set.values)
    if (v <= 0 || v >= 255) throw file_error(path, "class value " + std::to_string(v) + " does not fit 1..254");
  return set;
}

GtSource GtSource::open(const std::string& path, bool coco_dataset_ids, const std::string& split) {
  GtSource source;
  source.path_ = path;
  source.dataset_ids_ = coco_dataset_ids;
  const fs::path p(path);
  if (is_file(p)) {
    if (p.extension() != ".json") throw file_error(path, "ground truth must be a folder or a COCO .json file");
    source.kind_ = Kind::Coco;
  } else if (!is_dir(p)) {
    throw file_error(path, "ground truth folder or file does not exist");
  } else if (is_dir(p / "SegmentationClass") || is_dir(p / "SegmentationClassAug")) {
    source.kind_ = Kind::Voc;
  } else if (is_dir(p / "VOC2012") &&
             (is_dir(p / "VOC2012" / "SegmentationClass") || is_dir(p / "VOC2012" / "SegmentationClassAug"))) {
    source.kind_ = Kind::Voc;
    source.path_ = (p / "VOC2012").string();
  } else if (is_dir(p / "annotations")) {
    source.kind_ = Kind::Coco;
  } else {
    source.kind_ = Kind::Folder;
  }
  if (source.kind_ == Kind::Coco) {
    source.path_ = find_coco_annotations(path, split);
    source.coco_ = std::make_shared<const CocoGroundTruth>(CocoGroundTruth::load(source.path_));
  }
  return source;
}

const char* GtSource::kind_name() const {
  switch (kind_) {
    case Kind::Voc: return "voc";
    case Kind::Coco: return "coco";
    default: return "folder";
  }
}

std::vector<std::string> GtSource::default_ids(const std::string& split) const {
  switch (kind_) {
    case Kind::Voc:
      return read_id_list((fs::path(path_) / "ImageSets" / "Segmentation" / (split + ".txt")).string());
    case Kind::Coco: {
      std::vector<std::string> ids;
      for (const auto& image : coco_->images()) ids.push_back(safe_stem(image.stem, path_));
      return ids;
    }
    default: {
      std::vector<std::string> ids;
      for (const auto& entry : fs::directory_iterator(path_)) {
        if (entry.is_regular_file() && entry.path().extension() == ".png") ids.push_back(entry.path().stem().string());
      }
      std::sort(ids.begin(), ids.end());
      if (ids.empty()) throw file_error(path_, "no .png masks in this folder");
      return ids;
    }
  }
}

std::string GtSource::describe(const std::string& id) const {
  switch (kind_) {
    case Kind::Voc: {
      const fs::path official = fs::path(path_) / "SegmentationClass" / (id + ".png");
      if (is_file(official)) return official.string();
      return (fs::path(path_) / "SegmentationClassAug" / (id + ".png")).string();
    }
    case Kind::Coco: return path_ + " (image " + id + ")";
    default: return (fs::path(path_) / (id + ".png")).string();
  }
}

void GtSource::require(const std::string& id) const {
  if (kind_ == Kind::Coco) {
    if (!coco_->find_image_by_stem(id)) throw file_error(path_, "no image with file stem '" + id + "'");
    return;
  }
  const std::string file = describe(id);
  if (!is_file(file)) throw file_error(file, "ground-truth mask does not exist");
}

cv::Mat GtSource::mask(const std::string& id) const {
  require(id);
  if (kind_ == Kind::Coco) {
    const int64_t image = coco_->find_image_by_stem(id)->id;
    return category_values_.empty() ? coco_->semantic_mask(image, dataset_ids_)
                                    : coco_->semantic_mask(image, category_values_);
  }
  return read_label_png(describe(id));
}

void GtSource::map_categories(const LabelSet& labels) {
  if (kind_ != Kind::Coco || labels.empty()) return;
  std::map<std::string, int> value_of;  // lower-case name or alias → mask value
  for (size_t i = 0; i < labels.names.size(); ++i) {
    value_of.emplace(lower(trim(labels.names[i])), labels.values[i]);
    if (i < labels.aliases.size())
      for (const std::string& a : labels.aliases[i]) value_of.emplace(lower(trim(a)), labels.values[i]);
  }
  std::unordered_map<int64_t, int> values;
  std::string missing;
  size_t num_missing = 0;
  for (const CocoCategoryInfo& c : coco_->categories()) {
    const auto it = value_of.find(lower(trim(c.name)));
    if (it != value_of.end()) {
      values[c.id] = it->second;
    } else if (++num_missing <= 5) {
      missing += (missing.empty() ? "" : ", ") + ("'" + printable(c.name) + "' (id " + std::to_string(c.id) + ")");
    }
  }
  if (num_missing)
    throw file_error(path_, std::to_string(num_missing) + " categor" + (num_missing == 1 ? "y is" : "ies are") +
                                " not in the evaluated class set: " + missing + (num_missing > 5 ? ", ..." : "") +
                                "; score against a class set that names every category (e.g. coco)");
  category_values_ = std::move(values);
}

LabelSet GtSource::default_labels() const {
  switch (kind_) {
    case Kind::Voc: return voc_label_set();
    case Kind::Coco: {
      LabelSet set;
      const auto& categories = coco_->categories();
      for (size_t i = 0; i < categories.size(); ++i) {
        set.names.push_back(categories[i].name);
        set.values.push_back(dataset_ids_ ? static_cast<int>(categories[i].id) : static_cast<int>(i) + 1);
      }
      return set;
    }
    default: return {};
  }
}

}  // namespace clipes

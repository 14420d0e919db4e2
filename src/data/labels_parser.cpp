// Folder labels files (CSV or JSON) → image keys and labels. Split out of
// dataset.cpp so that it needs neither torch nor OpenCV: the unit tests and
// the fuzz harness (fuzz/fuzz_labels.cpp) link it on its own.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "clipes/data/dataset.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"

namespace clipes {
namespace {

// Appends `name` unless already there.
void add_unique_label(std::vector<std::string>& labels, const std::string& name) {
  if (std::find(labels.begin(), labels.end(), name) == labels.end()) labels.push_back(name);
}

// CSV fields with optional double quotes ("" inside quotes is a quote).
std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(field);
      field.clear();
    } else {
      field += c;
    }
  }
  fields.push_back(field);
  return fields;
}

std::vector<LabelEntry> parse_json_labels(const std::string& text, const std::string& name) {
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw file_error(name, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!root.is_object()) throw file_error(name, "expected an object {\"image\": [\"label\", ...]}");
  std::vector<LabelEntry> entries;
  for (const auto& [key, value] : root.items()) {
    std::vector<std::string> labels;
    if (value.is_string()) {
      // "" or "  ": no label, as an empty entry of a list (not a label "").
      const std::string label_name = trim(value.get<std::string>());
      if (!label_name.empty()) labels.push_back(label_name);
    } else if (value.is_array()) {
      for (const auto& label : value) {
        if (!label.is_string()) throw file_error(name, "labels of '" + key + "' are not strings");
        const std::string label_name = trim(label.get<std::string>());
        if (!label_name.empty()) add_unique_label(labels, label_name);
      }
    } else {
      throw file_error(name, "labels of '" + key + "' are not a list of strings");
    }
    entries.push_back({key, std::move(labels)});
  }
  return entries;
}

std::vector<LabelEntry> parse_csv_labels(const std::string& text) {
  std::vector<LabelEntry> entries;
  std::istringstream in(text);
  std::string line;
  bool first_line = true;
  while (std::getline(in, line)) {
    const std::string content = trim(line);
    if (content.empty() || content[0] == '#') continue;
    std::vector<std::string> fields = split_csv_line(content);
    const std::string image = trim(fields[0]);
    if (first_line) {
      first_line = false;
      std::string lower = image;
      // unsigned char: ::tolower of a negative char (any UTF-8 byte) is undefined.
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
      if (lower == "image" || lower == "file" || lower == "filename") continue;  // header
    }
    std::vector<std::string> labels;
    for (size_t f = 1; f < fields.size(); ++f) {
      std::istringstream parts(fields[f]);
      std::string part;
      while (std::getline(parts, part, ';')) {
        const std::string label_name = trim(part);
        if (!label_name.empty()) add_unique_label(labels, label_name);
      }
    }
    entries.push_back({image, std::move(labels)});
  }
  return entries;
}

}  // namespace

std::vector<LabelEntry> parse_labels_text(const std::string& raw_text, const std::string& name_for_errors,
                                          LabelsFormat format) {
  // Excel (and Notepad) start UTF-8 files with a byte-order mark; left in, it
  // hides a CSV header and becomes part of the first image id.
  static const std::string kBom = "\xEF\xBB\xBF";
  const std::string text = raw_text.compare(0, kBom.size(), kBom) == 0 ? raw_text.substr(kBom.size()) : raw_text;
  if (format == LabelsFormat::Auto) {
    const bool json = std::filesystem::path(name_for_errors).extension() == ".json" || trim(text).substr(0, 1) == "{";
    format = json ? LabelsFormat::Json : LabelsFormat::Csv;
  }
  return format == LabelsFormat::Json ? parse_json_labels(text, name_for_errors) : parse_csv_labels(text);
}

}  // namespace clipes

#include "clipes/pipeline/run_record.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

// run.json, else the first run.shard-*.json (a sharded run that was never
// merged); "" when there is none.
std::string record_path(const std::string& out_dir) {
  if (is_file(fs::path(out_dir) / "run.json")) return (fs::path(out_dir) / "run.json").string();
  std::error_code ec;
  std::vector<fs::path> shards;
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("run.shard-", 0) == 0 && it->path().extension() == ".json" && is_file(it->path()))
      shards.push_back(it->path());
  }
  std::sort(shards.begin(), shards.end());
  return shards.empty() ? "" : shards.front().string();
}

// A string field of `j`, or `fallback` when absent or null; another type is
// an error naming the file and the field.
std::string string_field(const nlohmann::json& j, const char* key, const std::string& fallback,
                         const std::string& path, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_string()) throw file_error(path, where + key + " is not a string");
  return j[key].get<std::string>();
}

}  // namespace

std::optional<RunRecord::LabelledDataset> RunRecord::labelled_dataset() const {
  auto text = [&](const char* key) {
    return input.contains(key) && input[key].is_string() ? input[key].get<std::string>() : std::string();
  };
  LabelledDataset d{text("dataset"), text("format"), text("split")};
  if (d.path.empty() || (d.format != "voc" && d.format != "coco")) return std::nullopt;
  return d;
}

ClassConfig RunRecord::class_set() const {
  if (!has_class_set) throw file_error(path, "records no class set");
  return ClassConfig::parse(class_set_text, path);
}

SavedScoreRule RunRecord::segment_score_rule() const {
  if (command != "segment") throw file_error(path, "is not the record of a segment run");
  if (!config.contains("logit_scale") || !config["logit_scale"].is_number())
    throw file_error(path, "config.logit_scale is missing or not a number (needed to read the saved scores)");
  SavedScoreRule rule;
  rule.logit_scale = config["logit_scale"].get<double>();
  const std::string channels = string_field(config, "scores_channels", "", path, "config.");
  if (channels.empty()) rule.query_cosines = string_field(config, "method", "", path, "config.") == "naclip";
  else if (channels == "query_cosines" || channels == "class_probabilities") rule.query_cosines = channels == "query_cosines";
  else throw file_error(path, "config.scores_channels is '" + channels + "', not query_cosines or class_probabilities");
  return rule;
}

std::optional<RunRecord> RunRecord::read(const std::string& out_dir) {
  RunRecord r;
  r.path = record_path(out_dir);
  if (r.path.empty()) return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(r.path));
  } catch (const nlohmann::json::exception& e) {
    throw file_error(r.path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw file_error(r.path, "not a JSON object");
  r.command = string_field(j, "command", "", r.path, "");
  r.images_folder = string_field(j, "images_folder", "", r.path, "");
  if (j.contains("input")) {
    if (!j["input"].is_object()) throw file_error(r.path, "input is not an object");
    r.input = j["input"];
  }
  if (j.contains("config")) {
    const nlohmann::json& config = j["config"];
    if (!config.is_object()) throw file_error(r.path, "config is not an object");
    r.config = config;
    r.label_ids = string_field(config, "label_ids", "consecutive", r.path, "config.");
    if (config.contains("class_set")) {
      if (!config["class_set"].is_object()) throw file_error(r.path, "config.class_set is not an object");
      r.has_class_set = true;
      r.class_set_text = config["class_set"].dump();
      r.class_set_name = string_field(config["class_set"], "name", "?", r.path, "config.class_set.");
    }
  }
  return r;
}

}  // namespace clipes

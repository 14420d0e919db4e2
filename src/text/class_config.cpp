#include "clipes/text/class_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "clipes/util/atomic_file.h"
#include "clipes/util/strings.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Small typed accessors so every error says which file and which key.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  Error error(const std::string& key, const std::string& problem) const {
    return file_error(file_, "key \"" + key + "\": " + problem);
  }
  std::string string_at(const json& j, const std::string& key, const std::string& where) const {
    if (!j.is_string()) throw error(where + key, "expected a string");
    return j.get<std::string>();
  }
  std::vector<std::string> strings_at(const json& j, const std::string& key) const {
    if (!j.is_array()) throw error(key, "expected an array of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_string()) throw error(key + "[" + std::to_string(i) + "]", "expected a string");
      out.push_back(j[i].get<std::string>());
    }
    return out;
  }
  void only_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) const {
    for (const auto& item : j.items())
      if (!allowed.count(item.key())) throw error(where + item.key(), "unknown key");
  }

 private:
  std::string file_;
};

#ifdef CLIPES_SOURCE_PROMPTS_DIR
constexpr const char* kSourcePromptsDir = CLIPES_SOURCE_PROMPTS_DIR;
#else
constexpr const char* kSourcePromptsDir = "";
#endif

}  // namespace

ClassConfig ClassConfig::parse(const std::string& json_text, const std::string& name_for_errors) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e309
    throw file_error(name_for_errors, std::string("invalid JSON: ") + e.what());
  }
  const Reader r(name_for_errors);
  if (!root.is_object()) throw file_error(name_for_errors, "expected a JSON object at the top level");
  r.only_keys(root, {"name", "template", "box_threshold", "background", "classes", "description"}, "");

  ClassConfig config;
  config.name = fs::path(name_for_errors).stem().string();
  if (root.contains("name")) config.name = r.string_at(root["name"], "name", "");
  if (root.contains("template")) config.default_template = r.string_at(root["template"], "template", "");
  if (config.default_template.find("{}") == std::string::npos)
    throw r.error("template", "must contain the placeholder {}");
  if (root.contains("box_threshold")) {
    const json& t = root["box_threshold"];
    if (!t.is_number() || t.get<double>() < 0.0 || t.get<double>() > 1.0)
      throw r.error("box_threshold", "expected a number in [0, 1]");
    config.box_threshold = t.get<double>();
  }
  if (root.contains("background")) config.background = r.strings_at(root["background"], "background");

  if (!root.contains("classes")) throw r.error("classes", "missing");
  const json& classes = root["classes"];
  if (!classes.is_array() || classes.empty()) throw r.error("classes", "expected a non-empty array");
  // Masks write class i as i+1 (or its id, at most 254); 0 is background and
  // 255 ignore. More classes would wrap or overrun the 256-entry value
  // tables of every command, so a file is refused as an inline list is.
  if (classes.size() > 254)
    throw r.error("classes", std::to_string(classes.size()) + " classes: a mask PNG holds at most 254 classes");
  std::map<std::string, size_t> taken;  // lower-case name or alias → index of the class that owns it
  for (size_t i = 0; i < classes.size(); ++i) {
    const std::string where = "classes[" + std::to_string(i) + "].";
    const json& c = classes[i];
    if (!c.is_object()) throw r.error("classes[" + std::to_string(i) + "]", "expected an object");
    r.only_keys(c, {"name", "prompt", "id", "aliases", "tag_name"}, where);
    ClassEntry entry;
    if (!c.contains("name")) throw r.error(where + "name", "missing");
    entry.name = trim(r.string_at(c["name"], "name", where));
    if (entry.name.empty()) throw r.error(where + "name", "empty");
    // "prompt" defaults to the name, "id" to index+1 (the VOC convention).
    entry.prompt = c.contains("prompt") ? r.string_at(c["prompt"], "prompt", where) : entry.name;
    if (split_synonyms(entry.prompt).empty()) throw r.error(where + "prompt", "empty");
    entry.id = static_cast<int>(i) + 1;
    if (c.contains("id")) {
      // Ids become mask values: 0 is background and 255 ignore.
      if (!c["id"].is_number_integer() || c["id"].get<int64_t>() < 1 || c["id"].get<int64_t>() > 254)
        throw r.error(where + "id", "expected an integer in 1..254");
      entry.id = c["id"].get<int>();
    }
    if (c.contains("aliases")) entry.aliases = r.strings_at(c["aliases"], where + "aliases");
    if (c.contains("tag_name")) {
      entry.tag_name = trim(r.string_at(c["tag_name"], "tag_name", where));
      if (entry.tag_name.empty()) throw r.error(where + "tag_name", "empty");
    }
    std::vector<std::string> names{entry.name};
    names.insert(names.end(), entry.aliases.begin(), entry.aliases.end());
    for (const auto& n : names) {
      const std::string key = lower(trim(n));
      const auto [it, inserted] = taken.emplace(key, i);
      // Two entries with one name would be one class under two mask values;
      // an alias repeating its own class's name is harmless.
      if (!inserted && it->second != i)
        throw r.error(where + "name", "\"" + n + "\" is already used by class \"" +
                                          config.classes[it->second].name + "\" (classes[" +
                                          std::to_string(it->second) + "])");
    }
    config.classes.push_back(std::move(entry));
  }
  return config;
}

ClassConfig ClassConfig::load(const std::string& path) { return parse(read_file(path), path); }

std::string ClassConfig::to_json_text() const {
  nlohmann::ordered_json j;
  j["name"] = name;
  j["template"] = default_template;
  j["box_threshold"] = box_threshold;
  j["background"] = background;
  j["classes"] = nlohmann::ordered_json::array();
  for (const auto& c : classes) {
    nlohmann::ordered_json entry = {{"name", c.name}, {"prompt", c.prompt}, {"id", c.id}};
    if (!c.aliases.empty()) entry["aliases"] = c.aliases;
    if (!c.tag_name.empty()) entry["tag_name"] = c.tag_name;
    j["classes"].push_back(std::move(entry));
  }
  return j.dump();
}

std::string ClassConfig::prompts_dir() {
  if (const char* env = std::getenv("CLIPES_PROMPTS_DIR"); env && *env) return env;
  std::error_code ec;
  if (*kSourcePromptsDir && fs::is_directory(kSourcePromptsDir, ec)) return kSourcePromptsDir;
  // An installed binary: <prefix>/bin/clipes → <prefix>/share/clipes/prompts.
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) return (exe.parent_path() / ".." / "share" / "clipes" / "prompts").lexically_normal().string();
  return "prompts";
}

std::string ClassConfig::resolve_path(const std::string& name_or_path) {
  const bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                               (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json");
  if (looks_like_path) return name_or_path;
  const fs::path dir = prompts_dir();
  const fs::path builtin = dir / (name_or_path + ".json");
  std::error_code ec;
  if (fs::is_regular_file(builtin, ec)) return builtin.string();
  if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
  std::vector<std::string> available;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".json") available.push_back(it->path().stem().string());
  std::sort(available.begin(), available.end());
  std::string list;
  for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
  throw Error(name_or_path + ": no such class set (built-in in " + dir.string() + ": " +
              (list.empty() ? "none" : list) + "; or give a .json file)");
}

std::vector<std::string> ClassConfig::split_synonyms(const std::string& prompt) {
  return split_comma_list(prompt);
}

std::vector<int> ClassConfig::resolve_labels(const std::vector<std::string>& names) const {
  std::map<std::string, int> index_of;
  for (int i = 0; i < num_classes(); ++i) {
    index_of.emplace(lower(trim(classes[i].name)), i);
    for (const auto& alias : classes[i].aliases) index_of.emplace(lower(trim(alias)), i);
  }
  // Then the synonyms of each prompt ("crescent,moon", spec §4): the toy class
  // file lists moon and disc, which a labels file may use (issue 27). Names
  // and aliases win where a synonym of another class would collide.
  for (int i = 0; i < num_classes(); ++i)
    for (const auto& synonym : split_synonyms(classes[i].prompt)) index_of.emplace(lower(synonym), i);
  std::vector<int> out;
  for (const auto& name : names) {
    const auto it = index_of.find(lower(trim(name)));
    if (it == index_of.end()) {
      std::string valid;
      for (const auto& c : classes) valid += (valid.empty() ? "" : ", ") + c.name;
      throw Error(this->name + ": unknown class \"" + name + "\" (valid: " + valid + ")");
    }
    if (std::find(out.begin(), out.end(), it->second) == out.end()) out.push_back(it->second);
  }
  return out;
}

int ClassConfig::label_id(int index, LabelIds ids) const {
  if (index < 0 || index >= num_classes())
    throw Error(name + ": class index " + std::to_string(index) + " outside 0.." + std::to_string(num_classes() - 1));
  return ids == LabelIds::Dataset ? classes[index].id : index + 1;
}

std::vector<std::string> ClassConfig::names_by_mask_value(LabelIds ids) const {
  std::vector<std::string> names(1, "background");
  for (int i = 0; i < num_classes(); ++i) {
    const int value = label_id(i, ids);
    if (value < 0 || value > 255) continue;  // cannot appear in an 8-bit mask
    if (names.size() <= static_cast<size_t>(value)) names.resize(static_cast<size_t>(value) + 1);
    names[static_cast<size_t>(value)] = classes[static_cast<size_t>(i)].name;
  }
  return names;
}

ClassConfig::LabelIds ClassConfig::parse_label_ids(const std::string& text, const std::string& option) {
  if (text == "consecutive") return LabelIds::Consecutive;
  if (text == "dataset" || text == "coco") return LabelIds::Dataset;
  throw Error(option + ": expected consecutive or dataset (alias coco), got '" + text + "'");
}

}  // namespace clipes

#include "clipes/methods/segment_classes.h"

#include <algorithm>
#include <cctype>

#include "clipes/util/error.h"
#include "clipes/util/strings.h"
#include "clipes/util/option_error.h"

namespace clipes {
ClassConfig class_config_from_list(const std::string& comma_list) {
  const std::vector<std::string> names = split_comma_list(comma_list);
  if (names.empty()) throw option_error(option_key("classes") + " \"" + printable(comma_list) + "\": no class names");
  ClassConfig config;
  config.name = "list";
  config.default_template = "a photo of a {}.";
  for (const auto& n : names) {
    if (lower(n) == "background") {
      if (!config.background.empty()) throw option_error(option_key("classes") + ": \"background\" is listed twice");
      config.background.push_back(n);
      continue;
    }
    for (const auto& c : config.classes)
      if (lower(c.name) == lower(n)) throw option_error(option_key("classes") + ": \"" + printable(n) + "\" is listed twice");
    ClassEntry e;
    e.name = n;
    e.prompt = n;
    e.id = config.num_classes() + 1;
    config.classes.push_back(e);
  }
  if (config.classes.empty()) throw option_error(option_key("classes") + ": no class besides background");
  if (config.classes.size() > 254) throw option_error(option_key("classes") + ": at most 254 classes fit a mask PNG");
  return config;
}

ClassConfig with_background_words(ClassConfig config, const std::string& comma_words) {
  const std::vector<std::string> words = split_comma_list(comma_words);
  if (words.empty()) throw option_error(option_key("background") + " \"" + printable(comma_words) + "\": no words");
  config.background.clear();
  for (const auto& w : words) {
    for (const auto& c : config.classes)
      if (lower(c.name) == lower(w))
        throw option_error(option_key("background") + ": \"" + printable(w) + "\" is also a class");
    for (const auto& b : config.background)
      if (lower(b) == lower(w)) throw option_error(option_key("background") + ": \"" + printable(w) + "\" is listed twice");
    config.background.push_back(w);
  }
  return config;
}

SegmentClasses SegmentClasses::from_class_config(const ClassConfig& config, ClassConfig::LabelIds ids) {
  SegmentClasses s;
  if (!config.background.empty()) {
    s.background = 0;
    s.names.push_back("background");
    s.mask_values.push_back(0);
    for (const auto& w : config.background) {
      s.queries.push_back(w);
      s.query_class.push_back(0);
    }
  }
  for (int i = 0; i < config.num_classes(); ++i) {
    const int c = s.num_classes();
    s.names.push_back(config.classes[static_cast<size_t>(i)].name);
    s.mask_values.push_back(config.label_id(i, ids));
    for (const auto& q : ClassConfig::split_synonyms(config.classes[static_cast<size_t>(i)].prompt)) {
      s.queries.push_back(q);
      s.query_class.push_back(c);
    }
  }
  if (s.names.empty()) throw Error("class set " + config.name + " has no classes");
  // Class indices are written through 256-entry tables (pipeline/segment.cpp).
  if (s.num_classes() > 255)
    throw Error("class set " + config.name + ": " + std::to_string(config.num_classes()) +
                " classes, but a mask PNG holds at most 254 classes");
  return s;
}

std::vector<std::string> SegmentClasses::names_by_mask_value() const {
  std::vector<std::string> out(256);
  for (size_t c = 0; c < names.size(); ++c)
    if (mask_values[c] >= 0 && mask_values[c] < 256) out[static_cast<size_t>(mask_values[c])] = names[c];
  return out;
}

}  // namespace clipes

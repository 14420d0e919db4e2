// libFuzzer harness: the class-file parser (ClassConfig::parse,
// src/text/class_config.cpp) — every --classes FILE, and the record of a run
// in settings.json/run.json, goes through it. Whatever it accepts must be a
// set the commands can use: 1..254 classes (mask values), ids in 1..254,
// every name resolving to its own class, and to_json_text() reading back to
// the same set.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/text/class_config.h"
#include "clipes/util/error.h"
#include "fuzz_support.h"

using clipes::fuzz::violated;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  clipes::ClassConfig c;
  try {
    c = clipes::ClassConfig::parse(text, "fuzz.json");
  } catch (const clipes::Error&) {
    return 0;
  }
  if (c.classes.empty() || c.classes.size() > 254) violated("class count outside 1..254");
  for (size_t i = 0; i < c.classes.size(); ++i) {
    const clipes::ClassEntry& e = c.classes[i];
    if (e.id < 1 || e.id > 254) violated("a class id is not a mask value");
    if (e.name.empty() || clipes::ClassConfig::split_synonyms(e.prompt).empty()) violated("an empty name or prompt");
    try {
      if (c.resolve_labels({e.name}) != std::vector<int>{static_cast<int>(i)}) violated("a name resolves to another class");
    } catch (const clipes::Error&) {
      violated("a class's own name is not accepted as a label");
    }
  }
  clipes::ClassConfig again;
  try {
    again = clipes::ClassConfig::parse(c.to_json_text(), "again.json");
  } catch (const clipes::Error&) {
    violated("to_json_text() does not parse back");
  }
  if (again.classes.size() != c.classes.size() || again.default_template != c.default_template ||
      again.box_threshold != c.box_threshold || again.background != c.background)
    violated("to_json_text() changes the set");
  for (size_t i = 0; i < c.classes.size(); ++i) {
    const auto &a = c.classes[i], &b = again.classes[i];
    if (a.name != b.name || a.prompt != b.prompt || a.id != b.id || a.aliases != b.aliases || a.tag_name != b.tag_name)
      violated("to_json_text() changes a class");
  }
  return 0;
}

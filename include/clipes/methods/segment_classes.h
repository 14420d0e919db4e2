// The class set of `clipes segment` (segment-spec §4): any list of names,
// LSeg-style, or a class file. Each class has one or more text queries (its
// synonyms; the background words for class 0) and the mask value it is
// written as.
#pragma once
#include <string>
#include <vector>

#include "clipes/text/class_config.h"

namespace clipes {

struct SegmentClasses {
  std::vector<std::string> names;   // per class, for legends and run.json
  std::vector<int> mask_values;     // per class: the value written in the mask PNG
  int background = -1;              // index of the background class, -1 when there is none
  std::vector<std::string> queries; // text queries, each one class string for the templates
  std::vector<int> query_class;     // the class of each query

  // A class file: its background words (if any) become class 0 (mask 0),
  // each class's synonyms its queries; mask values as `ids` says.
  static SegmentClasses from_class_config(const ClassConfig& config,
                                          ClassConfig::LabelIds ids = ClassConfig::LabelIds::Consecutive);
  int num_classes() const { return static_cast<int>(names.size()); }
  // Mask value → name (empty where no class), for contact-sheet legends.
  std::vector<std::string> names_by_mask_value() const;
};

// "dog, grass, other" as a class set: one class per name, in order, written
// as 1..N (so 0 is never written). The name "background" (any case), when
// listed, is the background word instead, class 0, written as 0. Duplicate or
// empty lists throw clipes::Error. The set is recorded in run.json like any
// class file, so `eval` and `visualize` read it back.
ClassConfig class_config_from_list(const std::string& comma_list);

// `config` with its background words replaced by `comma_words` ("grass,sky"):
// each becomes a query of class 0, written as 0, as a class file's
// "background" list does (issue 27 item 10: only the literal word
// "background" could be mapped to 0). A word that is also a class name, a
// repeat or an empty list throws clipes::Error.
ClassConfig with_background_words(ClassConfig config, const std::string& comma_words);

}  // namespace clipes

// Class sets (VOC, COCO, user files) as data: the prompt strings with their
// synonyms, background words, template and box threshold (spec §4, §6).
// The built-in sets live in prompts/<name>.json; the schema is in README.md
// ("Class files").
#pragma once
#include <string>
#include <vector>

namespace clipes {

struct ClassEntry {
  std::string name;                  // what users write in --labels and annotations say ("dining table")
  std::string prompt;                // the class string with synonyms, spec §4 ("person with clothes,people,human")
  int id = 0;                        // the dataset's own category id (VOC: index+1; COCO: 1..90)
  std::vector<std::string> aliases;  // other accepted names (e.g. "diningtable"), may be empty
  // The word TagCLIP's official code uses for this class where it differs
  // from `name` (COCO "motorcycle" → "motorbike", segment-spec §5 quirk d);
  // empty = the name. Only `tag` and `generate --labels auto` read it.
  std::string tag_name;
};

struct ClassConfig {
  std::string name;                                  // "voc", "coco", or the file stem
  std::string default_template = "a clean origami {}.";
  double box_threshold = 0.4;                        // θ: 0.4 VOC, 0.7 COCO
  std::vector<ClassEntry> classes;                   // class index = position
  std::vector<std::string> background;               // background words (spec §4)

  // Parse errors name `name_for_errors` (the file) and the offending key.
  static ClassConfig parse(const std::string& json_text, const std::string& name_for_errors);
  static ClassConfig load(const std::string& path);
  // The one rule every command uses to find a class set: a name that looks
  // like a path (has a '/' or ends in .json) is that file; a bare name
  // ("voc", "coco", "toy") is the built-in <prompts_dir>/<name>.json, and only
  // when there is no such built-in, a regular file of that name in the
  // working directory. A folder called ./toy never shadows the built-in.
  // Throws clipes::Error listing the built-in names when nothing matches.
  static std::string resolve_path(const std::string& name_or_path);
  static ClassConfig resolve(const std::string& name_or_path) { return load(resolve_path(name_or_path)); }
  // $CLIPES_PROMPTS_DIR, else the source tree's prompts/ (when it still
  // exists), else <exe dir>/../share/clipes/prompts.
  static std::string prompts_dir();
  // "a,b , c" → {"a", "b", "c"} (empty pieces dropped).
  static std::vector<std::string> split_synonyms(const std::string& prompt);

  // Names → class indices: case-insensitive on names and aliases, then on
  // the prompts' synonyms ("moon" → crescent); duplicates
  // collapse (first occurrence kept); an unknown name throws clipes::Error
  // listing the valid names.
  std::vector<int> resolve_labels(const std::vector<std::string>& names) const;

  enum class LabelIds { Consecutive, Dataset };      // Consecutive: index+1 (bg 0); Dataset: classes[i].id
  int label_id(int index, LabelIds ids = LabelIds::Consecutive) const;
  // Mask value → class name under `ids` ("background" at 0; values no class
  // maps to stay empty). For legends of masks written with these ids.
  std::vector<std::string> names_by_mask_value(LabelIds ids = LabelIds::Consecutive) const;
  // "consecutive" | "dataset" (alias "coco") → LabelIds; anything else throws
  // clipes::Error naming `option` (the CLI flag).
  static LabelIds parse_label_ids(const std::string& text, const std::string& option = "--label-ids");
  int num_classes() const { return static_cast<int>(classes.size()); }
  // The class file that parse() reads back to this same set (every field
  // written out): what run.json and settings.json record of a run.
  std::string to_json_text() const;
};

}  // namespace clipes

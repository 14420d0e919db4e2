// RunRecord — what OUT/run.json tells the commands that read a run back
// (eval, export, visualize): the class set the masks were written with, their
// label ids, the image folder and the input. One typed reader, so a field is
// parsed (and its type checked) in one place; the writer is the batch
// commands' common run record (src/cli/batch_command.h).
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "clipes/io/saved_cams.h"
#include "clipes/text/class_config.h"

namespace clipes {

struct RunRecord {
  std::string path;                      // the file read
  std::string command;                   // generate | segment | tag ("" in early records)
  bool has_class_set = false;
  std::string class_set_text;            // config.class_set as JSON text
  std::string class_set_name = "?";      // its "name"
  std::string label_ids = "consecutive"; // config.label_ids
  std::string images_folder;             // "" when not recorded
  nlohmann::json input = nlohmann::json::object();  // the "input" block
  nlohmann::json config = nlohmann::json::object(); // the "config" block (settings as run)

  // The dataset the run read when it is one with label maps (input.format
  // voc or coco): its path, format and recorded split ("" when none). The
  // one reading of "input" that visualize, export gt-png and export coco
  // share; nullopt for --image runs and folders.
  struct LabelledDataset {
    std::string path, format, split;
  };
  std::optional<LabelledDataset> labelled_dataset() const;

  // The recorded class set; throws clipes::Error naming the file when the
  // record has none.
  ClassConfig class_set() const;

  // A segment run's rule for its saved scores: config.logit_scale and
  // config.scores_channels (runs made before that field: NACLIP's channels
  // are cosines, the others' probabilities). Throws clipes::Error naming the
  // file when the record is no segment run or lacks the scale.
  SavedScoreRule segment_score_rule() const;

  // OUT's record (run.json, else the first run.shard-*.json), or nullopt when
  // there is none. Invalid JSON or a field of the wrong type is an error
  // naming the file and the field.
  static std::optional<RunRecord> read(const std::string& out_dir);
};

}  // namespace clipes

// What the outputs in OUT were made with, and the history of the runs that
// wrote them. A resume must never mix settings silently: rerunning into an OUT
// with another --box-threshold used to print "10 already complete", exit 0,
// and leave masks made with the old threshold next to a run.json claiming the
// new one.
//
//   OUT/settings.json  everything that changes an output byte (model and
//                      vocabulary SHA-256, the whole class set, templates,
//                      thresholds, precision, ...), written by the first run;
//                      shared by every shard of the run;
//   OUT/runs.jsonl     one line per invocation, appended, never rewritten:
//                      argv, start and end time, counts, timings.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace clipes {

enum class ResumeMode {
  Resume,       // default: outputs must have been made with the same settings
  ForceResume,  // keep existing outputs even though the settings differ
  NoResume,     // recompute every image; the settings are replaced
};

// "box_threshold: 0.4 → 0.9" for each key (recursively, dotted) whose value differs.
std::vector<std::string> settings_differences(const nlohmann::json& before, const nlohmann::json& now);

// Compares `settings` with OUT/settings.json and records them there.
//   * no settings.json yet: writes it;
//   * same settings: nothing to do;
//   * different: throws clipes::Error naming every differing setting, unless
//     mode is ForceResume (returns the differences; the file keeps what the
//     outputs were made with) or NoResume (the file is replaced), or OUT
//     holds no outputs yet (`has_outputs` false: a run that failed before
//     writing anything, e.g. on a bad checkpoint, must not block the next).
// Returns the differences that were accepted (ForceResume), else empty.
// record = false (--dry-run): the same checks, settings.json left untouched.
std::vector<std::string> check_output_settings(const std::string& out_dir, const nlohmann::json& settings,
                                               ResumeMode mode, bool has_outputs = true, bool record = true);

// Appends `record` as one line to OUT/runs.jsonl (O_APPEND, one write, so
// shards appending at once do not interleave). Throws clipes::Error naming
// the file when it cannot.
void append_run_history(const std::string& out_dir, const nlohmann::json& record);

}  // namespace clipes

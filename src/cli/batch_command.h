// What the batch commands (generate, segment) share on the command line:
// the input options (--image | --dataset --format ...), reading them into
// records, the output folder check, the settings check behind resume, the
// run record (run.json + runs.jsonl) and the exit code from the final state.
// Each command keeps only what is its own.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "clipes/data/dataset.h"
#include "clipes/pipeline/batch_runner.h"

namespace clipes { class ClassConfig; }

namespace clipes::cli {

struct InputOptions {
  std::string image, labels;  // one image (+ its labels, where the command takes them)
  std::string dataset, format, split = "train", list, labels_file, images_dir;
  CLI::Option* split_option = nullptr;  // was --split given (COCO picks instances_<split>.json only then)
};
// --image, --dataset, --format, --split, --list, --labels-file, --images-dir;
// with_labels adds --labels for --image.
void add_input_options(CLI::App& sub, InputOptions& o, bool with_labels);
// labels_required: --image needs --labels (generate). Throws clipes::Error.
std::vector<ImageRecord> read_input_records(const InputOptions& o, bool labels_required);
// run.json's "input" block.
nlohmann::json input_json(const InputOptions& o);

// OUT must be a folder we can create and write in: found out before the
// model loads, not after.
void check_output_folder(const std::string& out);

// The resume rule (pipeline/run_settings.h) with the two flags; returns the
// differences --force-resume accepted (already warned about).
// dry_run: check only, leave settings.json as it is.
std::vector<std::string> check_resume_settings(const std::string& out, const nlohmann::json& settings, bool no_resume,
                                               bool force_resume, bool dry_run = false);

// Writes OUT/run.json (run.shard-i-of-N.json for a shard) and appends the
// history record (argv added here); false, with the error logged, when
// either cannot be written.
bool write_run_record(const std::string& out, const ShardSpec& shard, const nlohmann::json& run,
                      nlohmann::json history);

// The end every batch command shares: run.json gets the vocabulary path and
// the image folder (what eval and visualize read back) and is written, the
// history record appended, the summary logged and the failures reported.
// Returns the exit code (batch_exit_code, or 1 when the record could not be
// written).
int finish_batch_run(const std::string& command, const std::string& out, const ShardSpec& shard,
                     const std::string& shard_text, nlohmann::json run, const std::vector<ImageRecord>& records,
                     const std::string& vocab, const std::string& started_at,
                     const std::vector<std::string>& force_resumed_over, const BatchSummary& s, bool single_image);

// Exit code from the final state of OUT, the same on every rerun:
//   0  every image of the shard is complete, or failed for a reason of its own
//      (unreadable, no labels, ...), recorded in the failure log;
//   1  nothing could be produced (no image of the shard is complete), or an
//      output could not be written (disk full, permissions), or the failure
//      log itself could not be written (its records then go to stderr);
//   2  a fatal error before or during the run (the exception path in main).
int batch_exit_code(const BatchSummary& s);

// When no image's labels belong to `classes` (a class set the dataset does
// not match, e.g. --classes forgotten for the toy world), throws once, before
// the run, naming an example label and a built-in class set that knows every
// label, instead of failing every image "unknown class" one by one.
void check_labels_match_class_set(const std::vector<ImageRecord>& records, const ClassConfig& classes,
                                  const std::string& classes_option);

// --dry-run: what a run would do (images listed, in this shard, already
// complete, to compute; the first ids to compute) on stdout, after every
// check and without loading the model. `mask_of(id)` is the mask file of an
// image, whose presence means complete.
void print_dry_run(const std::string& command, const std::vector<ImageRecord>& records, const BatchOptions& batch,
                   const std::function<std::string(const std::string& id)>& mask_of);

// run.json's "counts" and the history's "timings_s".
// --templates of segment and tag: a built-in set (imagenet80, tagclip85 from
// prompts/), a file of templates, or one template written out ("a photo of a {}.").
std::vector<std::string> resolve_templates(const std::string& text);

// run.json's common part for generate, segment and tag: the versions, the
// command, "model" (path, SHA-256), "input", "config" (the settings without
// the two SHA-256, which sit under "model" and "vocab_sha256", plus
// `config_extra`: what did not change the outputs), counts and timings.
nlohmann::json batch_run_record(const std::string& command, const std::string& model_path,
                                const nlohmann::json& settings, const nlohmann::json& config_extra,
                                const InputOptions& input, size_t listed, const BatchSummary& s, double wall_s);

nlohmann::json counts_json(size_t listed, const BatchSummary& s);
nlohmann::json batch_timings_json(double wall_s, const BatchSummary& s);

}  // namespace clipes::cli

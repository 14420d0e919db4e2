// What the batch commands (generate, segment, tag) share on the command
// line: their common options (BatchCli), the input options (--image |
// --dataset --format ...) read into records, the output folder check, and
// the steps of a run in order (BatchCommand): common settings, the settings
// check behind resume, --dry-run, the model load, the run record (run.json +
// runs.jsonl) and the exit code from the final state. Each command keeps only
// what is its own, so a setting added here is checked by every resume.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clipes/data/dataset.h"
#include "clipes/io/image_decode.h"
#include "clipes/pipeline/batch_runner.h"
#include "command.h"
#include "graceful_stop.h"

namespace clipes {
class BpeTokenizer;
struct ClassConfig;
}

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

// The options every batch command takes.
struct BatchCli {
  std::string model, vocab, out;
  InputOptions input;
  int max_tokens = 2500;
  int64_t max_pixels = kDefaultMaxPixels;
  std::string shard = "0/1";
  int64_t limit = -1;
  bool dry_run = false, no_resume = false, force_resume = false;
  RuntimeOptions runtime;
};
// --model, --vocab, --out (`out_help`: what OUT receives) and the input options.
void add_batch_input_options(CLI::App& sub, BatchCli& o, const std::string& out_help, bool with_labels);
// --max-tokens, --max-pixels, --shard, --limit, --no-resume, --force-resume,
// --dry-run and the runtime options.
void add_batch_run_options(CLI::App& sub, BatchCli& o);

// One run of a batch command, its shared steps in the order they happen.
class BatchCommand {
 public:
  // Applies the runtime options and starts the wall clock.
  BatchCommand(std::string command, const BatchCli& options);

  // out_dir, shard, limit and resume from the options.
  BatchOptions batch_options() const;
  // The settings every batch command records: the model's and vocabulary's
  // SHA-256, max_tokens, precision and activation.
  nlohmann::json common_settings() const;
  // The resume rule for `settings`, then --dry-run's listing. False for a
  // dry run: the listing is printed and there is nothing more to do.
  // `mask_of(id)`: the file whose presence means an image is complete.
  // `needs_labels`: images without usable labels will fail (generate with
  // given labels), and the listing counts them apart.
  bool check_settings(const nlohmann::json& settings, const std::vector<ImageRecord>& records,
                      const BatchOptions& batch, const std::function<std::string(const std::string& id)>& mask_of,
                      bool needs_labels = false);
  // The model (logged), with the vocabulary checked against it.
  std::shared_ptr<ClipModel> load_model(const BpeTokenizer& tokenizer) const;
  // run.json: the common part (batch_run_record) with `config_extra` and what
  // every command adds (max_pixels, device, threads, shard, limit).
  nlohmann::json run_record(const nlohmann::json& settings, nlohmann::json config_extra,
                            const std::vector<ImageRecord>& records, const BatchSummary& s) const;
  // finish_batch_run: run.json written, history appended, exit code.
  int finish(nlohmann::json run, const std::vector<ImageRecord>& records, const BatchSummary& s) const;

 private:
  std::string command_;
  const BatchCli& o_;
  std::chrono::steady_clock::time_point start_;
  std::string started_at_;
  std::vector<std::string> force_resumed_over_;
  GracefulStop stop_on_signals_;  // SIGTERM/SIGINT end the run after the images in flight, recorded
};

// The resume rule (pipeline/run_settings.h) with the two flags; returns the
// differences --force-resume accepted (already warned about).
std::vector<std::string> check_resume_settings(const std::string& out, const nlohmann::json& settings, bool no_resume,
                                               bool force_resume, bool dry_run);
// run.json's "counts" and "timings_s".
nlohmann::json counts_json(size_t listed, const BatchSummary& s);
nlohmann::json batch_timings_json(double wall_s, const BatchSummary& s);
// The end every batch run shares (BatchCommand::finish; `masks`, which loads
// no model, calls it directly): run.json (run.shard-i-of-N.json for a shard)
// with the vocabulary and image folder, the runs.jsonl line, the summary log
// line, the failures on stderr, and the exit code (batch_exit_code, or 1 when
// run.json could not be written).
int finish_batch_run(const std::string& command, const std::string& out, const ShardSpec& shard,
                     const std::string& shard_text, nlohmann::json run, const std::vector<ImageRecord>& records,
                     const std::string& vocab, const std::string& started_at,
                     const std::vector<std::string>& force_resumed_over, const BatchSummary& s, bool single_image);

// OUT must be a folder we can create and write in: found out before the
// model loads, not after.
void check_output_folder(const std::string& out);

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

// --templates of segment and tag: a built-in set (imagenet80, tagclip85 from
// prompts/), a file of templates, or one template written out ("a photo of a {}.").
std::vector<std::string> resolve_templates(const std::string& text);

}  // namespace clipes::cli

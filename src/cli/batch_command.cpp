#include "batch_command.h"

#include <opencv2/core/version.hpp>
#include <spdlog/spdlog.h>
#include <ATen/Parallel.h>
#include <torch/version.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "clipes/data/safe_path.h"
#include "clipes/model/clip_model.h"
#include "clipes/pipeline/run_settings.h"
#include "clipes/text/class_config.h"
#include "clipes/text/prompt_ranking.h"
#include "clipes/text/text_features.h"
#include "clipes/util/stop_request.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/json_text.h"
#include "clipes/util/sha256.h"
#include "clipes/util/strings.h"
#include "command.h"

namespace clipes::cli {

// The helpers below are BatchCommand's steps; commands call BatchCommand
// (`masks`, which has no model, calls finish_batch_run itself).

void add_input_options(CLI::App& sub, InputOptions& o, bool with_labels) {
  auto* image = sub.add_option("--image", o.image, "one image file");
  if (with_labels)
    sub.add_option("--labels", o.labels,
                   "the image's labels, comma-separated (with --image); auto: predict them (TagCLIP), "
                   "also for a --dataset, whose own labels are then ignored");
  auto* dataset = sub.add_option("--dataset", o.dataset, "dataset root (or COCO json)");
  sub.add_option("--format", o.format, "voc | coco | folder")->capture_default_str();
  o.split_option =
      sub.add_option("--split", o.split, "VOC split list (ImageSets/Segmentation/<split>.txt); COCO: instances_<split>.json")
          ->capture_default_str();
  sub.add_option("--list", o.list, "file of image ids to process (VOC)");
  sub.add_option("--labels-file", o.labels_file, "image → labels, CSV or JSON (--format folder)");
  sub.add_option("--images-dir", o.images_dir, "COCO image folder (default: beside the json)");
  image->excludes(dataset);
}

std::vector<ImageRecord> read_input_records(const InputOptions& o, bool labels_required) {
  if (o.labels == "auto") {
    // Predicted later (generate --labels auto): read like a command that needs none.
    InputOptions plain = o;
    plain.labels.clear();
    std::vector<ImageRecord> records = read_input_records(plain, false);
    for (auto& r : records) r.labels.clear();
    return records;
  }
  if (o.image.empty() && !o.labels.empty())
    throw Error("--labels goes with --image (a dataset's labels come from the dataset; --labels auto predicts them)");
  if (!o.image.empty()) {
    if (!o.dataset.empty()) throw Error("--image and --dataset are exclusive");
    if (labels_required && o.labels.empty()) throw Error("--image needs --labels \"class,class\"");
    const std::string stem = std::filesystem::path(o.image).stem().string();
    return {ImageRecord{safe_stem(stem, o.image), o.image, split_comma_list(o.labels), ""}};
  }
  if (o.dataset.empty()) {
    throw Error(labels_required ? "give --image I --labels L, or --dataset DIR --format voc|coco|folder"
                                : "give --image I, or --dataset DIR --format voc|coco|folder");
  }
  // COCO: an explicit --split picks instances_<split>.json (as eval does);
  // without one the folder must hold a single instances_*.json.
  const bool split_given = o.split_option && o.split_option->count() > 0;
  const std::string split = o.format == "coco" && !split_given ? "" : o.split;
  // A plain folder of images, for commands that need no labels.
  std::vector<ImageRecord> records = !labels_required && o.format == "folder" && o.labels_file.empty()
                                         ? read_image_folder(o.dataset)
                                         : read_dataset({o.dataset, o.format, split, o.list, o.labels_file, o.images_dir});
  if (records.empty()) throw file_error(o.list.empty() ? o.dataset : o.list, "no images listed (nothing to do)");
  return records;
}

// Resolved, so that run.json names the same files when read from another
// working directory (a Slurm job, a moved OUT; issue 27 item 4). Older
// run.json files with relative paths are still read as they are.
namespace {
std::string resolved(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}
}  // namespace

nlohmann::json input_json(const InputOptions& o) {
  nlohmann::json input = nlohmann::json::object();
  if (o.image.empty()) {
    put_bytes(input, "dataset", resolved(o.dataset));
    input["format"] = o.format;
    put_bytes(input, "split", o.split);
    put_bytes(input, "list", resolved(o.list));
    put_bytes(input, "labels_file", resolved(o.labels_file));
  } else {
    put_bytes(input, "image", resolved(o.image));
    put_bytes(input, "labels", o.labels);
  }
  return input;
}

void check_output_folder(const std::string& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec)) throw file_error(out, "--out exists and is not a folder");
  fs::create_directories(out, ec);
  if (ec) throw file_error(out, "cannot create output folder: " + ec.message());
  if (::access(out.c_str(), W_OK | X_OK) != 0) throw file_error(out, "output folder is not writable");
}

// The resume rule (pipeline/run_settings.h) with the two flags; returns the
// differences --force-resume accepted (already warned about).
// dry_run: check only, leave settings.json as it is.
std::vector<std::string> check_resume_settings(const std::string& out, const nlohmann::json& settings, bool no_resume,
                                               bool force_resume, bool dry_run) {
  if (force_resume && no_resume) throw Error("--force-resume and --no-resume exclude each other");
  // Masks are written last, so any mask means outputs made with the recorded settings.
  std::error_code ec;
  const bool has_outputs = !std::filesystem::is_empty(std::filesystem::path(out) / "masks", ec) && !ec;
  const std::vector<std::string> accepted = check_output_settings(
      out, settings, no_resume ? ResumeMode::NoResume : force_resume ? ResumeMode::ForceResume : ResumeMode::Resume,
      has_outputs, /*record=*/!dry_run);
  for (const auto& d : accepted) spdlog::warn("--force-resume: keeping outputs made with other settings: {}", d);
  return accepted;
}

// Writes OUT/run.json (run.shard-i-of-N.json for a shard) and appends the
// history record (argv added here); false, with the error logged, when
// either cannot be written.
bool write_run_record(const std::string& out, const ShardSpec& shard, const nlohmann::json& run,
                      nlohmann::json history) {
  const std::string run_name = shard.count > 1 ? "run.shard-" + std::to_string(shard.index) + "-of-" +
                                                     std::to_string(shard.count) + ".json"
                                               : "run.json";
  history["argv"] = nlohmann::json::array();
  for (const auto& a : invocation_args()) history["argv"].push_back(printable(a));
  try {
    write_file_atomic((std::filesystem::path(out) / run_name).string(), run.dump(2) + "\n");
    append_run_history(out, history);
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return false;
  }
  return true;
}

void check_labels_match_class_set(const std::vector<ImageRecord>& records, const ClassConfig& classes,
                                  const std::string& classes_option) {
  const ImageRecord* example = nullptr;
  for (const auto& r : records) {
    if (r.labels.empty()) continue;
    try {
      classes.resolve_labels(r.labels);
      return;  // at least one image fits: per-image failures are the images' own
    } catch (const Error&) {
      if (!example) example = &r;
    }
  }
  if (!example) return;  // no labels anywhere: every image fails "no labels" on its own
  std::string hint;
  for (const char* name : {"voc", "coco", "toy"}) {
    if (name == classes.name) continue;
    try {
      const ClassConfig other = ClassConfig::resolve(name);
      bool all = true;
      for (const auto& r : records) {
        try {
          if (!r.labels.empty()) other.resolve_labels(r.labels);
        } catch (const Error&) {
          all = false;
          break;
        }
      }
      if (all) {
        hint = "; the built-in class set " + std::string(name) + " knows every label: pass --classes " + name;
        break;
      }
    } catch (const Error&) {
    }
  }
  throw Error("no image's labels belong to the class set " + classes.name + " (" +
              (classes_option.empty() ? "the default for this --format" : "--classes " + classes_option) +
              "), e.g. " + printable(example->id) + ": \"" + printable(example->labels.front()) + "\"" +
              (hint.empty() ? "; pass --classes with a class file that names them" : hint));
}

// --dry-run: what a run would do (images listed, in this shard, already
// complete, to compute; the first ids to compute) on stdout, after every
// check and without loading the model. `mask_of(id)` is the mask file of an
// image, whose presence means complete.
void print_dry_run(const std::string& command, const std::vector<ImageRecord>& records, const BatchOptions& batch,
                   const std::function<std::string(const std::string& id)>& mask_of, bool needs_labels) {
  std::vector<BatchJob> jobs;
  for (const auto& r : records) jobs.push_back({r.id, r.image_path});
  const std::vector<size_t> selected = select_jobs(jobs, batch);
  std::vector<std::string> todo, will_fail;
  size_t complete = 0;
  for (size_t i : selected) {
    std::error_code ec;
    if (batch.resume && std::filesystem::is_regular_file(mask_of(jobs[i].id), ec))
      ++complete;
    else if (needs_labels && (records[i].labels.empty() || !records[i].label_error.empty()))
      will_fail.push_back(jobs[i].id);  // COCO images without annotations, damaged XMLs: failed by the run
    else
      todo.push_back(jobs[i].id);
  }
  std::cout << "dry run of clipes " << command << " (nothing computed, no model loaded; every check passed)\n"
            << "output folder:      " << printable(batch.out_dir) << "\n"
            << "images listed:      " << records.size() << "\n"
            << "in shard " << batch.shard.index << "/" << batch.shard.count << ":         " << selected.size()
            << (batch.limit >= 0 ? " (after --limit)" : "") << "\n"
            << "already complete:   " << complete << "\n"
            << "to compute:         " << todo.size() << "\n";
  for (size_t i = 0; i < todo.size() && i < 10; ++i) std::cout << "  " << printable(todo[i]) << "\n";
  if (todo.size() > 10) std::cout << "  ... and " << todo.size() - 10 << " more\n";
  if (needs_labels) {
    std::cout << "will fail, no labels: " << will_fail.size() << "\n";
    for (size_t i = 0; i < will_fail.size() && i < 10; ++i) std::cout << "  " << printable(will_fail[i]) << "\n";
    if (will_fail.size() > 10) std::cout << "  ... and " << will_fail.size() - 10 << " more\n";
  }
}

// The end every batch command shares: run.json gets the vocabulary path and
// the image folder (what eval and visualize read back) and is written, the
// history record appended, the summary logged and the failures reported.
// Returns the exit code (batch_exit_code, or 1 when the record could not be
// written).
int finish_batch_run(const std::string& command, const std::string& out, const ShardSpec& shard,
                     const std::string& shard_text, nlohmann::json run, const std::vector<ImageRecord>& records,
                     const std::string& vocab, const std::string& started_at,
                     const std::vector<std::string>& force_resumed_over, const BatchSummary& s, bool single_image) {
  if (!vocab.empty()) put_bytes(run, "vocab", resolved(vocab));
  // Absolute: `export` and `visualize` read it from other working directories,
  // and `--image x.jpg` has no folder at all in its relative path.
  if (!records.empty())
    put_bytes(run, "images_folder", std::filesystem::path(resolved(records.front().image_path)).parent_path().string());
  nlohmann::json history = {{"command", command},         {"started", started_at},
                                  {"ended", now_utc_iso8601()}, {"shard", shard_text},
                                  {"counts", run["counts"]},    {"timings_s", run["timings_s"]},
                                  {"force_resumed_over", force_resumed_over}};
  if (s.stopped_by_signal) {
    run["stopped_by"] = stop_signal_name(s.stopped_by_signal);
    history["stopped_by"] = run["stopped_by"];
  }
  const bool run_record_written = write_run_record(out, shard, run, history);
  const double rate = s.wall_s > 0 ? static_cast<double>(s.processed - s.failed) / s.wall_s : 0.0;
  spdlog::info("done: {} written, {} failed, {} already complete, {:.1f} s ({:.2f} images/s)",
               s.processed - s.failed, s.failed, s.skipped, s.wall_s, rate);
  report_failures(s, single_image);
  if (s.stopped_by_signal) {
    spdlog::warn("stopped by {}: {} image(s) of this run not started; run the same command again to finish them",
                 stop_signal_name(s.stopped_by_signal), s.selected - s.skipped - s.processed);
    return 128 + s.stopped_by_signal;  // as a shell or Slurm reports a process the signal ended
  }
  const int code = batch_exit_code(s);
  return code == 0 && !run_record_written ? 1 : code;
}

int batch_exit_code(const BatchSummary& s) {
  if (s.selected == 0) return 0;
  if (s.complete() == 0) return 1;
  if (s.write_failed > 0 || !s.failure_log_written) return 1;
  return 0;
}

std::vector<std::string> resolve_templates(const std::string& text) {
  if (text.find("{}") != std::string::npos) {
    fill_template(text, "x");
    return {text};
  }
  const std::string path = text == "imagenet80" || text == "tagclip85" ? ClassConfig::prompts_dir() + "/" + text + ".txt" : text;
  return read_templates(path);
}

// run.json's common part for generate, segment and tag: the versions, the
// command, "model" (path, SHA-256), "input", "config" (the settings without
// the two SHA-256, which sit under "model" and "vocab_sha256", plus
// `config_extra`: what did not change the outputs), counts and timings.
nlohmann::json batch_run_record(const std::string& command, const std::string& model_path,
                                const nlohmann::json& settings, const nlohmann::json& config_extra,
                                const InputOptions& input, size_t listed, const BatchSummary& s, double wall_s) {
  nlohmann::json model = nlohmann::json::object();
  put_bytes(model, "path", resolved(model_path));
  model["sha256"] = settings.at("model_sha256");
  nlohmann::json config = settings;
  config.erase("model_sha256");
  config.erase("vocab_sha256");
  config.update(config_extra);
  nlohmann::json notes = nlohmann::json::array();
  // The token cap is ours: the official CLIP-ES and TagCLIP never shrink an
  // image (issue 25), so a run that can differ from them says so where its
  // results are described, not only in the help text.
  if (settings.value("max_tokens", 0) > 0)
    notes.push_back("images whose patch grid exceeds max_tokens = " +
                    std::to_string(settings.value("max_tokens", 0)) +
                    " patches ran downscaled; the official CLIP-ES and TagCLIP never downscale "
                    "(--max-tokens 0 for parity on large images)");
  return {{"clipes_version", CLIPES_VERSION},
          {"notes", notes},
          {"libtorch_version", TORCH_VERSION},
          {"opencv_version", CV_VERSION},
          {"command", command},
          {"model", model},
          {"input", input_json(input)},
          {"config", config},
          {"counts", counts_json(listed, s)},
          {"timings_s", batch_timings_json(wall_s, s)},
          {"vocab_sha256", settings.at("vocab_sha256")}};
}

nlohmann::json counts_json(size_t listed, const BatchSummary& s) {
  return {{"listed", listed},          {"selected", s.selected},         {"processed", s.processed},
          {"failed", s.failed},        {"write_failed", s.write_failed}, {"skipped_complete", s.skipped},
          {"complete", s.complete()}};
}

nlohmann::json batch_timings_json(double wall_s, const BatchSummary& s) {
  return {{"wall", wall_s}, {"batch_wall", s.wall_s}, {"decode", s.decode_s}, {"compute", s.compute_s},
          {"write", s.write_s}};
}

void add_batch_input_options(CLI::App& sub, BatchCli& o, const std::string& out_help, bool with_labels) {
  sub.add_option("--model", o.model, "CLIP checkpoint (OpenAI .pt, state dict, safetensors)")->required();
  add_vocab_option(sub, o.vocab);
  sub.add_option("--out", o.out, "output folder (" + out_help + ")")->required();
  add_input_options(sub, o.input, with_labels);
}

void add_batch_run_options(CLI::App& sub, BatchCli& o) {
  sub.add_option("--max-tokens", o.max_tokens,
                 "cap on the patch grid h·w: larger images run downscaled, which the official code never does "
                 "(0 = none, as the official)")
      ->check(count_at_least(0))
      ->capture_default_str();
  add_max_pixels_option(sub, o.max_pixels);
  sub.add_option("--shard", o.shard, "i/N: process the i-th of N deterministic shards")->capture_default_str();
  sub.add_option("--limit", o.limit, "at most this many images, N ≥ 1 (default: all)")->check(count_at_least(1));
  sub.add_flag("--no-resume", o.no_resume, "recompute images whose outputs exist (and record the new settings)");
  sub.add_flag("--force-resume", o.force_resume,
               "resume even though OUT was made with other settings (existing outputs are kept)");
  sub.add_flag("--dry-run", o.dry_run, "check everything and list what would be done, without loading the model");
  add_runtime_options(sub, o.runtime);
}

BatchCommand::BatchCommand(std::string command, const BatchCli& options)
    : command_(std::move(command)), o_(options), start_(std::chrono::steady_clock::now()) {
  apply_runtime_options(o_.runtime);
}

BatchOptions BatchCommand::batch_options() const {
  BatchOptions b;
  b.out_dir = o_.out;
  b.shard = ShardSpec::parse(o_.shard);
  b.limit = o_.limit;
  b.resume = !o_.no_resume;
  return b;
}

nlohmann::json BatchCommand::common_settings() const {
  return {{"model_sha256", sha256_file(o_.model)},
          {"vocab_sha256", sha256_file(o_.vocab)},
          {"max_tokens", o_.max_tokens},
          {"activation", o_.runtime.activation},
          {"precision", o_.runtime.precision}};
}

bool BatchCommand::check_settings(const nlohmann::json& settings, const std::vector<ImageRecord>& records,
                                  const BatchOptions& batch,
                                  const std::function<std::string(const std::string& id)>& mask_of,
                                  bool needs_labels) {
  force_resumed_over_ = check_resume_settings(o_.out, settings, o_.no_resume, o_.force_resume, o_.dry_run);
  if (o_.dry_run) {
    print_dry_run(command_, records, batch, mask_of, needs_labels);
    return false;
  }
  started_at_ = now_utc_iso8601();
  return true;
}

std::shared_ptr<ClipModel> BatchCommand::load_model(const BpeTokenizer& tokenizer) const {
  spdlog::info("loading {} ({}, {})", printable(o_.model), o_.runtime.precision, o_.runtime.device);
  auto model = ClipModel::load(o_.model, to_model_options(o_.runtime));
  check_vocab_fits_model(tokenizer, *model, o_.vocab, o_.model);
  return model;
}

nlohmann::json BatchCommand::run_record(const nlohmann::json& settings, nlohmann::json config_extra,
                                        const std::vector<ImageRecord>& records, const BatchSummary& s) const {
  config_extra.update(nlohmann::json{{"max_pixels", o_.max_pixels},
                                     {"device", o_.runtime.device},
                                     {"threads", at::get_num_threads()},
                                     {"shard", o_.shard},
                                     {"limit", o_.limit}});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return batch_run_record(command_, o_.model, settings, config_extra, o_.input, records.size(), s, wall);
}

int BatchCommand::finish(nlohmann::json run, const std::vector<ImageRecord>& records, const BatchSummary& s) const {
  return finish_batch_run(command_, o_.out, ShardSpec::parse(o_.shard), o_.shard, std::move(run), records, o_.vocab,
                          started_at_, force_resumed_over_, s, !o_.input.image.empty());
}

}  // namespace clipes::cli

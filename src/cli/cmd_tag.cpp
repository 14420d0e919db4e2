// clipes tag — image-level tags without labels (TagCLIP, segment-spec §5):
// OUT/labels.json is a folder-format labels file `generate --labels-file`
// reads unchanged, OUT/tags.jsonl the per-image class scores. The work is
// pipeline/tag.h on the batch machinery generate and segment use.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <opencv2/core/version.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>

#include "clipes/model/clip_model.h"
#include "clipes/pipeline/tag.h"
#include "clipes/segment/tag_clip.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/class_config.h"
#include "clipes/text/text_features.h"
#include "clipes/util/error.h"
#include "clipes/util/json_text.h"
#include "clipes/util/sha256.h"
#include "clipes/util/strings.h"
#include "batch_command.h"
#include "command.h"
#include "progress_bar.h"

namespace clipes::cli {
namespace {

struct TagCli {
  std::string model, vocab, out;
  InputOptions input;
  std::string classes;  // voc | coco | toy | FILE (default by format)
  std::string templates = "tagclip85";
  double threshold = 0.5;
  bool no_crop = false;
  int max_tokens = 2500;
  bool dry_run = false, no_resume = false, force_resume = false;
  int64_t max_pixels = kDefaultMaxPixels;
  std::string shard = "0/1";
  int64_t limit = -1;
  RuntimeOptions runtime;
};

int run_tag(const TagCli& o) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  apply_runtime_options(o.runtime);

  const std::string class_name = o.classes.empty() ? (o.input.format == "coco" ? "coco" : "voc") : o.classes;
  const ClassConfig classes = ClassConfig::resolve(class_name);
  const std::vector<std::string> templates = resolve_templates(o.templates);
  TagRunOptions options;
  options.batch.out_dir = o.out;
  options.batch.shard = ShardSpec::parse(o.shard);
  options.batch.limit = o.limit;
  options.batch.resume = !o.no_resume;
  options.decode.max_pixels = o.max_pixels;
  options.max_tokens = o.max_tokens;
  TagClipConfig config;
  config.relative_threshold = o.threshold;
  config.crop_rescoring = !o.no_crop;
  const ModelOptions model_options = to_model_options(o.runtime);
  const std::vector<ImageRecord> records = read_input_records(o.input, /*labels_required=*/false);
  check_output_folder(o.out);
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);

  const std::string model_sha256 = sha256_file(o.model);
  nlohmann::json settings = {{"command", "tag"},
                             {"model_sha256", model_sha256},
                             {"vocab_sha256", sha256_file(o.vocab)},
                             {"class_set", nlohmann::json::parse(classes.to_json_text())},
                             {"templates", nlohmann::json::array()},
                             {"threshold", o.threshold},
                             {"crop_rescoring", config.crop_rescoring},
                             {"max_tokens", o.max_tokens},
                             {"activation", o.runtime.activation},
                             {"precision", o.runtime.precision}};
  for (const auto& t : templates) settings["templates"].push_back(printable(t));
  const std::vector<std::string> accepted = check_resume_settings(o.out, settings, o.no_resume, o.force_resume, o.dry_run);
  if (o.dry_run) {
    print_dry_run("tag", records, options.batch, [&](const std::string& id) { return tag_record_path(o.out, id); });
    return 0;
  }
  const std::string started_at = now_utc_iso8601();

  spdlog::info("loading {} ({}, {})", printable(o.model), o.runtime.precision, o.runtime.device);
  auto model = ClipModel::load(o.model, model_options);
  check_vocab_fits_model(tokenizer, *model, o.vocab, o.model);
  const std::vector<std::string> names = tag_class_names(classes);
  const at::Tensor text = TextEncoder(*model, tokenizer).encode_classes(tag_queries(classes), templates);
  const TagClip tagger(*model, text, static_cast<int>(names.size()), config);

  spdlog::info("{} images listed; TagCLIP over {} classes + {} background words ({} templates); writing to {}",
               records.size(), names.size(), classes.background.size(), templates.size(), printable(o.out));
  ProgressBar bar("tag");
  const BatchSummary s = tag_images(tagger, names, records, options, [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();
  const std::vector<ImageTags> tagged = write_tag_summaries(o.out, records, names);

  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  nlohmann::json run = batch_run_record("tag", o.model, settings,
                                        {{"max_pixels", o.max_pixels},
                                         {"device", o.runtime.device},
                                         {"threads", torch::get_num_threads()},
                                         {"shard", o.shard},
                                         {"limit", o.limit},
                                         {"images_tagged", tagged.size()}},
                                        o.input, records.size(), s, wall);
  put_bytes(run["config"], "classes", class_name);
  return finish_batch_run("tag", o.out, options.batch.shard, o.shard, std::move(run), records, o.vocab, started_at,
                          accepted, s, !o.input.image.empty());
}

const bool registered = register_command({
    "tag", "image-level tags without labels (TagCLIP): a labels file for generate", [](CLI::App& sub) {
      auto o = std::make_shared<TagCli>();
      sub.add_option("--model", o->model, "CLIP checkpoint (OpenAI .pt, state dict, safetensors)")->required();
      sub.add_option("--vocab", o->vocab, "BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)")->required();
      sub.add_option("--out", o->out, "output folder (labels.json, tags.jsonl, tags/, run.json)")->required();
      add_input_options(sub, o->input, /*with_labels=*/false);
      sub.add_option("--classes", o->classes, "class set: voc | coco | toy | FILE (default by format)");
      sub.add_option("--templates", o->templates, "tagclip85 | imagenet80 | a file of templates | one template with {}")
          ->capture_default_str();
      sub.add_option("--threshold", o->threshold,
                     "relative tag threshold r: tags score > min + r·(max − min), at least one")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
      sub.add_flag("--no-crop", o->no_crop, "skip the crop re-scoring (ablation)");
      sub.add_option("--max-tokens", o->max_tokens, "cap on the patch grid h·w (0 = none)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
      add_max_pixels_option(sub, o->max_pixels);
      sub.add_option("--shard", o->shard, "i/N: process the i-th of N deterministic shards")->capture_default_str();
      sub.add_option("--limit", o->limit, "at most this many images, N ≥ 1 (default: all)")->check(CLI::PositiveNumber);
      sub.add_flag("--no-resume", o->no_resume, "recompute images whose outputs exist");
      sub.add_flag("--force-resume", o->force_resume, "resume even though OUT was made with other settings");
      sub.add_flag("--dry-run", o->dry_run, "check everything and list what would be done, without loading the model");
      add_runtime_options(sub, o->runtime);
      return [o]() { return run_tag(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

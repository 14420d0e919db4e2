// clipes segment — open-vocabulary masks with no image labels (MaskCLIP,
// NACLIP, CLIP-DINOiser; segment-spec §1–§4). Parses options, builds the
// segmenter, shows progress, writes OUT/run.json; the work is
// pipeline/segment.h on the batch machinery `generate` uses.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <opencv2/core/version.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>

#include "clipes/model/clip_model.h"
#include "clipes/pipeline/segment.h"
#include "clipes/segment/dense_segmenter.h"
#include "clipes/segment/guided_pooling.h"
#include "clipes/segment/segment_classes.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/prompt_ranking.h"
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

struct SegmentCli {
  std::string model, vocab, out, heads;
  InputOptions input;
  std::string classes;  // "a,b,c" | voc | coco | toy | FILE (default by format)
  std::string method = "naclip";
  std::string templates = "imagenet80";
  std::string label_ids = "consecutive";
  int resize_short = 0, window = 0, stride = 0, max_tokens = 2500;
  bool dry_run = false;
  bool value_only = false, save_cams = false, vis = false, no_resume = false, force_resume = false;
  int64_t max_pixels = kDefaultMaxPixels;
  std::string shard = "0/1";
  int64_t limit = -1;
  RuntimeOptions runtime;
};

ClassConfig resolve_segment_classes(const SegmentCli& o) {
  if (o.classes.find(',') != std::string::npos) return class_config_from_list(o.classes);
  const std::string name = o.classes.empty() ? (o.input.format == "coco" ? "coco" : "voc") : o.classes;
  return ClassConfig::resolve(name);
}

int run_segment(const SegmentCli& o) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  apply_runtime_options(o.runtime);

  // Everything that can be checked without the model first.
  const ClassConfig class_config = resolve_segment_classes(o);
  const ClassConfig::LabelIds ids = ClassConfig::parse_label_ids(o.label_ids);
  const SegmentClasses classes = SegmentClasses::from_class_config(class_config, ids);
  const std::vector<std::string> templates = resolve_templates(o.templates);
  SegmentConfig config;
  config.method = parse_segment_method(o.method);
  config.maskclip_residual = !o.value_only;
  config.resize_short = o.resize_short;
  config.window = o.window;
  config.stride = o.stride;
  config.max_tokens = o.max_tokens;
  if ((o.window > 0) != (o.stride > 0)) throw Error("--window and --stride go together");
  if (o.window > 0 && o.stride > o.window) throw Error("--stride must not exceed --window (pixels would be skipped)");
  if (config.method == SegmentMethod::Dinoiser && o.heads.empty())
    throw Error("--method dinoiser needs --heads FILE (CLIP-DINOiser's released checkpoints/last.pt)");
  SegmentRunOptions options;
  options.batch.out_dir = o.out;
  options.batch.shard = ShardSpec::parse(o.shard);
  options.batch.limit = o.limit;
  options.batch.resume = !o.no_resume;
  options.decode.max_pixels = o.max_pixels;
  options.save_scores = o.save_cams;
  options.vis = o.vis;
  const ModelOptions model_options = to_model_options(o.runtime);
  const std::vector<ImageRecord> records = read_input_records(o.input, /*labels_required=*/false);
  check_output_folder(o.out);
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);

  const std::string model_sha256 = sha256_file(o.model);
  nlohmann::json settings = {{"command", "segment"},
                             {"model_sha256", model_sha256},
                             {"vocab_sha256", sha256_file(o.vocab)},
                             {"class_set", nlohmann::json::parse(class_config.to_json_text())},
                             {"label_ids", o.label_ids},
                             {"method", to_string(config.method)},
                             {"heads_sha256", o.heads.empty() ? "" : sha256_file(o.heads)},
                             {"templates", nlohmann::json::array()},
                             {"maskclip_residual", config.maskclip_residual},
                             {"resize_short", o.resize_short},
                             {"window", o.window},
                             {"stride", o.stride},
                             {"max_tokens", o.max_tokens},
                             {"activation", o.runtime.activation},
                             {"precision", o.runtime.precision}};
  for (const auto& t : templates) settings["templates"].push_back(printable(t));
  const std::vector<std::string> accepted = check_resume_settings(o.out, settings, o.no_resume, o.force_resume, o.dry_run);
  if (o.dry_run) {
    print_dry_run("segment", records, options.batch,
                  [&](const std::string& id) { return SegmentPaths::for_stem(o.out, id).mask; });
    return 0;
  }
  const std::string started_at = now_utc_iso8601();

  spdlog::info("loading {} ({}, {})", printable(o.model), o.runtime.precision, o.runtime.device);
  auto model = ClipModel::load(o.model, model_options);
  check_vocab_fits_model(tokenizer, *model, o.vocab, o.model);
  std::shared_ptr<const DinoiserHeads> heads;
  if (config.method == SegmentMethod::Dinoiser)
    heads = std::make_shared<DinoiserHeads>(DinoiserHeads::load(o.heads, model->config().vision.width));
  const at::Tensor queries = TextEncoder(*model, tokenizer).encode_classes(classes.queries, templates);
  const DenseSegmenter segmenter(*model, queries, classes.query_class, classes.num_classes(), classes.background,
                                 config, heads);

  spdlog::info("{} images listed; {} with {} classes ({} queries, {} templates); writing to {}", records.size(),
               to_string(config.method), classes.num_classes(), classes.queries.size(), templates.size(),
               printable(o.out));
  ProgressBar bar("segment");
  const BatchSummary s = segment_images(segmenter, classes, records, options, [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();

  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  nlohmann::json run = batch_run_record("segment", o.model, settings,
                                        {{"logit_scale", segmenter.logit_scale()},
                                         {"max_pixels", o.max_pixels},
                                         {"save_cams", o.save_cams},
                                         {"vis", o.vis},
                                         {"device", o.runtime.device},
                                         {"threads", torch::get_num_threads()},
                                         {"shard", o.shard},
                                         {"limit", o.limit}},
                                        o.input, records.size(), s, wall);
  run["model"]["activation"] = to_string(model->config().activation);
  put_bytes(run["config"], "classes", o.classes);
  put_bytes(run["config"], "heads", o.heads);
  return finish_batch_run("segment", o.out, options.batch.shard, o.shard, std::move(run), records, o.vocab, started_at,
                          accepted, s, !o.input.image.empty());
}

const bool registered = register_command({
    "segment", "open-vocabulary masks without image labels (MaskCLIP, NACLIP, CLIP-DINOiser)", [](CLI::App& sub) {
      auto o = std::make_shared<SegmentCli>();
      sub.add_option("--model", o->model, "CLIP checkpoint (OpenAI .pt, state dict, safetensors)")->required();
      sub.add_option("--vocab", o->vocab, "BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)")->required();
      sub.add_option("--out", o->out, "output folder (masks/, confidence/, cams/, vis/, run.json)")->required();
      add_input_options(sub, o->input, /*with_labels=*/false);
      sub.add_option("--classes", o->classes,
                     "class names \"dog,grass,other\", or a class set voc | coco | toy | FILE (default by format)");
      sub.add_option("--method", o->method, "maskclip | naclip | dinoiser")
          ->check(CLI::IsMember({"maskclip", "naclip", "dinoiser"}))
          ->capture_default_str();
      sub.add_option("--heads", o->heads, "CLIP-DINOiser heads (its checkpoints/last.pt), for --method dinoiser");
      sub.add_option("--templates", o->templates, "imagenet80 | a file of templates | one template with {}")
          ->capture_default_str();
      sub.add_option("--resize-short", o->resize_short, "resize the short side to N px first (0 = no resize)")
          ->check(CLI::NonNegativeNumber);
      sub.add_option("--window", o->window, "sliding-window size S in px (with --stride)")->check(CLI::NonNegativeNumber);
      sub.add_option("--stride", o->stride, "sliding-window stride T in px")->check(CLI::NonNegativeNumber);
      sub.add_flag("--dry-run", o->dry_run, "check everything and list what would be done, without loading the model");
      sub.add_flag("--value-only", o->value_only, "MaskCLIP/DINOiser: the value path without residual and FFN");
      sub.add_option("--label-ids", o->label_ids, "consecutive (0..C) | dataset (the class file's ids)")
          ->check(CLI::IsMember({"consecutive", "dataset", "coco"}))
          ->capture_default_str();
      sub.add_flag("--save-cams", o->save_cams, "also write the method's scores (cams/<stem>_scores.npy, float16)");
      sub.add_flag("--vis", o->vis, "also write contact sheets OUT/vis/<stem>.jpg");
      sub.add_option("--max-tokens", o->max_tokens, "whole-image mode: cap on the patch grid h·w (0 = none)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
      add_max_pixels_option(sub, o->max_pixels);
      sub.add_option("--shard", o->shard, "i/N: process the i-th of N deterministic shards")->capture_default_str();
      sub.add_option("--limit", o->limit, "at most this many images, N ≥ 1 (default: all)")->check(CLI::PositiveNumber);
      sub.add_flag("--no-resume", o->no_resume, "recompute images whose outputs exist (and record the new settings)");
      sub.add_flag("--force-resume", o->force_resume,
                   "resume even though OUT was made with other settings (existing outputs are kept)");
      add_runtime_options(sub, o->runtime);
      return [o]() { return run_segment(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

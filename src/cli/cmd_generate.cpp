// clipes generate — pseudo masks for one image (--image + --labels) or a whole
// dataset (--dataset + --format). Parses options, builds the pipeline, shows
// progress, writes OUT/run.json; the work is pipeline/generate.h.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <opencv2/core/version.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "clipes/data/dataset.h"
#include "clipes/data/safe_path.h"
#include "clipes/io/indexed_png.h"
#include "clipes/model/clip_model.h"
#include "clipes/pipeline/tag.h"
#include "clipes/text/text_features.h"
#include "clipes/pipeline/generate.h"
#include "clipes/pipeline/run_settings.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/json_text.h"
#include "clipes/util/strings.h"
#include "clipes/io/image_decode.h"
#include "batch_command.h"
#include "command.h"
#include "progress_bar.h"

namespace clipes::cli {
namespace {

struct GenerateCli : BatchCli {
  std::string classes;  // voc | coco | toy | FILE (default: by format)
  std::vector<std::string> templates;
  std::string synonyms = "joint";
  double box_threshold = -1;  // <0: the class file's
  double bg_power = 1.0;
  double bg_threshold = -1;  // <0: (1 − max)^α
  std::string mask_mode = "palette";
  std::string cam_format = "npy";
  double ignore_below = 0.0;
  std::string label_ids = "consecutive";
  bool save_cams = false, vis = false, no_caa = false, no_softmax = false;
};

int run_generate(const GenerateCli& o) {
  using Clock = std::chrono::steady_clock;
  BatchCommand command("generate", o);

  // Everything that can be checked without the model is checked first: a
  // typo must not cost a model load.
  std::string class_name = o.classes;
  if (class_name.empty()) class_name = o.input.format == "coco" ? "coco" : "voc";
  const ClassConfig classes = ClassConfig::resolve(class_name);
  ClipEsConfig es_config = clip_es_config_for(classes);
  if (!o.templates.empty()) es_config.templates = o.templates;
  for (const auto& t : es_config.templates) fill_template(t, "x");
  es_config.synonyms = parse_synonym_mode(o.synonyms);
  if (o.box_threshold >= 0) es_config.box_threshold = o.box_threshold;
  es_config.max_tokens = o.max_tokens;
  es_config.refine = !o.no_caa;
  es_config.use_softmax = !o.no_softmax;
  // --cam-format clip-es asks for CAMs in that layout: it implies --save-cams.
  const bool save_cams = o.save_cams || o.cam_format == "clip-es";
  es_config.keep_unrefined = save_cams || o.vis;  // only they show the unrefined CAMs

  GenerateOptions options;
  options.batch = command.batch_options();
  options.mask.bg_power = o.bg_power;
  options.mask.bg_threshold = o.bg_threshold;
  options.write.palette = o.mask_mode == "palette";
  options.mask.ignore_below = o.ignore_below;
  options.write.save_cams = save_cams;
  options.write.cam_format = parse_cam_format(o.cam_format);
  options.label_ids = ClassConfig::parse_label_ids(o.label_ids);
  options.decode.max_pixels = o.max_pixels;
  (void)to_model_options(o.runtime);  // a bad --precision fails before any file is read

  // --labels auto: the labels are predicted (TagCLIP) once the model is loaded.
  const bool labels_auto = o.input.labels == "auto";
  std::vector<ImageRecord> records = read_input_records(o.input, /*labels_required=*/true);
  // One image: an unknown label is the user's typo, so fail now with the list.
  if (!o.input.image.empty() && !labels_auto) classes.resolve_labels(records[0].labels);
  if (!labels_auto) check_labels_match_class_set(records, classes, o.classes);
  const std::vector<std::string> tag_templates =
      labels_auto ? resolve_templates("tagclip85") : std::vector<std::string>{};
  check_output_folder(o.out);
  if (labels_auto) check_tag_summaries_are_ours(o.out);
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);

  // Everything that changes an output byte; a resume must have made its
  // outputs with exactly these (pipeline/run_settings.h).
  nlohmann::json settings = command.common_settings();
  settings.update(nlohmann::json{{"class_set", nlohmann::json::parse(classes.to_json_text())},
                                 {"templates", nlohmann::json::array()},
                                 {"synonyms", o.synonyms},
                                 {"box_threshold", es_config.box_threshold},
                                 {"bg_power", o.bg_power},
                                 {"bg_threshold", o.bg_threshold},
                                 {"mask_mode", o.mask_mode},
                                 {"ignore_below", o.ignore_below},
                                 {"label_ids", o.label_ids},
                                 {"caa", es_config.refine},
                                 {"softmax", es_config.use_softmax}});
  // Predicted labels change every output; the tagger's settings are those of `clipes tag`'s defaults.
  if (labels_auto) settings["labels"] = {{"source", "auto (TagCLIP)"}, {"templates", "tagclip85"}, {"threshold", 0.5}};
  // Only a non-default layout enters the settings, so runs made before the
  // option existed still resume.
  if (options.write.cam_format != CamFormat::Npy) settings["cam_format"] = o.cam_format;
  // generate's settings.json had no activation before (a resume with another
  // --activation went through): recorded when given, so older folders, made
  // without it, still resume.
  if (o.runtime.activation.empty()) settings.erase("activation");
  // A template from the command line need not be UTF-8 (util/json_text.h).
  for (const auto& t : es_config.templates) settings["templates"].push_back(printable(t));
  if (!command.check_settings(settings, records, options.batch,
                              [&](const std::string& id) { return MaskOutputPaths::for_stem(o.out, id).mask; },
                              /*needs_labels=*/!labels_auto))
    return 0;

  const auto model = command.load_model(tokenizer);
  const ClipEs clip_es(*model, tokenizer, es_config);

  nlohmann::json predicted_labels = nlohmann::json::object();
  if (labels_auto) {
    // The label-free route: TagCLIP's tags, then CLIP-ES on them. Tags are
    // kept in OUT/tags/ (reused on resume) and summarised in tags.jsonl and
    // labels.json, as `clipes tag` writes them.
    ProgressBar tag_bar("tag");
    const auto tag_start = Clock::now();
    const std::vector<ImageTags> tags = label_records_with_tags(
        *model, tokenizer, classes, tag_templates, records, options.batch, options.decode, o.max_tokens,
        [&](size_t done, size_t total) {
          tag_bar.update({static_cast<int64_t>(done), static_cast<int64_t>(total), 0, 0,
                          std::chrono::duration<double>(Clock::now() - tag_start).count()});
        });
    tag_bar.finish();
    for (const auto& t : tags) predicted_labels[printable(t.id)] = t.tags;
    spdlog::info("predicted labels for {} images (OUT/labels.json)", tags.size());
  }

  options.vis = o.vis;

  spdlog::info("{} images listed; writing to {}", records.size(), printable(o.out));
  ProgressBar bar("generate");
  const GenerateStats stats = generate_masks(clip_es, classes, records, options,
                                             [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();

  const BatchSummary& s = stats.batch;
  const double per_image = stats.images_computed ? 1.0 / stats.images_computed : 0.0;
  // run.json's config: the settings that made the outputs, then the ones that did not.
  nlohmann::json run = command.run_record(settings, {{"save_cams", save_cams}, {"vis", o.vis}}, records, s);
  put_bytes(run["config"], "classes", class_name);
  run["stage_ms_mean"] = {{"preprocess", stats.stage_ms_sum.preprocess_ms * per_image},
                          {"trunk", stats.stage_ms_sum.trunk_ms * per_image},
                          {"last_block_and_gradients", stats.stage_ms_sum.last_block_ms * per_image},
                          {"affinity", stats.stage_ms_sum.affinity_ms * per_image},
                          {"resize", stats.stage_ms_sum.resize_ms * per_image}};
  if (labels_auto) run["predicted_labels"] = predicted_labels;
  return command.finish(std::move(run), records, s);
}

const bool registered = register_command({
    "generate", "pseudo masks (+ confidence, CAMs) for an image or a dataset", [](CLI::App& sub) {
      auto o = std::make_shared<GenerateCli>();
      add_batch_input_options(sub, *o, "masks/, confidence/, cams/, run.json", /*with_labels=*/true);
      sub.add_option("--classes", o->classes, "class file: voc, coco, toy or a JSON path (default by format)");
      sub.add_option("--template", o->templates, "prompt template(s) with {} (default: the class file's)");
      sub.add_option("--synonyms", o->synonyms, "joint (reference) | average (paper)")->capture_default_str();
      sub.add_option("--box-threshold", o->box_threshold, "CAA box threshold θ in [0, 1] (default: the class file's)")
          ->check(CLI::Range(0.0, 1.0));
      sub.add_option("--bg-power", o->bg_power, "background score (1 − max CAM)^α, α > 0")
          ->check(positive_real())
          ->capture_default_str();
      sub.add_option("--bg-threshold", o->bg_threshold,
                     "constant background score c in [0, 1] instead of (1 − max)^α: the \"constant c\" "
                     "that eval --cams reports")
          ->check(CLI::Range(0.0, 1.0));
      sub.add_option("--mask-mode", o->mask_mode, "palette (VOC colours) | grey (plain 8-bit ids, for OpenCV readers)")
          ->check(CLI::IsMember({"palette", "grey"}))
          ->capture_default_str();
      sub.add_option("--ignore-below", o->ignore_below, "write 255 where confidence < τ, τ in [0, 1]")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
      sub.add_option("--label-ids", o->label_ids, "consecutive (0..C) | dataset (e.g. COCO category ids)")
          ->capture_default_str();
      sub.add_flag("--save-cams", o->save_cams, "also write CAMs and refined CAMs (float16 .npy)");
      sub.add_option("--cam-format", o->cam_format,
                     "layout of --save-cams: npy (<stem>_cam/_refined/_keys.npy) | clip-es (one pickled "
                     "<stem>.npy dict, what the official eval_cam.py reads; implies --save-cams)")
          ->check(CLI::IsMember({"npy", "clip-es"}))
          ->capture_default_str();
      sub.add_flag("--vis", o->vis, "also write contact sheets OUT/vis/<stem>.jpg (image, CAMs, refined, mask)");
      sub.add_flag("--no-caa", o->no_caa, "skip the attention-affinity refinement (ablation)");
      sub.add_flag("--no-softmax", o->no_softmax, "plain GradCAM on logits (ablation)");
      add_batch_run_options(sub, *o);
      return [o]() {
        o->vocab = vocab_or_beside_model(o->vocab, o->model);
        return run_generate(*o);
      };
    }});

}  // namespace
}  // namespace clipes::cli

// clipes segment — open-vocabulary masks with no image labels (MaskCLIP,
// NACLIP, CLIP-DINOiser, or any registered dense method; segment-spec §1–§4).
// Parses options, builds the segmenter, shows progress, writes OUT/run.json;
// the work is pipeline/segment.h on the batch machinery `generate` uses. The
// methods, their parameters and --method's help come from the registry
// (methods/dense_method.h): a new method changes nothing here.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <opencv2/core/version.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>

#include "clipes/io/mask_writer.h"
#include "clipes/model/clip_model.h"
#include "clipes/pipeline/segment.h"
#include "clipes/methods/dense_method.h"
#include "clipes/methods/dense_segmenter.h"
#include "clipes/methods/lseg_segmenter.h"
#include "clipes/model/lseg_model.h"
#include "clipes/methods/segment_classes.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/prompt_ranking.h"
#include "clipes/text/text_features.h"
#include "clipes/util/error.h"
#include "clipes/util/json_text.h"
#include "clipes/util/sha256.h"
#include "clipes/util/strings.h"
#include "batch_command.h"
#include "lseg_options.h"
#include "command.h"
#include "progress_bar.h"

namespace clipes::cli {
namespace {

struct SegmentCli : BatchCli {
  std::string heads;
  std::string classes;  // "a,b,c" | voc | coco | toy | FILE (default by format)
  std::string background;  // --background "grass,sky": class 0's words (replace the set's own)
  std::string method = "naclip";
  std::vector<std::string> params;  // --set KEY=VALUE
  std::string templates = "imagenet80";
  std::string label_ids = "consecutive";
  std::string cam_format = "npy";
  double bg_threshold = -1;  // <0: the method's own background
  int resize_short = 0, window = 0, stride = 0;
  bool value_only = false, save_cams = false, vis = false;
  LsegFlags lseg;  // LSeg only (its own network, methods/lseg_segmenter.h)
};

// LSeg's flags (lseg_options.h) plus the CLIP-trunk flags it must refuse.
LsegCli lseg_options(const SegmentCli& o, CLI::App* app) {
  for (const char* flag : {"--heads", "--value-only", "--window", "--stride", "--resize-short", "--templates"})
    if (app->get_option_no_throw(flag) && app->get_option_no_throw(flag)->count() > 0)
      throw Error(std::string(flag) + " is for the CLIP-trunk methods; LSeg reads its labels raw and runs its own "
                                      "evaluator (--scales, --flip, --single-forward)");
  if (o.runtime.device != "cpu" || (o.runtime.precision != "fp32" && o.runtime.precision != "bf16"))
    throw Error("--method lseg runs on the CPU in fp32 or bf16 for now (--device cpu, --precision fp32|bf16)");
  return parse_lseg_cli(o.lseg, o.params, o.bg_threshold);
}

// The method's parameters: --set KEY=VALUE, plus the flags that spell two of
// them (--heads FILE, --value-only), for the methods that declare them.
struct MethodParams {
  std::map<std::string, std::string> all;  // --set and the flags: what the method is built with
  // The --set values off the method's defaults, for settings.json. heads and
  // residual are left out: they have keys of their own there, however spelled.
  nlohmann::json recorded;
};

MethodParams method_params(const SegmentCli& o, const DenseMethodInfo& method) {
  std::map<std::string, std::string> given;  // --set only
  for (const std::string& kv : o.params) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--set " + printable(kv) + ": expected KEY=VALUE");
    if (!given.emplace(kv.substr(0, eq), kv.substr(eq + 1)).second)
      throw Error("--set " + printable(kv.substr(0, eq)) + " given twice");
  }
  MethodParams p;
  p.all = given;
  auto declares = [&](const std::string& key) {
    for (const auto& d : method.params)
      if (d.key == key) return true;
    return false;
  };
  auto sugar = [&](const char* flag, const std::string& key, bool used, const std::string& value) {
    if (!used || !declares(key)) return;
    if (given.count(key)) throw Error(std::string(flag) + " and --set " + key + " say the same thing: give one");
    p.all[key] = value;
  };
  sugar("--heads", "heads", !o.heads.empty(), o.heads);
  sugar("--value-only", "residual", o.value_only, "false");
  for (const auto& d : method.params)
    if (d.required && p.all[d.key].empty())
      throw Error("--method " + method.name + " needs " + (d.key == "heads" ? "--heads FILE" : "--set " + d.key + "=…") +
                  " (" + d.help + ")");
  // Unknown keys are the registry's to reject, with the method's list (an
  // undeclared heads or residual included: only declared ones are dropped).
  for (const char* own_key : {"heads", "residual"})
    if (declares(own_key)) given.erase(own_key);
  p.recorded = non_default_params(method.name, given);
  return p;
}

std::string method_help() {
  std::string help = "dense method:";
  help += std::string("\n  ") + kLsegMethod +
          ": LSeg's own network from its checkpoint (--model demo_e200.ckpt; --scales, --flip, "
          "--single-forward)\n      vit_heads  ViT attention heads (default width/64)";
  for (const DenseMethodInfo* m : dense_methods()) {
    help += "\n  " + m->name + ": " + m->summary;
    for (const auto& p : m->params)
      help += "\n      " + p.key + (p.default_value.empty() ? "" : "=" + p.default_value) + "  " + p.help;
  }
  return help + "\n(parameters: --set KEY=VALUE)";
}

ClassConfig resolve_segment_classes(const SegmentCli& o) {
  const std::string name = o.classes.empty() ? (o.input.format == "coco" ? "coco" : "voc") : o.classes;
  ClassConfig config =
      o.classes.find(',') != std::string::npos ? class_config_from_list(o.classes) : ClassConfig::resolve(name);
  return o.background.empty() ? config : with_background_words(std::move(config), o.background);
}

int run_segment(const SegmentCli& o, CLI::App* app) {
  BatchCommand command("segment", o);

  // Everything that can be checked without the model first.
  const ClassConfig class_config = resolve_segment_classes(o);
  const ClassConfig::LabelIds ids = ClassConfig::parse_label_ids(o.label_ids);
  const SegmentClasses classes = SegmentClasses::from_class_config(class_config, ids);
  const bool lseg = o.method == kLsegMethod;
  const std::optional<LsegCli> lseg_cli = lseg ? std::optional<LsegCli>(lseg_options(o, app)) : std::nullopt;
  if (!lseg && lseg_flags_given(o.lseg))
    throw Error("--scales, --flip and --single-forward are LSeg's evaluator (--method lseg)");
  // LSeg reads each label raw (lseg-spec §5): no templates.
  const std::vector<std::string> templates = lseg ? std::vector<std::string>{} : resolve_templates(o.templates);
  const DenseMethodInfo& method = find_dense_method(lseg ? "maskclip" : o.method);  // lseg: only for the CLIP-side keys below
  const MethodParams params = lseg ? MethodParams{} : method_params(o, method);
  SegmentConfig config;
  config.resize_short = o.resize_short;
  config.window = o.window;
  config.stride = o.stride;
  config.max_tokens = o.max_tokens;
  config.bg_threshold = o.bg_threshold;
  if ((o.window > 0) != (o.stride > 0)) throw Error("--window and --stride go together");
  if (o.window > 0 && o.stride > o.window) throw Error("--stride must not exceed --window (pixels would be skipped)");
  SegmentRunOptions options;
  options.batch = command.batch_options();
  options.decode.max_pixels = o.max_pixels;
  // --cam-format clip-es asks for saved maps in that layout: it implies --save-cams, as in generate.
  options.cam_format = parse_cam_format(o.cam_format);
  options.save_scores = o.save_cams || options.cam_format == CamFormat::ClipEs;
  options.vis = o.vis;
  (void)to_model_options(o.runtime);  // a bad --precision fails before any file is read
  const std::vector<ImageRecord> records = read_input_records(o.input, /*labels_required=*/false);
  check_output_folder(o.out);
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);

  // The keys settings.json has always had for the heads file and MaskCLIP's
  // residual, whether they came from --heads/--value-only or --set.
  const std::string heads = params.all.count("heads") ? params.all.at("heads") : "";
  const bool residual = lseg                          ? false
                        : params.all.count("residual") ? DenseMethodArgs(method.name, params.all, 0).flag("residual")
                                                       : !o.value_only;
  nlohmann::json settings = command.common_settings();
  settings.update(nlohmann::json{{"command", "segment"},
                                 {"class_set", nlohmann::json::parse(class_config.to_json_text())},
                                 {"label_ids", o.label_ids},
                                 {"method", lseg ? std::string(kLsegMethod) : method.name},
                                 {"heads_sha256", heads.empty() ? "" : sha256_file(heads)},
                                 {"templates", nlohmann::json::array()},
                                 {"maskclip_residual", residual},
                                 {"resize_short", o.resize_short},
                                 {"window", o.window},
                                 {"stride", o.stride}});
  for (const auto& t : templates) settings["templates"].push_back(printable(t));
  // Only parameters moved off their defaults, so earlier OUT folders resume.
  if (!params.recorded.empty()) settings["method_params"] = params.recorded;
  if (lseg) {
    if (!lseg_cli->recorded.empty()) settings["method_params"] = lseg_cli->recorded;
    settings["lseg"] = {{"single_forward", o.lseg.single_forward},
                        {"scales", lseg_cli->options.evaluator.scales},
                        {"flip", o.lseg.flip},
                        {"base_size", lseg_cli->options.evaluator.base_size},
                        {"crop_size", lseg_cli->options.evaluator.crop_size}};
  }
  // Likewise only when given: both change the outputs.
  if (o.bg_threshold >= 0) settings["bg_threshold"] = o.bg_threshold;
  if (options.cam_format != CamFormat::Npy) settings["cam_format"] = o.cam_format;
  if (!command.check_settings(settings, records, options.batch,
                              [&](const std::string& id) { return SegmentPaths::for_stem(o.out, id).mask; }))
    return 0;

  std::shared_ptr<ClipModel> model;
  std::unique_ptr<LsegModel> lseg_model;
  std::unique_ptr<ImageSegmenter> segmenter;
  if (lseg) {
    spdlog::info("loading {} (LSeg, {}, cpu)", printable(o.model), o.runtime.precision);
    lseg_model = std::make_unique<LsegModel>(LsegModel::load(o.model, lseg_cli->settings, to_model_options(o.runtime)));
    std::vector<int64_t> ids;
    for (const std::string& q : classes.queries) {
      const std::vector<int64_t> t = tokenizer.encode_for_model(q, 77);
      ids.insert(ids.end(), t.begin(), t.end());
    }
    const at::Tensor tokens =
        torch::tensor(ids, torch::kLong).view({static_cast<int64_t>(classes.queries.size()), 77});
    segmenter = std::make_unique<LsegSegmenter>(*lseg_model, lseg_model->encode_text(tokens), classes.query_class,
                                                classes.num_classes(), classes.background, lseg_cli->options);
  } else {
    model = command.load_model(tokenizer);
    std::shared_ptr<const DenseMethod> dense_method =
        create_dense_method(method.name, params.all, model->config().vision.width);
    const at::Tensor queries = TextEncoder(*model, tokenizer).encode_classes(classes.queries, templates);
    segmenter = std::make_unique<DenseSegmenter>(*model, dense_method, queries, classes.query_class,
                                                 classes.num_classes(), classes.background, config);
  }

  spdlog::info("{} images listed; {} with {} classes ({} queries, {} templates); writing to {}", records.size(),
               lseg ? kLsegMethod : method.name, classes.num_classes(), classes.queries.size(), templates.size(),
               printable(o.out));
  ProgressBar bar("segment");
  const SegmentStats stats =
      segment_images(*segmenter, classes, records, options, [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();
  const BatchSummary& s = stats.batch;

  // logit_scale and scores_channels: how eval --cams turns saved scores into
  // class probabilities (io/saved_cams.h SavedScoreRule).
  nlohmann::json run = command.run_record(
      settings,
      {{"logit_scale", segmenter->logit_scale()},
       {"scores_channels", segmenter->channels_per_query() ? "query_cosines" : "class_probabilities"},
       {"save_cams", options.save_scores},
       {"vis", o.vis}},
      records, s);
  const double per_image = stats.images_computed ? 1.0 / stats.images_computed : 0.0;
  run["stage_ms_mean"] = {{"preprocess", stats.stage_ms_sum.preprocess_ms * per_image},
                          {"forward", stats.stage_ms_sum.forward_ms * per_image},
                          {"upsample_and_labels", stats.stage_ms_sum.upsample_ms * per_image}};
  if (model) run["model"]["activation"] = to_string(model->config().activation);
  put_bytes(run["config"], "classes", o.classes);
  put_bytes(run["config"], "heads", heads);
  return command.finish(std::move(run), records, s);
}

const bool registered = register_command({
    "segment", "open-vocabulary masks without image labels (MaskCLIP, NACLIP, CLIP-DINOiser)", [](CLI::App& sub) {
      auto o = std::make_shared<SegmentCli>();
      add_batch_input_options(sub, *o, "masks/, confidence/, cams/, vis/, run.json", /*with_labels=*/false);
      sub.add_option("--classes", o->classes,
                     "class names \"dog,grass,other\", or a class set voc | coco | toy | FILE (default by format)");
      sub.add_option("--background", o->background,
                     "words that all mean background, \"grass,sky\": one class written as 0 (replaces the class "
                     "set's own background words)");
      sub.add_option("--method", o->method, method_help())
          ->check([](const std::string& name) {
            if (name == kLsegMethod) return std::string();
            try {
              find_dense_method(name);
              return std::string();
            } catch (const Error& e) {
              return std::string(e.what());
            }
          })
          ->capture_default_str();
      sub.add_option("--set", o->params, "a parameter of the method, KEY=VALUE (repeatable; keys in --method's help)");
      sub.add_option("--heads", o->heads, "CLIP-DINOiser heads (its checkpoints/last.pt): --set heads=FILE");
      sub.add_option("--templates", o->templates, "imagenet80 | a file of templates | one template with {}")
          ->capture_default_str();
      sub.add_option("--resize-short", o->resize_short, "resize the short side to N px first (0 = no resize)")
          ->check(count_at_least(0));
      sub.add_option("--window", o->window, "sliding-window size S in px (with --stride)")->check(count_at_least(0));
      sub.add_option("--stride", o->stride, "sliding-window stride T in px")->check(count_at_least(0));
      sub.add_flag("--value-only", o->value_only, "MaskCLIP/DINOiser: the value path without residual and FFN (--set residual=false)");
      sub.add_option("--label-ids", o->label_ids, "consecutive (0..C) | dataset (the class file's ids)")
          ->check(CLI::IsMember({"consecutive", "dataset", "coco"}))
          ->capture_default_str();
      sub.add_flag("--save-cams", o->save_cams, "also write the method's scores (cams/<stem>_scores.npy, float16)");
      sub.add_option("--cam-format", o->cam_format,
                     "layout of --save-cams: npy (<stem>_scores/_keys.npy at the scoring grid) | clip-es (one "
                     "pickled <stem>.npy dict of class probabilities, what the official eval_cam.py reads; "
                     "implies --save-cams)")
          ->check(CLI::IsMember({"npy", "clip-es"}))
          ->capture_default_str();
      sub.add_option("--bg-threshold", o->bg_threshold,
                     "background where the best non-background class probability is <= c, c in [0, 1], instead "
                     "of the method's own rule: the \"constant c\" that eval --cams reports")
          ->check(CLI::Range(0.0, 1.0));
      sub.add_flag("--vis", o->vis, "also write contact sheets OUT/vis/<stem>.jpg");
      add_lseg_flags(sub, o->lseg);
      add_batch_run_options(sub, *o);
      return [o, &sub]() {
        o->vocab = vocab_or_beside_model(o->vocab, o->model);
        return run_segment(*o, &sub);
      };
    }});

}  // namespace
}  // namespace clipes::cli

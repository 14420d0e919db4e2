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
#include "clipes/io/contact_sheet.h"
#include "clipes/io/indexed_png.h"
#include "clipes/model/clip_model.h"
#include "clipes/pipeline/generate.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/sha256.h"
#include "clipes/util/strings.h"
#include "command.h"
#include "progress_bar.h"

namespace clipes::cli {
namespace {

struct GenerateCli {
  std::string model, vocab, out;
  // one image
  std::string image, labels;
  // a dataset
  std::string dataset, format, split = "train", list, labels_file, images_dir;
  std::string classes;  // voc | coco | toy | FILE (default: by format)
  std::vector<std::string> templates;
  std::string synonyms = "joint";
  double box_threshold = -1;  // <0: the class file's
  double bg_power = 1.0;
  double ignore_below = 0.0;
  std::string label_ids = "consecutive";
  bool save_cams = false, vis = false, no_resume = false, no_caa = false, no_softmax = false;
  int max_tokens = 2500;
  std::string shard = "0/1";
  int64_t limit = -1;
  RuntimeOptions runtime;
};

std::vector<ImageRecord> read_records(const GenerateCli& o) {
  if (!o.image.empty()) {
    if (!o.dataset.empty()) throw Error("--image and --dataset are exclusive");
    if (o.labels.empty()) throw Error("--image needs --labels \"class,class\"");
    const std::string stem = std::filesystem::path(o.image).stem().string();
    return {ImageRecord{safe_stem(stem, o.image), o.image, split_comma_list(o.labels)}};
  }
  if (o.dataset.empty()) throw Error("give --image I --labels L, or --dataset DIR --format voc|coco|folder");
  return read_dataset({o.dataset, o.format, o.split, o.list, o.labels_file, o.images_dir});
}

int run_generate(const GenerateCli& o) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  apply_runtime_options(o.runtime);

  std::string class_name = o.classes;
  if (class_name.empty()) class_name = o.format == "coco" ? "coco" : "voc";
  const ClassConfig classes = ClassConfig::resolve(class_name);

  std::vector<ImageRecord> records = read_records(o);
  // One image: an unknown label is the user's typo, so fail now with the list.
  if (!o.image.empty()) classes.resolve_labels(records[0].labels);

  const ModelOptions model_options = to_model_options(o.runtime);
  spdlog::info("loading {} ({}, {})", o.model, o.runtime.precision, o.runtime.device);
  auto model = ClipModel::load(o.model, model_options);
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);

  ClipEsConfig es_config = clip_es_config_for(classes);
  if (!o.templates.empty()) es_config.templates = o.templates;
  es_config.synonyms = parse_synonym_mode(o.synonyms);
  if (o.box_threshold >= 0) es_config.box_threshold = o.box_threshold;
  es_config.max_tokens = o.max_tokens;
  es_config.refine = !o.no_caa;
  es_config.use_softmax = !o.no_softmax;
  const ClipEs clip_es(*model, tokenizer, es_config);

  GenerateOptions options;
  options.batch.out_dir = o.out;
  options.batch.shard = ShardSpec::parse(o.shard);
  options.batch.limit = o.limit;
  options.batch.resume = !o.no_resume;
  options.mask.bg_power = o.bg_power;
  options.mask.ignore_below = o.ignore_below;
  options.write.save_cams = o.save_cams;
  options.label_ids = ClassConfig::parse_label_ids(o.label_ids);
  if (o.vis) {
    // Contact sheets from the in-memory CAMs (full float32, no --save-cams
    // needed). Written after the mask, so a run killed in between has no sheet
    // for that image; `clipes visualize` can redo it from saved CAMs.
    const std::vector<std::string> names_by_id = classes.names_by_mask_value(options.label_ids);
    const std::filesystem::path vis_dir = std::filesystem::path(o.out) / "vis";
    options.after_write = [&classes, names_by_id, vis_dir](const ImageRecord& record, const cv::Mat& rgb,
                                                            const ClipEsResult& result, const PseudoMask& mask) {
      std::vector<std::string> label_names;
      for (int c : result.class_indices) label_names.push_back(classes.classes[static_cast<size_t>(c)].name);
      write_contact_sheet((vis_dir / (record.id + ".jpg")).string(), rgb, label_names, result.cams,
                          result.refined, mask.labels, names_by_id, voc_palette());
    };
  }

  spdlog::info("{} images listed; writing to {}", records.size(), o.out);
  ProgressBar bar("generate");
  const GenerateStats stats = generate_masks(clip_es, classes, records, options,
                                             [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();

  const BatchSummary& s = stats.batch;
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double per_image = stats.images_computed ? 1.0 / stats.images_computed : 0.0;
  nlohmann::json run = {
      {"clipes_version", CLIPES_VERSION},
      {"libtorch_version", TORCH_VERSION},
      {"opencv_version", CV_VERSION},
      {"command", "generate"},
      {"model", {{"path", o.model}, {"sha256", sha256_file(o.model)}}},
      {"vocab", o.vocab},
      {"input", o.image.empty() ? nlohmann::json{{"dataset", o.dataset}, {"format", o.format}, {"split", o.split}, {"list", o.list}}
                                : nlohmann::json{{"image", o.image}, {"labels", o.labels}}},
      {"config", {{"classes", class_name},
                  {"templates", es_config.templates},
                  {"synonyms", o.synonyms},
                  {"box_threshold", es_config.box_threshold},
                  {"bg_power", o.bg_power},
                  {"ignore_below", o.ignore_below},
                  {"label_ids", o.label_ids},
                  {"caa", es_config.refine},
                  {"softmax", es_config.use_softmax},
                  {"max_tokens", o.max_tokens},
                  {"save_cams", o.save_cams},
                  {"vis", o.vis},
                  {"precision", o.runtime.precision},
                  {"device", o.runtime.device},
                  {"threads", torch::get_num_threads()},
                  {"shard", o.shard},
                  {"limit", o.limit}}},
      {"counts", {{"listed", records.size()}, {"selected", s.selected}, {"processed", s.processed},
                  {"failed", s.failed}, {"skipped_complete", s.skipped}}},
      {"timings_s", {{"wall", wall}, {"batch_wall", s.wall_s}, {"decode", s.decode_s},
                     {"compute", s.compute_s}, {"write", s.write_s}}},
      {"stage_ms_mean", {{"preprocess", stats.stage_ms_sum.preprocess_ms * per_image},
                         {"trunk", stats.stage_ms_sum.trunk_ms * per_image},
                         {"last_block_and_gradients", stats.stage_ms_sum.last_block_ms * per_image},
                         {"affinity", stats.stage_ms_sum.affinity_ms * per_image},
                         {"resize", stats.stage_ms_sum.resize_ms * per_image}}}};
  const std::string run_name = options.batch.shard.count > 1
                                   ? "run.shard-" + std::to_string(options.batch.shard.index) + "-of-" +
                                         std::to_string(options.batch.shard.count) + ".json"
                                   : "run.json";
  write_file_atomic((std::filesystem::path(o.out) / run_name).string(), run.dump(2) + "\n");

  const double rate = s.wall_s > 0 ? static_cast<double>(s.processed - s.failed) / s.wall_s : 0.0;
  spdlog::info("done: {} written, {} failed, {} already complete, {:.1f} s ({:.2f} images/s)",
               s.processed - s.failed, s.failed, s.skipped, s.wall_s, rate);
  if (s.failed > 0)
    spdlog::warn("{} images failed; reasons in {}/failures*.jsonl", s.failed, o.out);
  // Partial failure is not fatal: exit 0 unless nothing could be produced.
  return (s.failed > 0 && s.failed == s.processed) ? 1 : 0;
}

const bool registered = register_command({
    "generate", "pseudo masks (+ confidence, CAMs) for an image or a dataset", [](CLI::App& sub) {
      auto o = std::make_shared<GenerateCli>();
      sub.add_option("--model", o->model, "CLIP checkpoint (OpenAI .pt, state dict, safetensors)")->required();
      sub.add_option("--vocab", o->vocab, "BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)")->required();
      sub.add_option("--out", o->out, "output folder (masks/, confidence/, cams/, run.json)")->required();
      auto* image = sub.add_option("--image", o->image, "one image file");
      sub.add_option("--labels", o->labels, "its labels, comma-separated (with --image)");
      auto* dataset = sub.add_option("--dataset", o->dataset, "dataset root (or COCO json)");
      sub.add_option("--format", o->format, "voc | coco | folder")->capture_default_str();
      sub.add_option("--split", o->split, "VOC split list (ImageSets/Segmentation/<split>.txt)")->capture_default_str();
      sub.add_option("--list", o->list, "file of image ids to process (VOC)");
      sub.add_option("--labels-file", o->labels_file, "image → labels, CSV or JSON (--format folder)");
      sub.add_option("--images-dir", o->images_dir, "COCO image folder (default: beside the json)");
      image->excludes(dataset);
      sub.add_option("--classes", o->classes, "class file: voc, coco, toy or a JSON path (default by format)");
      sub.add_option("--template", o->templates, "prompt template(s) with {} (default: the class file's)");
      sub.add_option("--synonyms", o->synonyms, "joint (reference) | average (paper)")->capture_default_str();
      sub.add_option("--box-threshold", o->box_threshold, "CAA box threshold θ (default: the class file's)");
      sub.add_option("--bg-power", o->bg_power, "background score (1 − max CAM)^α")->capture_default_str();
      sub.add_option("--ignore-below", o->ignore_below, "write 255 where confidence < τ")->capture_default_str();
      sub.add_option("--label-ids", o->label_ids, "consecutive (0..C) | dataset (e.g. COCO category ids)")
          ->capture_default_str();
      sub.add_flag("--save-cams", o->save_cams, "also write CAMs and refined CAMs (float16 .npy)");
      sub.add_flag("--vis", o->vis, "also write contact sheets OUT/vis/<stem>.jpg (image, CAMs, refined, mask)");
      sub.add_option("--max-tokens", o->max_tokens, "cap on the patch grid h·w (0 = none)")->capture_default_str();
      sub.add_option("--shard", o->shard, "i/N: process the i-th of N deterministic shards")->capture_default_str();
      sub.add_option("--limit", o->limit, "at most this many images");
      sub.add_flag("--no-resume", o->no_resume, "recompute images whose outputs exist");
      sub.add_flag("--no-caa", o->no_caa, "skip the attention-affinity refinement (ablation)");
      sub.add_flag("--no-softmax", o->no_softmax, "plain GradCAM on logits (ablation)");
      add_runtime_options(sub, o->runtime);
      return [o]() { return run_generate(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

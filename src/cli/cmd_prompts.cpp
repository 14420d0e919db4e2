// clipes prompts rank — sharpness-based ranking of a template pool on a
// labelled image set (spec §4; formula in text/prompt_ranking.h).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include <limits>

#include "clipes/data/dataset.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/class_config.h"
#include "clipes/text/prompt_ranking.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"
#include "command.h"

namespace clipes::cli {
namespace {

struct RankCli {
  std::string model, vocab, dataset, format = "voc", split = "train", list, labels_file, images_dir;
  bool split_given = false;  // COCO: --split picks instances_<split>.json
  std::string classes, templates;
  JsonOutput json;
  int64_t limit = 200;
  int64_t max_pixels = kDefaultMaxPixels;
  int top = 20;
  RuntimeOptions runtime;
};

// The VOC split to rank on: --split, else train, else the one list the set
// has (issue 27: a val-only set failed on the missing train.txt; ranking on
// val is what such a set allows, and the log says so).
std::string default_split(const RankCli& o) {
  if (o.split_given || o.format != "voc" || !o.list.empty()) return o.split;
  const std::filesystem::path lists = std::filesystem::path(o.dataset) / "ImageSets" / "Segmentation";
  std::error_code ec;
  if (std::filesystem::is_regular_file(lists / (o.split + ".txt"), ec)) return o.split;
  for (const char* split : {"train_aug", "trainval", "val"}) {
    if (std::filesystem::is_regular_file(lists / (std::string(split) + ".txt"), ec)) {
      spdlog::warn("no {}.txt in {}: ranking on the {} split (--split to choose)", o.split,
                   printable(lists.string()), split);
      return split;
    }
  }
  return o.split;  // read_dataset names the missing list
}

int run_rank(const RankCli& o) {
  apply_runtime_options(o.runtime);
  const ClassConfig classes = ClassConfig::resolve(o.classes.empty() ? (o.format == "coco" ? "coco" : "voc") : o.classes);
  const std::string templates_path = o.templates.empty() ? ClassConfig::prompts_dir() + "/templates.txt" : o.templates;
  const std::vector<std::string> templates = read_templates(templates_path);

  const std::vector<ImageRecord> records =
      read_dataset({o.dataset, o.format, o.format == "coco" && !o.split_given ? "" : default_split(o), o.list,
                    o.labels_file, o.images_dir});

  const ModelOptions model_options = to_model_options(o.runtime);
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);
  auto model = ClipModel::load(o.model, model_options);
  check_vocab_fits_model(tokenizer, *model, o.vocab, o.model);

  // Image features once (standard CLIP path); unreadable or unlabelled images are skipped.
  std::vector<at::Tensor> features;
  std::vector<std::vector<int>> labels;
  int64_t skipped = 0;
  for (const auto& r : records) {
    if (o.limit >= 0 && static_cast<int64_t>(features.size()) >= o.limit) break;
    try {
      if (!r.label_error.empty()) throw Error(r.label_error);
      if (r.labels.empty()) throw Error(r.image_path + ": no labels");
      std::vector<int> idx = classes.resolve_labels(r.labels);
      const at::Tensor input = preprocess_224(decode_image_rgb(r.image_path, DecodeLimits{o.max_pixels})).unsqueeze(0);
      torch::NoGradGuard no_grad;
      features.push_back(model->encode_image(input.to(model->device(), model->dtype())).to(torch::kFloat).cpu());
      labels.push_back(std::move(idx));
    } catch (const std::exception& e) {  // any failure belongs to this image (out of memory too)
      spdlog::warn("skipped: {}", printable(e.what()));
      ++skipped;
    }
  }
  if (features.empty()) throw Error(o.dataset + ": no usable labelled images");
  spdlog::info("ranking {} templates on {} images ({} skipped)", templates.size(), features.size(), skipped);

  std::vector<std::string> prompts;
  for (const auto& c : classes.classes) prompts.push_back(c.prompt);
  const auto ranking = rank_templates(*model, tokenizer, prompts, templates, torch::cat(features), labels);

  if (!o.json.to_stdout() && !quiet_output()) std::printf("%4s  %10s  %10s  %s\n", "rank", "sharpness", "p(labels)", "template");
  for (size_t i = 0; i < ranking.size() && static_cast<int>(i) < o.top && !o.json.to_stdout() && !quiet_output(); ++i)
    std::printf("%4zu  %10.5f  %10.4f  %s\n", i + 1, ranking[i].sharpness, ranking[i].mean_label_probability,
                ranking[i].templ.c_str());
  if (o.json.wanted()) {
    nlohmann::json j = {{"images", features.size()}, {"skipped", skipped}, {"templates_file", templates_path},
                        {"formula", "mean over images of Var(s_Y)/Mean(s_Y); s = softmax over all classes of 100*cos; "
                                    "|Y|=1 uses the whole score vector"},
                        {"ranking", nlohmann::json::array()}};
    for (const auto& r : ranking)
      j["ranking"].push_back({{"template", r.templ}, {"sharpness", r.sharpness},
                              {"mean_label_probability", r.mean_label_probability}});
    write_json_output(o.json, j);
  }
  return 0;
}

const bool registered = register_command({
    "prompts", "prompt tools: `prompts rank` ranks templates by sharpness", [](CLI::App& sub) {
      auto o = std::make_shared<RankCli>();
      sub.require_subcommand(1);
      CLI::App* rank = sub.add_subcommand("rank", "rank a template pool by sharpness on labelled images");
      rank->add_option("--model", o->model, "CLIP checkpoint")->required();
      add_vocab_option(*rank, o->vocab);
      rank->add_option("--dataset", o->dataset, "dataset root (or COCO json)")->required();
      rank->add_option("--format", o->format, "voc | coco | folder")->capture_default_str();
      rank->add_option("--split", o->split, "VOC split; COCO: instances_<split>.json")
          ->capture_default_str()
          ->each([o](const std::string&) { o->split_given = true; });
      rank->add_option("--list", o->list, "image id list (VOC)");
      rank->add_option("--labels-file", o->labels_file, "labels file (--format folder)");
      rank->add_option("--images-dir", o->images_dir, "COCO image folder");
      rank->add_option("--classes", o->classes, "class file: voc, coco, toy or a JSON path");
      rank->add_option("--templates", o->templates, "template pool (default prompts/templates.txt)");
      rank->add_option("--limit", o->limit, "at most this many images, N ≥ 1")
          ->check(count_at_least(1))
          ->capture_default_str();
      rank->add_option("--top", o->top, "rows to print")->check(count_at_least(1))->capture_default_str();
      add_max_pixels_option(*rank, o->max_pixels);
      add_json_option(*rank, o->json, "the full ranking");
      add_runtime_options(*rank, o->runtime);
      return [o]() {
        o->vocab = vocab_or_beside_model(o->vocab, o->model);
        return run_rank(*o);
      };
    }});

}  // namespace
}  // namespace clipes::cli

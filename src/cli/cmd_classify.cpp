// clipes classify — zero-shot classification of one image: a quick check that
// a checkpoint (and the tokenizer) behave before running the CAM pipeline.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "clipes/io/image_decode.h"
#include "clipes/model/clip_model.h"
#include "clipes/methods/zero_shot.h"
#include "clipes/text/text_features.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/error.h"
#include "clipes/util/json_text.h"
#include "clipes/util/strings.h"
#include "clipes/text/class_config.h"
#include "command.h"

namespace clipes::cli {
namespace {

struct Options {
  std::string model, vocab, image, classes;
  std::string prompt_template = "a photo of a {}.";
  int topk = 0;
  int64_t max_pixels = kDefaultMaxPixels;
  JsonOutput json;
  RuntimeOptions runtime;
};

int run_classify(const Options& o) {
  apply_runtime_options(o.runtime);
  // A comma list, or a class set like every other command takes (voc, coco,
  // toy, FILE): then its class names.
  std::vector<std::string> classes;
  if (o.classes.find(',') != std::string::npos) {
    classes = split_comma_list(o.classes);
  } else if (!o.classes.empty()) {
    for (const auto& c : ClassConfig::resolve(o.classes).classes) classes.push_back(c.name);
  }
  fill_template(o.prompt_template, "x");  // reject a template without {} before loading anything
  if (o.topk < 0) throw Error("--topk must be >= 0");
  if (classes.empty()) throw Error("--classes: give at least one class name, e.g. \"dog,cat,car\"");
  const cv::Mat rgb = decode_image_rgb(o.image, DecodeLimits{o.max_pixels});
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);
  const auto model = ClipModel::load(o.model, to_model_options(o.runtime));
  check_vocab_fits_model(tokenizer, *model, o.vocab, o.model);

  std::vector<ClassProbability> ranked = zero_shot_classify(*model, tokenizer, rgb, classes, o.prompt_template);
  if (o.topk > 0 && static_cast<size_t>(o.topk) < ranked.size()) ranked.resize(static_cast<size_t>(o.topk));

  if (o.json.wanted()) {
    nlohmann::json predictions = nlohmann::json::array();
    for (const auto& r : ranked) {
      nlohmann::json p = nlohmann::json::object();
      put_bytes(p, "class", r.name);
      p["probability"] = r.probability;
      predictions.push_back(std::move(p));
    }
    nlohmann::json out = nlohmann::json::object();
    put_bytes(out, "image", o.image);  // a file name need not be UTF-8 (util/json_text.h)
    put_bytes(out, "template", o.prompt_template);
    out["predictions"] = std::move(predictions);
    write_json_output(o.json, out);
  }
  if (!o.json.to_stdout() && !quiet_output()) {
    std::printf("%4s  %11s  %s\n", "rank", "probability", "class");
    for (size_t i = 0; i < ranked.size(); ++i)
      std::printf("%4zu  %11.4f  %s\n", i + 1, ranked[i].probability, ranked[i].name.c_str());
  }
  return 0;
}

const bool registered = register_command({
    "classify", "zero-shot classification of one image (checks a checkpoint)", [](CLI::App& sub) {
      auto o = std::make_shared<Options>();
      sub.add_option("--model", o->model, "CLIP checkpoint")->required();
      add_vocab_option(sub, o->vocab);
      sub.add_option("--image", o->image, "image file")->required();
      sub.add_option("--classes", o->classes, "comma-separated class names, e.g. \"dog,cat,car\", or a class set voc | coco | toy | FILE")->required();
      sub.add_option("--template", o->prompt_template, "prompt template; {} is the class name")->capture_default_str();
      sub.add_option("--topk", o->topk, "print only the k most probable classes (0 = all)")
          ->check(count_at_least(0))
          ->capture_default_str();
      add_max_pixels_option(sub, o->max_pixels);
      add_json_option(sub, o->json, "the probabilities");
      add_runtime_options(sub, o->runtime);
      return [o]() {
        o->vocab = vocab_or_beside_model(o->vocab, o->model);
        return run_classify(*o);
      };
    }});

}  // namespace
}  // namespace clipes::cli

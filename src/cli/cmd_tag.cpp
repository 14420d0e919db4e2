// clipes tag — image-level tags without labels (TagCLIP, segment-spec §5):
// OUT/labels.json is a folder-format labels file `generate --labels-file`
// reads unchanged, OUT/tags.jsonl the per-image class scores. The work is
// pipeline/tag.h on the batch machinery generate and segment use.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <opencv2/core/version.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "clipes/model/clip_model.h"
#include "clipes/pipeline/tag.h"
#include "clipes/methods/tag_clip.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/class_config.h"
#include "clipes/text/text_features.h"
#include "clipes/util/error.h"
#include "clipes/util/json_text.h"
#include "clipes/util/strings.h"
#include "batch_command.h"
#include "command.h"
#include "progress_bar.h"

namespace clipes::cli {
namespace {

struct TagCli : BatchCli {
  std::string classes;  // voc | coco | toy | FILE (default by format)
  std::string templates = "tagclip85";
  double threshold = 0.5;
  bool no_crop = false;
  std::string tag_blocks = "from-end";  // from-end | official (segment-spec §5 quirk c)
  std::string tag_names = "official";   // official | ours (quirk d)
};

int run_tag(const TagCli& o) {
  BatchCommand command("tag", o);
  const std::string class_name = o.classes.empty() ? (o.input.format == "coco" ? "coco" : "voc") : o.classes;
  const ClassConfig classes = ClassConfig::resolve(class_name);
  const std::vector<std::string> templates = resolve_templates(o.templates);
  TagRunOptions options;
  options.batch = command.batch_options();
  options.decode.max_pixels = o.max_pixels;
  options.max_tokens = o.max_tokens;
  TagClipConfig config;
  config.relative_threshold = o.threshold;
  config.crop_rescoring = !o.no_crop;
  config.block_numbers = o.tag_blocks == "official" ? TagBlockNumbers::Official : TagBlockNumbers::FromEnd;
  const TagNames query_names = o.tag_names == "ours" ? TagNames::ClassNames : TagNames::Official;
  (void)to_model_options(o.runtime);  // a bad --precision fails before any file is read
  const std::vector<ImageRecord> records = read_input_records(o.input, /*labels_required=*/false);
  check_output_folder(o.out);
  check_tag_summaries_are_ours(o.out);
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(o.vocab);

  nlohmann::json settings = command.common_settings();
  settings.update(nlohmann::json{{"command", "tag"},
                                 {"class_set", nlohmann::json::parse(classes.to_json_text())},
                                 {"templates", nlohmann::json::array()},
                                 {"threshold", o.threshold},
                                 {"crop_rescoring", config.crop_rescoring},
                                 {"tag_blocks", o.tag_blocks},
                                 {"tag_names", o.tag_names}});
  for (const auto& t : templates) settings["templates"].push_back(printable(t));
  if (!command.check_settings(settings, records, options.batch,
                              [&](const std::string& id) { return tag_record_path(o.out, id); }))
    return 0;

  const auto model = command.load_model(tokenizer);
  const std::vector<std::string> names = tag_class_names(classes);
  const at::Tensor text = TextEncoder(*model, tokenizer).encode_classes(tag_queries(classes, query_names), templates);
  const TagClip tagger(*model, text, static_cast<int>(names.size()), config);

  spdlog::info("{} images listed; TagCLIP over {} classes + {} background words ({} templates); writing to {}",
               records.size(), names.size(), classes.background.size(), templates.size(), printable(o.out));
  ProgressBar bar("tag");
  const BatchSummary s = tag_images(tagger, names, records, options, [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();
  const std::vector<ImageTags> tagged = write_tag_summaries(o.out, records, names);

  nlohmann::json run = command.run_record(settings, {{"images_tagged", tagged.size()}}, records, s);
  put_bytes(run["config"], "classes", class_name);
  return command.finish(std::move(run), records, s);
}

const bool registered = register_command({
    "tag", "image-level tags without labels (TagCLIP): a labels file for generate", [](CLI::App& sub) {
      auto o = std::make_shared<TagCli>();
      add_batch_input_options(sub, *o, "labels.json, tags.jsonl, tags/, run.json", /*with_labels=*/false);
      sub.add_option("--classes", o->classes, "class set: voc | coco | toy | FILE (default by format)");
      sub.add_option("--templates", o->templates, "tagclip85 | imagenet80 | a file of templates | one template with {}")
          ->capture_default_str();
      sub.add_option("--threshold", o->threshold,
                     "relative tag threshold r: tags score > min + r·(max − min), at least one")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
      sub.add_flag("--no-crop", o->no_crop, "skip the crop re-scoring (ablation)");
      sub.add_option("--tag-blocks", o->tag_blocks,
                     "from-end: self-mask the last block, average the 3 before it (any depth); official: the "
                     "official code's fixed block 11 and blocks 8..L-2 (10-12 blocks; same on ViT-B/16)")
          ->check(CLI::IsMember({"from-end", "official"}))
          ->capture_default_str();
      sub.add_option("--tag-names", o->tag_names,
                     "official: TagCLIP's words for classes whose class file gives a tag_name (COCO: motorbike, "
                     "aeroplane, sofa, pottedplant, diningtable, tvmonitor); ours: the class names")
          ->check(CLI::IsMember({"official", "ours"}))
          ->capture_default_str();
      add_batch_run_options(sub, *o);
      return [o]() {
        o->vocab = vocab_or_beside_model(o->vocab, o->model);
        return run_tag(*o);
      };
    }});

}  // namespace
}  // namespace clipes::cli

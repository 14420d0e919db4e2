#include "clipes/pipeline/tag.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "clipes/io/image_decode.h"
#include "clipes/model/clip_model.h"
#include "clipes/io/preprocess.h"
#include "clipes/pipeline/image_batch.h"
#include "clipes/methods/tag_clip.h"
#include "clipes/text/class_config.h"
#include "clipes/text/text_features.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/json_text.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

nlohmann::ordered_json tags_json(const ImageTags& t, const std::vector<std::string>& class_names) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  put_bytes(j, "id", t.id);
  put_bytes(j, "image", t.image);
  nlohmann::ordered_json scores = nlohmann::ordered_json::object();
  for (size_t c = 0; c < class_names.size() && c < t.scores.size(); ++c) scores[class_names[c]] = t.scores[c];
  j["scores"] = scores;
  j["tags"] = t.tags;
  return j;
}

ImageTags parse_tags(const nlohmann::json& j, const std::vector<std::string>& class_names, const std::string& where) {
  try {
    ImageTags t;
    t.id = j.at("id").get<std::string>();
    t.image = j.value("image", t.id);
    const nlohmann::json& scores = j.at("scores");
    for (const auto& name : class_names) t.scores.push_back(scores.contains(name) ? scores[name].get<float>() : 0.0f);
    t.tags = j.at("tags").get<std::vector<std::string>>();
    return t;
  } catch (const nlohmann::json::exception& e) {
    throw file_error(where, std::string("not a tags record: ") + e.what());
  }
}

// One image's tags from the classifier's result.
ImageTags image_tags(const ImageRecord& record, const TagResult& result, const std::vector<std::string>& class_names) {
  for (const float s : result.scores)
    if (!std::isfinite(s))
      throw Error(record.image_path + ": the tag scores hold NaN or infinite values (the model's features are not "
                                      "finite for this image)");
  ImageTags t;
  t.id = record.id;
  t.image = fs::path(record.image_path).filename().string();
  t.scores = result.scores;
  for (int c : result.tags) t.tags.push_back(class_names.at(static_cast<size_t>(c)));
  return t;
}

void write_tag_record(const std::string& path, const ImageTags& t, const std::vector<std::string>& class_names) {
  write_file_atomic(path, tags_json(t, class_names).dump(1) + "\n");
}

ImageTags read_tag_record(const std::string& path, const std::vector<std::string>& class_names) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw file_error(path, e.what());
  }
  return parse_tags(j, class_names, path);
}

}  // namespace

std::vector<std::string> tag_class_names(const ClassConfig& classes) {
  std::vector<std::string> names;
  for (const auto& c : classes.classes) names.push_back(c.name);
  return names;
}

std::vector<std::string> tag_queries(const ClassConfig& classes, TagNames names) {
  std::vector<std::string> queries;
  for (const auto& c : classes.classes)
    queries.push_back(names == TagNames::Official && !c.tag_name.empty() ? c.tag_name : c.name);
  queries.insert(queries.end(), classes.background.begin(), classes.background.end());
  return queries;
}

std::string tag_record_path(const std::string& out_dir, const std::string& stem) {
  return (fs::path(out_dir) / "tags" / (stem + ".json")).string();
}

BatchSummary tag_images(const TagClip& tagger, const std::vector<std::string>& class_names,
                        const std::vector<ImageRecord>& records, const TagRunOptions& options,
                        const std::function<void(const BatchProgress&)>& progress) {
  ImageBatchSpec spec;
  spec.output_files = [&](const std::string& id) {
    return std::vector<std::string>{tag_record_path(options.batch.out_dir, id)};
  };
  spec.is_complete = [&](const std::string& id) { return is_file(tag_record_path(options.batch.out_dir, id)); };
  spec.compute = [&](const ImageRecord& record, const cv::Mat& rgb) -> std::function<void()> {
    const at::Tensor image = preprocess_to_patch_multiple(rgb, tagger.patch_size(), options.max_tokens).unsqueeze(0);
    const ImageTags t = image_tags(record, tagger.classify(image), class_names);
    const std::string path = tag_record_path(options.batch.out_dir, record.id);
    return [path, t, &class_names]() { write_tag_record(path, t, class_names); };
  };
  return run_image_batch(records, options.batch, options.decode, spec, progress);
}

void check_tag_summaries_are_ours(const std::string& out_dir) {
  if (is_dir(fs::path(out_dir) / "tags")) return;  // an earlier tag run's summaries
  for (const char* name : {"labels.json", "tags.jsonl"}) {
    const fs::path p = fs::path(out_dir) / name;
    std::error_code ec;
    if (fs::exists(fs::symlink_status(p, ec)))
      throw file_error(p.string(), "exists and was not written by a tag run (no tags/ beside it); tags would replace "
                                   "it: write them to another output folder");
  }
}

std::vector<ImageTags> write_tag_summaries(const std::string& out_dir, const std::vector<ImageRecord>& records,
                                           const std::vector<std::string>& class_names) {
  std::vector<ImageTags> all;
  std::string lines;
  nlohmann::ordered_json labels = nlohmann::ordered_json::object();
  for (const auto& r : records) {
    const std::string path = tag_record_path(out_dir, r.id);
    if (!is_file(path)) continue;
    all.push_back(read_tag_record(path, class_names));
    lines += tags_json(all.back(), class_names).dump() + "\n";
    labels[all.back().image] = all.back().tags;
  }
  write_file_atomic((fs::path(out_dir) / "tags.jsonl").string(), lines);
  write_file_atomic((fs::path(out_dir) / "labels.json").string(), labels.dump(1) + "\n");
  return all;
}

std::vector<ImageTags> predict_labels(const TagClip& tagger, const std::vector<std::string>& class_names,
                                      std::vector<ImageRecord>& records, const BatchOptions& batch,
                                      const DecodeLimits& decode, int max_tokens,
                                      const std::function<void(size_t done, size_t total)>& progress) {
  std::vector<BatchJob> jobs;
  for (const auto& r : records) jobs.push_back({r.id, r.image_path});
  std::vector<ImageRecord*> mine;
  for (size_t i : select_jobs(jobs, batch)) mine.push_back(&records[i]);
  std::vector<ImageTags> out;
  for (size_t i = 0; i < mine.size(); ++i) {
    ImageRecord& r = *mine[i];
    r.labels.clear();
    const std::string path = tag_record_path(batch.out_dir, r.id);
    ImageTags t;
    if (is_file(path)) {
      t = read_tag_record(path, class_names);
    } else {
      cv::Mat rgb;
      try {
        rgb = decode_image_rgb(r.image_path, decode);
      } catch (const Error&) {
        if (progress) progress(i + 1, mine.size());
        continue;  // the generate pass records this image's failure
      }
      t = image_tags(r, tagger.classify(preprocess_to_patch_multiple(rgb, tagger.patch_size(), max_tokens).unsqueeze(0)), class_names);
      write_tag_record(path, t, class_names);
    }
    r.labels = t.tags;
    out.push_back(std::move(t));
    if (progress) progress(i + 1, mine.size());
  }
  return out;
}

std::vector<ImageTags> read_tags_jsonl(const std::string& path, const std::vector<std::string>& class_names) {
  std::ifstream in(path);
  if (!in) throw file_error(path, "cannot open");
  std::vector<ImageTags> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw file_error(path + ":" + std::to_string(n), e.what());
    }
    out.push_back(parse_tags(j, class_names, path + ":" + std::to_string(n)));
  }
  return out;
}

std::vector<ImageTags> label_records_with_tags(const ClipModel& model, const BpeTokenizer& tokenizer,
                                               const ClassConfig& classes, const std::vector<std::string>& templates,
                                               std::vector<ImageRecord>& records, const BatchOptions& batch,
                                               const DecodeLimits& decode, int max_tokens,
                                               const std::function<void(size_t done, size_t total)>& progress) {
  const at::Tensor text = TextEncoder(model, tokenizer).encode_classes(tag_queries(classes), templates);
  const std::vector<std::string> names = tag_class_names(classes);
  const TagClip tagger(model, text, static_cast<int>(names.size()));
  std::vector<ImageTags> tags = predict_labels(tagger, names, records, batch, decode, max_tokens, progress);
  write_tag_summaries(batch.out_dir, records, names);
  return tags;
}

}  // namespace clipes

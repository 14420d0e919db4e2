// clipes eval — scores pseudo masks (or saved CAMs) against ground truth with
// the reference's arithmetic (spec §8). Exit code 0 when every image had a
// prediction, 1 when some were missing (they are excluded from the scores and
// listed loudly), 2 on errors (bad files, size mismatches, nothing to score).
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "clipes/data/dataset.h"
#include "clipes/eval/evaluate.h"
#include "clipes/eval/tag_metrics.h"
#include "clipes/pipeline/tag.h"
#include "clipes/methods/segment_classes.h"
#include "clipes/pipeline/run_record.h"
#include "clipes/util/strings.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/json_text.h"
#include <filesystem>

#include "clipes/text/class_config.h"
#include "command.h"

namespace clipes::cli {
namespace {

namespace fs = std::filesystem;

struct TagEvalOptions {
  std::string tags, gt, format, labels_file, list, split, classes;
  bool split_given = false;
};

// eval --tags: predicted tags (a labels file; its tags.jsonl beside it gives
// the scores for mAP) against a dataset's image-level labels.
int run_tag_eval(const TagEvalOptions& o, const JsonOutput& json) {
  std::string format = o.format;
  if (format.empty()) {
    if (is_dir(fs::path(o.gt) / "JPEGImages") || is_dir(fs::path(o.gt) / "Annotations"))
      format = "voc";
    else if (is_file(o.gt) || is_dir(fs::path(o.gt) / "annotations"))
      format = "coco";
    else
      format = "folder";
  }
  DatasetSource source;
  source.root = o.gt;
  source.format = format;
  source.list_file = o.list;
  source.labels_file = o.labels_file;
  source.split = format == "coco" && !o.split_given ? "" : o.split;
  const std::vector<ImageRecord> truth_records = read_dataset(source);
  // Ground truth that cannot be read cannot be scored against: fatal here,
  // although a batch run only fails the image.
  for (const auto& r : truth_records)
    if (!r.label_error.empty()) throw Error(r.label_error);

  // The class set: --classes, else the tag run's run.json, else by format.
  const fs::path out_dir = fs::path(o.tags).parent_path();
  const std::optional<RunRecord> record = o.classes.empty() ? RunRecord::read(out_dir.string()) : std::nullopt;
  const ClassConfig classes = !o.classes.empty()                  ? ClassConfig::resolve(o.classes)
                              : record && record->has_class_set ? record->class_set()
                                                                : ClassConfig::resolve(format == "coco" ? "coco" : "voc");
  std::vector<std::string> names;
  for (const auto& c : classes.classes) names.push_back(c.name);

  // Predictions keyed by image file name and by stem (labels files may use either).
  std::map<std::string, std::vector<std::string>> predicted;
  for (const auto& e : parse_labels_text(read_file(o.tags), o.tags)) {
    predicted[e.image] = e.labels;
    predicted[fs::path(e.image).stem().string()] = e.labels;
  }
  std::map<std::string, std::vector<float>> scores_by_id;
  const fs::path jsonl = out_dir / "tags.jsonl";
  const bool have_scores = is_file(jsonl);
  if (have_scores)
    for (const auto& t : read_tags_jsonl(jsonl.string(), names)) scores_by_id[t.id] = t.scores;

  std::vector<std::vector<float>> scores;
  std::vector<std::vector<int>> pred, truth;
  std::vector<std::string> missing;
  for (const auto& r : truth_records) {
    const std::string file = fs::path(r.image_path).filename().string();
    auto it = predicted.find(file);
    if (it == predicted.end()) it = predicted.find(r.id);
    if (it == predicted.end()) {
      missing.push_back(r.id);
      continue;
    }
    truth.push_back(classes.resolve_labels(r.labels));
    pred.push_back(classes.resolve_labels(it->second));
    if (have_scores) {
      const auto s = scores_by_id.find(r.id);
      if (s == scores_by_id.end()) throw file_error(jsonl.string(), "no scores for " + printable(r.id));
      scores.push_back(s->second);
    }
  }
  if (truth.empty()) throw Error(o.tags + ": no image of " + o.gt + " has predicted tags");
  const TagMetrics m = tag_metrics(scores, pred, truth, names);

  nlohmann::json j = {{"mode", "tags"},      {"images", m.images},       {"missing", missing.size()},
                      {"precision", m.precision}, {"recall", m.recall}, {"f1", m.f1},
                      {"map", have_scores ? nlohmann::json(m.map) : nlohmann::json(nullptr)},
                      {"classes", nlohmann::json::array()}};
  put_bytes(j, "tags", o.tags);
  put_bytes(j, "ground_truth", o.gt);
  for (const auto& c : m.classes)
    j["classes"].push_back({{"name", c.name}, {"ap", std::isnan(c.ap) ? nlohmann::json(nullptr) : nlohmann::json(c.ap)},
                            {"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1},
                            {"positives", c.positives}, {"predicted", c.predicted},
                            {"true_positives", c.true_positives}});
  if (!json.to_stdout() && !quiet_output()) {
    std::printf("tags: %s   ground truth: %s (%s)\nimages: %zu  missing: %zu\n\n", printable(o.tags).c_str(),
                printable(o.gt).c_str(), format.c_str(), m.images, missing.size());
    std::printf("%-24s %7s %7s %7s %7s %9s %9s\n", "class", "AP", "P", "R", "F1", "positives", "predicted");
    for (const auto& c : m.classes) {
      char ap[16] = "      -";
      if (!std::isnan(c.ap)) std::snprintf(ap, sizeof ap, "%7.2f", 100 * c.ap);
      std::printf("%-24s %s %7.2f %7.2f %7.2f %9zu %9zu\n", printable(c.name).substr(0, 24).c_str(), ap,
                  100 * c.precision, 100 * c.recall, 100 * c.f1, c.positives, c.predicted);
    }
    if (have_scores) std::printf("\nmAP %.2f over the classes with a positive image\n", 100 * m.map);
    else std::printf("\nmAP n/a (no tags.jsonl beside %s: no scores)\n", printable(o.tags).c_str());
    std::printf("overall precision %.2f  recall %.2f  F1 %.2f\n", 100 * m.precision, 100 * m.recall, 100 * m.f1);
  }
  write_json_output(json, j);
  if (!missing.empty()) {
    spdlog::warn("{} of {} images have no predicted tags in {}; they are excluded from the scores", missing.size(),
                 truth_records.size(), printable(o.tags));
    return 1;
  }
  return 0;
}

// `--classes X` on a run that recorded another class set relabels the table
// (a toy run scored with --classes voc showed VOC names for toy masks; issue
// 27 item 8): say so, naming the recorded set. A warning, not a refusal: a
// renamed copy of the same set is legitimate.
void warn_if_classes_differ_from_run(const std::string& classes, const std::string& pred, const LabelSet& given) {
  if (classes.empty()) return;
  std::optional<RunRecord> record;
  try {
    record = RunRecord::read(pred);
  } catch (const Error&) {
    return;  // an unreadable run.json is not what is being scored
  }
  if (!record || !record->has_class_set) return;
  const LabelSet recorded = parse_label_set(record->class_set_text, record->path, false);
  if (recorded.names == given.names) return;
  spdlog::warn("{} records the class set '{}' ({} classes) but --classes {} gives {} classes{}: the table names the "
               "mask values by --classes; leave it out to use the run's own",
               printable(record->path), printable(record->class_set_name), recorded.names.size(), printable(classes),
               given.names.size(), recorded.names.size() == given.names.size() ? " with other names" : "");
}

const bool registered = register_command({
    "eval", "score pseudo masks or saved CAMs against ground truth (mIoU)", [](CLI::App& sub) {
      struct Options {
        std::string pred, gt, list, split = "train", classes, label_ids = "consecutive", cam_kind = "refined";
        JsonOutput json;
        bool cams = false, label_ids_given = false;
        int threads = 0;
        std::string tags, format, labels_file;
      };
      auto o = std::make_shared<Options>();
      sub.add_option("--pred", o->pred, "output folder of generate (masks/<stem>.png), or a folder of <stem>.png");
      sub.add_option("--gt", o->gt,
                     "ground truth: VOC root, COCO instances json (or COCO root), or a folder of mask PNGs")
          ->required();
      sub.add_option("--list", o->list, "ids to evaluate, one per line (default: the VOC split / all GT images)");
      auto* split = sub.add_option("--split", o->split, "VOC split list ImageSets/Segmentation/<split>.txt")
                        ->capture_default_str();
      sub.add_option("--classes", o->classes,
                     "class names: voc, coco or a class config file (default: the run's run.json, else from the GT)");
      sub.add_option("--label-ids", o->label_ids, "mask values of COCO classes: consecutive (index+1) or coco (category ids)")
          ->check(CLI::IsMember({"consecutive", "dataset", "coco"}))
          ->capture_default_str()
          ->each([o](const std::string&) { o->label_ids_given = true; });
      sub.add_flag("--cams", o->cams, "evaluate saved CAMs (cams/<stem>_refined.npy + _keys.npy; a segment run's _scores.npy) with a "
                   "background sweep");
      sub.add_option("--cam-kind", o->cam_kind, "which saved CAMs with --cams: refined (after CAA) or cam")
          ->check(CLI::IsMember({"refined", "cam"}))
          ->capture_default_str();
      sub.add_option("--tags", o->tags,
                     "score predicted tags instead: a labels file (clipes tag's labels.json; its tags.jsonl "
                     "beside it gives mAP) against the dataset --gt's image labels");
      sub.add_option("--format", o->format, "with --tags: the --gt dataset's layout voc | coco | folder (default: detected)")
          ->check(CLI::IsMember({"voc", "coco", "folder"}));
      sub.add_option("--labels-file", o->labels_file, "with --tags --format folder: the true labels file");
      add_json_option(sub, o->json, "the report");
      sub.add_option("--threads", o->threads, "worker threads (0 = one per core)")
          ->check(CLI::Range(0, 1024))
          ->capture_default_str();
      return [o, split]() {
        if (!o->tags.empty()) {
          if (o->cams) throw Error("--tags and --cams are different evaluations: give one");
          return run_tag_eval({o->tags, o->gt, o->format, o->labels_file, o->list, o->split, o->classes,
                               split->count() > 0},
                              o->json);
        }
        if (o->pred.empty()) throw Error("--pred is required (or --tags LABELS to score tags)");
        // Without --classes, the class set the run recorded (run.json), with
        // its label ids unless --label-ids says otherwise.
        // The record also says whether --cams reads a segment run's scores.
        const std::optional<RunRecord> record =
            o->classes.empty() || o->cams ? RunRecord::read(o->pred) : std::nullopt;
        const bool from_run = o->classes.empty() && record && record->has_class_set;
        const std::string label_ids = from_run && !o->label_ids_given ? record->label_ids : o->label_ids;
        const bool dataset_ids = label_ids == "coco" || label_ids == "dataset";
        GtSource gt = GtSource::open(o->gt, dataset_ids, split->count() ? o->split : "");
        const std::vector<std::string> ids = o->list.empty() ? gt.default_ids(o->split) : read_id_list(o->list);
        if (ids.empty()) throw Error((o->list.empty() ? o->gt : o->list) + ": no images to evaluate");

        EvalOptions options;
        options.threads = thread_count(o->threads);
        options.cam_suffix = o->cam_kind;
        if (from_run) {
          options.labels = parse_label_set(record->class_set_text, record->path, dataset_ids);
          spdlog::info("classes from {}: {} ({} ids)", printable(record->path), record->class_set_name, label_ids);
        } else if (o->classes == "voc") options.labels = voc_label_set();
        else if (o->classes == "coco") options.labels = coco_label_set(dataset_ids);
        else if (!o->classes.empty())  // the rule generate uses (ClassConfig::resolve_path)
          options.labels = read_label_set(ClassConfig::resolve_path(o->classes), dataset_ids);
        if (o->cams && record && record->command == "segment") {
          // Segment class index → mask value, as segment wrote the masks.
          const SegmentClasses classes = SegmentClasses::from_class_config(
              record->class_set(), ClassConfig::parse_label_ids(record->label_ids));
          options.segment = SegmentScoreSource{record->segment_score_rule(), classes.mask_values, classes.background};
        }
        gt.map_categories(options.labels);  // COCO ground truth numbered by the classes scored, by name
        warn_if_classes_differ_from_run(o->classes, o->pred, options.labels);

        const EvalReport report =
            o->cams ? evaluate_cams(o->pred, gt, ids, options) : evaluate_masks(o->pred, gt, ids, options);
        if (report.num_evaluated == 0)
          throw Error(o->pred + ": no " + (o->cams ? "CAMs" : "predicted masks") + " found for any of the " +
                      std::to_string(ids.size()) + " images");
        if (!o->json.to_stdout() && !quiet_output()) std::cout << format_eval_report(report) << std::flush;
        write_json_output(o->json, eval_report_json(report));
        if (!report.missing.empty()) {
          spdlog::warn("{} of {} images have no prediction in {}; they are excluded from the scores",
                       report.missing.size(), report.num_images, o->pred);
          return 1;
        }
        return 0;
      };
    }});

}  // namespace
}  // namespace clipes::cli

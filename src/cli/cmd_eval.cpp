// clipes eval — scores pseudo masks (or saved CAMs) against ground truth with
// the reference's arithmetic (spec §8). Exit code 0 when every image had a
// prediction, 1 when some were missing (they are excluded from the scores and
// listed loudly), 2 on errors (bad files, size mismatches, nothing to score).
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "clipes/data/dataset.h"
#include "clipes/eval/evaluate.h"
#include "clipes/pipeline/run_settings.h"
#include "clipes/util/strings.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include <filesystem>

#include "clipes/text/class_config.h"
#include "command.h"

namespace clipes::cli {
namespace {

const bool registered = register_command({
    "eval", "score pseudo masks or saved CAMs against ground truth (mIoU)", [](CLI::App& sub) {
      struct Options {
        std::string pred, gt, list, split = "train", classes, label_ids = "consecutive", cam_kind = "refined";
        JsonOutput json;
        bool cams = false, label_ids_given = false;
        int threads = 0;
      };
      auto o = std::make_shared<Options>();
      sub.add_option("--pred", o->pred, "output folder of generate (masks/<stem>.png), or a folder of <stem>.png")
          ->required();
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
      sub.add_flag("--cams", o->cams, "evaluate saved CAMs (cams/<stem>_refined.npy + _keys.npy) with a background sweep");
      sub.add_option("--cam-kind", o->cam_kind, "which saved CAMs with --cams: refined (after CAA) or cam")
          ->check(CLI::IsMember({"refined", "cam"}))
          ->capture_default_str();
      add_json_option(sub, o->json, "the report");
      sub.add_option("--threads", o->threads, "worker threads (0 = one per core)")
          ->check(CLI::Range(0, 1024))
          ->capture_default_str();
      return [o, split]() {
        // Without --classes, the class set the run recorded (run.json), with
        // its label ids unless --label-ids says otherwise.
        const nlohmann::json record = o->classes.empty() ? read_run_record(o->pred) : nlohmann::json();
        const bool from_run =
            record.is_object() && record.contains("config") && record["config"].contains("class_set");
        const std::string label_ids =
            from_run && !o->label_ids_given ? record["config"].value("label_ids", "consecutive") : o->label_ids;
        const bool dataset_ids = label_ids == "coco" || label_ids == "dataset";
        const GtSource gt = GtSource::open(o->gt, dataset_ids, split->count() ? o->split : "");
        const std::vector<std::string> ids = o->list.empty() ? gt.default_ids(o->split) : read_id_list(o->list);
        if (ids.empty()) throw Error((o->list.empty() ? o->gt : o->list) + ": no images to evaluate");

        EvalOptions options;
        options.threads = o->threads;
        options.cam_suffix = o->cam_kind;
        if (from_run) {
          options.labels = parse_label_set(record["config"]["class_set"].dump(), o->pred + "/run.json", dataset_ids);
          spdlog::info("classes from {}/run.json: {} ({} ids)", printable(o->pred),
                       record["config"]["class_set"].value("name", "?"), label_ids);
        } else if (o->classes == "voc") options.labels = voc_label_set();
        else if (o->classes == "coco") options.labels = coco_label_set(dataset_ids);
        else if (!o->classes.empty())  // the rule generate uses (ClassConfig::resolve_path)
          options.labels = read_label_set(ClassConfig::resolve_path(o->classes), dataset_ids);

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

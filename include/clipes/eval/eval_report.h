// What `clipes eval` found: the scores, the per-class table, the missing
// predictions, and (for CAMs) the background sweep. Printed as a table and
// written as JSON.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace clipes {

class ConfusionMatrix;

struct ClassScore {
  int value = 0;          // mask value
  std::string name;
  double iou = 0;         // NaN when neither in the ground truth nor predicted
  uint64_t gt_pixels = 0, pred_pixels = 0, true_positives = 0;
  bool in_ground_truth = false;  // counts towards mIoU
};

// One background setting of the CAM sweep (spec §8).
struct SweepResult {
  // "alpha": bg = (1 − max)^α;  "threshold": bg = constant;  "method": a
  // segment run's own background class (its probability as bg)
  std::string background;
  double parameter = 0;
  double mean_iou = 0;
  bool best = false;
};

// One image's own score (issue 27 item 8: finding the bad images). Its mIoU
// is the mean IoU over the classes in its ground truth *or* its prediction, so
// a hallucinated class counts; the same number visualize titles its GT panel
// with. NaN when the image has neither (all ignore).
struct ImageScore {
  std::string id;
  double mean_iou = 0;
  std::vector<std::pair<int, double>> class_iou;  // mask value → IoU, classes in GT or prediction (masks only)
};

struct EvalReport {
  std::string mode;  // "masks" or "cams"
  std::string pred_dir, gt_path, gt_kind;
  size_t num_images = 0;     // ids asked for
  size_t num_evaluated = 0;  // ids with a prediction
  std::vector<std::string> missing;  // ids without a prediction (excluded from the scores)
  double mean_iou = 0, pixel_accuracy = 0, mean_class_accuracy = 0, frequency_weighted_iou = 0;
  uint64_t total_pixels = 0, ignored_pixels = 0;
  // Predicted values that are no class of the set (255 excepted), with their
  // pixel counts: a wrong --classes / --label-ids; they score as misses.
  std::vector<std::pair<int, uint64_t>> predicted_outside_class_set;
  std::vector<std::pair<int, uint64_t>> gt_outside_class_set;  // value, pixels (255 excluded): ignored, warned about
  int classes_in_gt = 0;
  std::vector<ClassScore> classes;  // rows: named classes and any value met in GT or predictions
  std::vector<SweepResult> sweep;   // CAMs only; `classes` and the scores are the best setting's
  std::string best_setting;         // CAMs only, e.g. "alpha=2" (sweep_setting_name)
  // CAMs only: "refined" (CAA on), "cam" (before CAA), or "probabilities" (a segment run's scores)
  std::string cam_kind;
  std::vector<ImageScore> per_image;  // evaluated ids in order (CAMs: at the best setting)
  // The whole-set matrix, row = ground-truth value, column = predicted value,
  // for values 0..n−1 where n − 1 is the last named or met value.
  std::vector<std::vector<uint64_t>> confusion;
};

// "alpha=2", "threshold=0.35", "method": how report.best_setting names a setting.
std::string sweep_setting_name(const SweepResult& setting);

// `matrix` holds one image: its ImageScore (class_iou filled).
ImageScore score_image(const std::string& id, const ConfusionMatrix& matrix);

// The `count` evaluated images with the lowest mIoU, lowest first (NaN last,
// ties by id): what `visualize --worst` shows.
std::vector<ImageScore> worst_images(const EvalReport& report, size_t count);

// Fills the scores and class rows of `report` from `matrix`; `names_by_value`
// names mask values ("" → "class_<v>").
void fill_scores(EvalReport& report, const ConfusionMatrix& matrix, const std::vector<std::string>& names_by_value);

nlohmann::json eval_report_json(const EvalReport& report);  // NaN → null
std::string format_eval_report(const EvalReport& report);   // the stdout table

}  // namespace clipes

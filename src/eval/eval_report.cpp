#include "clipes/eval/eval_report.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "clipes/eval/confusion_matrix.h"
#include "clipes/util/json_text.h"
#include "clipes/util/strings.h"

namespace clipes {

void fill_scores(EvalReport& report, const ConfusionMatrix& matrix, const std::vector<std::string>& names_by_value) {
  report.mean_iou = matrix.mean_iou();
  report.pixel_accuracy = matrix.pixel_accuracy();
  report.mean_class_accuracy = matrix.mean_class_accuracy();
  report.frequency_weighted_iou = matrix.frequency_weighted_iou();
  report.total_pixels = matrix.total_pixels();
  report.ignored_pixels = matrix.ignored_pixels();
  report.predicted_outside_class_set.clear();
  const auto& outside = matrix.predicted_outside_class_set();
  for (int v = 0; v < static_cast<int>(outside.size()); ++v)
    if (outside[v]) report.predicted_outside_class_set.emplace_back(v, outside[v]);
  report.gt_outside_class_set.clear();
  const auto& gt_outside = matrix.ground_truth_outside_class_set();
  for (int v = 0; v < static_cast<int>(gt_outside.size()); ++v)
    if (gt_outside[v]) report.gt_outside_class_set.emplace_back(v, gt_outside[v]);
  report.classes_in_gt = 0;
  report.classes.clear();
  const auto ious = matrix.iou();
  for (int v = 0; v < matrix.num_classes(); ++v) {
    ClassScore row;
    row.value = v;
    row.name = v < static_cast<int>(names_by_value.size()) ? names_by_value[v] : "";
    row.gt_pixels = matrix.gt_pixels(v);
    row.pred_pixels = matrix.pred_pixels(v);
    row.true_positives = matrix.true_positives(v);
    row.in_ground_truth = row.gt_pixels > 0;
    row.iou = ious[v];
    if (row.in_ground_truth) ++report.classes_in_gt;
    if (row.name.empty() && !row.gt_pixels && !row.pred_pixels) continue;  // unnamed and unseen
    if (row.name.empty()) row.name = "class_" + std::to_string(v);
    report.classes.push_back(std::move(row));
  }
}

namespace {

nlohmann::json number_or_null(double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); }

std::string percent(double x) {
  if (std::isnan(x)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100.0 * x);
  return buf;
}

std::string sweep_label(const SweepResult& s) {
  char buf[64];
  if (s.background == "alpha") std::snprintf(buf, sizeof buf, "(1-max)^%g", s.parameter);
  else std::snprintf(buf, sizeof buf, "constant %.2f", s.parameter);
  return buf;
}

}  // namespace

nlohmann::json eval_report_json(const EvalReport& report) {
  nlohmann::json j;
  j["mode"] = report.mode;
  put_bytes(j, "predictions", report.pred_dir);  // paths need not be UTF-8 (util/json_text.h)
  put_bytes(j, "ground_truth", report.gt_path);
  j["ground_truth_kind"] = report.gt_kind;
  j["images"] = report.num_images;
  j["evaluated"] = report.num_evaluated;
  j["missing"] = nlohmann::json::array();
  for (const auto& id : report.missing) j["missing"].push_back(printable(id));
  j["miou"] = number_or_null(report.mean_iou);
  j["pixel_accuracy"] = number_or_null(report.pixel_accuracy);
  j["mean_class_accuracy"] = number_or_null(report.mean_class_accuracy);
  j["fw_iou"] = number_or_null(report.frequency_weighted_iou);
  j["classes_in_ground_truth"] = report.classes_in_gt;
  j["pixels"] = report.total_pixels;
  j["ignored_pixels"] = report.ignored_pixels;
  nlohmann::json outside = nlohmann::json::array();
  uint64_t outside_pixels = 0;
  for (const auto& [value, pixels] : report.predicted_outside_class_set) {
    outside.push_back({{"value", value}, {"pixels", pixels}});
    outside_pixels += pixels;
  }
  j["predicted_outside_class_set"] = outside;
  j["predicted_outside_class_set_pixels"] = outside_pixels;
  nlohmann::json gt_outside = nlohmann::json::array();
  for (const auto& [value, pixels] : report.gt_outside_class_set) gt_outside.push_back({{"value", value}, {"pixels", pixels}});
  j["gt_outside_class_set"] = gt_outside;
  nlohmann::json classes = nlohmann::json::array();
  for (const auto& c : report.classes) {
    classes.push_back({{"value", c.value},
                       {"name", printable(c.name)},
                       {"iou", number_or_null(c.iou)},
                       {"gt_pixels", c.gt_pixels},
                       {"pred_pixels", c.pred_pixels},
                       {"true_positives", c.true_positives},
                       {"in_ground_truth", c.in_ground_truth}});
  }
  j["classes"] = classes;
  if (report.mode == "cams") {
    nlohmann::json sweep = nlohmann::json::array();
    for (const auto& s : report.sweep) {
      sweep.push_back({{"background", s.background},
                       {"parameter", s.parameter},
                       {"miou", number_or_null(s.mean_iou)},
                       {"best", s.best}});
    }
    j["sweep"] = sweep;
    j["best"] = report.best_setting;
  }
  return j;
}

std::string format_eval_report(const EvalReport& report) {
  std::ostringstream out;
  char line[256];
  out << "ground truth: " << printable(report.gt_path) << " (" << report.gt_kind << ")\n";
  out << "predictions:  " << printable(report.pred_dir) << " (" << report.mode << ")\n";
  out << "images: " << report.num_images << "  evaluated: " << report.num_evaluated
      << "  missing: " << report.missing.size() << "\n";
  if (!report.missing.empty()) {
    out << "WARNING: " << report.missing.size() << " of " << report.num_images
        << " images have no prediction and are EXCLUDED from the scores:";
    for (size_t i = 0; i < report.missing.size() && i < 10; ++i) out << " " << printable(report.missing[i]);
    if (report.missing.size() > 10) out << " ...";
    out << "\n";
  }
  if (!report.predicted_outside_class_set.empty()) {
    out << "WARNING: predictions hold values that are no class of the set (wrong --classes or --label-ids?);"
           " they count as misses:";
    for (const auto& [value, pixels] : report.predicted_outside_class_set)
      out << " " << value << " (" << pixels << " px)";
    out << "\n";
  }
  if (!report.gt_outside_class_set.empty()) {
    out << "WARNING: the ground truth holds values that are no class of the set (wrong --classes?);"
           " they are ignored like 255:";
    for (const auto& [value, pixels] : report.gt_outside_class_set) out << " " << value << " (" << pixels << " px)";
    out << "\n";
  }
  if (report.mode == "cams") {
    out << "\nbackground          mIoU\n";
    for (const auto& s : report.sweep) {
      std::snprintf(line, sizeof line, "%-16s %7s%s\n", sweep_label(s).c_str(), percent(s.mean_iou).c_str(),
                    s.best ? "  <- best" : "");
      out << line;
    }
    for (const auto& s : report.sweep) {
      if (!s.best) continue;
      // Say how to get the best setting's masks: the sweep is only useful if
      // generate can apply it. Unrefined CAMs are what generate makes with
      // CAA off: without --no-caa the hint gave other masks (59.88 measured,
      // 28.65 obtained; issue 27 item 1).
      std::snprintf(line, sizeof line, "masks with this background: clipes generate ... %s %.2f%s\n",
                    s.background == "threshold" ? "--bg-threshold" : "--bg-power", s.parameter,
                    report.cam_kind == "cam" ? " --no-caa" : "");
      out << line;
    }
    out << "\nper class, best setting (" << report.best_setting << "):\n";
  }
  out << "\n";
  std::snprintf(line, sizeof line, "%5s  %-20s %7s %14s %14s\n", "value", "class", "IoU", "GT pixels", "pred pixels");
  out << line;
  for (const auto& c : report.classes) {
    std::snprintf(line, sizeof line, "%5d  %-20s %7s %14llu %14llu\n", c.value, c.name.c_str(),
                  c.in_ground_truth || c.pred_pixels ? percent(c.iou).c_str() : "-",
                  static_cast<unsigned long long>(c.gt_pixels), static_cast<unsigned long long>(c.pred_pixels));
    out << line;
  }
  out << "\n";
  std::snprintf(line, sizeof line, "mIoU %s over %d classes present in the ground truth\n",
                percent(report.mean_iou).c_str(), report.classes_in_gt);
  out << line;
  std::snprintf(line, sizeof line, "pixel accuracy %s  mean class accuracy %s  fwIoU %s\n",
                percent(report.pixel_accuracy).c_str(), percent(report.mean_class_accuracy).c_str(),
                percent(report.frequency_weighted_iou).c_str());
  out << line;
  return out.str();
}

}  // namespace clipes

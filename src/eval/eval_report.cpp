#include "clipes/eval/eval_report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
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
  int last = static_cast<int>(names_by_value.size()) - 1;
  for (int v = 0; v < matrix.num_classes(); ++v)
    if (matrix.gt_pixels(v) || matrix.pred_pixels(v)) last = std::max(last, v);
  last = std::min(last, matrix.num_classes() - 1);
  report.confusion.assign(static_cast<size_t>(last + 1), std::vector<uint64_t>(static_cast<size_t>(last + 1), 0));
  for (int t = 0; t <= last; ++t)
    for (int p = 0; p <= last; ++p) report.confusion[t][p] = matrix.count(t, p);
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

ImageScore score_image(const std::string& id, const ConfusionMatrix& matrix) {
  ImageScore score;
  score.id = id;
  const auto ious = matrix.iou();
  double sum = 0;
  int n = 0;
  for (int v = 0; v < matrix.num_classes(); ++v) {
    if (std::isnan(ious[v])) continue;  // neither in this image's GT nor predicted
    score.class_iou.emplace_back(v, ious[v]);
    sum += ious[v];
    ++n;
  }
  score.mean_iou = n ? sum / n : std::nan("");
  return score;
}

std::vector<ImageScore> worst_images(const EvalReport& report, size_t count) {
  std::vector<ImageScore> sorted = report.per_image;
  std::stable_sort(sorted.begin(), sorted.end(), [](const ImageScore& a, const ImageScore& b) {
    if (std::isnan(a.mean_iou) != std::isnan(b.mean_iou)) return std::isnan(b.mean_iou);
    if (a.mean_iou != b.mean_iou && !std::isnan(a.mean_iou)) return a.mean_iou < b.mean_iou;
    return a.id < b.id;
  });
  if (sorted.size() > count) sorted.resize(count);
  return sorted;
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
  else if (s.background == "method") std::snprintf(buf, sizeof buf, "background class");
  else std::snprintf(buf, sizeof buf, "constant %.2f", s.parameter);
  return buf;
}

}  // namespace

std::string sweep_setting_name(const SweepResult& setting) {
  if (setting.background == "method") return "method";
  char label[64];
  std::snprintf(label, sizeof label, setting.background == "alpha" ? "alpha=%g" : "threshold=%.2f", setting.parameter);
  return label;
}

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
  // Per image and the confusion matrix (issue 27 item 8): what a researcher
  // needs to find the images and the class pairs that pull the score down.
  nlohmann::json images = nlohmann::json::array();
  for (const auto& im : report.per_image) {
    nlohmann::json entry = {{"id", printable(im.id)}, {"miou", number_or_null(im.mean_iou)}};
    if (report.mode == "masks") {
      nlohmann::json iou = nlohmann::json::object();
      for (const auto& [value, v] : im.class_iou) iou[std::to_string(value)] = v;
      entry["iou"] = iou;  // keyed by mask value, as "classes" names them
    }
    images.push_back(entry);
  }
  j["per_image"] = images;
  j["confusion_matrix"] = {{"rows", "ground truth value"}, {"columns", "predicted value"}, {"counts", report.confusion}};
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
    j["cam_kind"] = report.cam_kind;
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
      // generate (or segment) can apply it. Unrefined CAMs are what generate
      // makes with CAA off: without --no-caa the hint gave other masks (59.88
      // measured, 28.65 obtained; issue 27 item 1).
      if (report.cam_kind == "probabilities" && s.background == "method")
        std::snprintf(line, sizeof line, "masks with this background: the run's own (eval --pred without --cams)\n");
      else if (report.cam_kind == "probabilities")
        std::snprintf(line, sizeof line, "masks with this background: clipes segment ... --bg-threshold %.2f\n",
                      s.parameter);
      else
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
  const std::vector<ImageScore> worst = worst_images(report, 5);
  if (report.per_image.size() > 1 && !worst.empty()) {
    out << "lowest image mIoU:";
    for (const auto& im : worst) out << " " << printable(im.id) << " " << percent(im.mean_iou);
    out << "  (all in --json's per_image; clipes visualize --worst N)\n";
  }
  return out.str();
}

}  // namespace clipes

#include "clipes/eval/confusion_matrix.h"

#include <cmath>
#include <limits>
#include <string>

#include "clipes/util/error.h"

namespace clipes {

ConfusionMatrix::ConfusionMatrix(int num_classes)
    : num_classes_(num_classes),
      counts_(static_cast<size_t>(num_classes) * num_classes, 0),
      unassigned_(num_classes, 0) {
  if (num_classes <= 0 || num_classes > 256) throw Error("confusion matrix: bad number of classes " + std::to_string(num_classes));
}

void ConfusionMatrix::add(int prediction, int ground_truth, uint64_t count) {
  if ((prediction < 0 || prediction >= num_classes_) && prediction != 255 && prediction >= 0 && prediction < 256)
    outside_[static_cast<size_t>(prediction)] += count;
  if (ground_truth < 0 || ground_truth >= num_classes_) {
    ignored_ += count;
    if (ground_truth != 255 && ground_truth >= 0 && ground_truth < 256) gt_outside_[static_cast<size_t>(ground_truth)] += count;
  } else if (prediction < 0 || prediction >= num_classes_) {
    unassigned_[ground_truth] += count;
  } else {
    counts_[static_cast<size_t>(ground_truth) * num_classes_ + prediction] += count;
  }
}

void ConfusionMatrix::add(const cv::Mat& prediction, const cv::Mat& ground_truth) {
  if (prediction.type() != CV_8UC1 || ground_truth.type() != CV_8UC1)
    throw Error("confusion matrix: masks must be 8-bit single-channel");
  if (prediction.size() != ground_truth.size())
    throw Error("confusion matrix: prediction and ground truth differ in size");
  // Histogram of (gt, pred) byte pairs first, then fold into the matrix: one
  // pass with no branches per pixel.
  std::vector<uint64_t> pairs(256 * 256, 0);
  for (int r = 0; r < prediction.rows; ++r) {
    const uint8_t* p = prediction.ptr<uint8_t>(r);
    const uint8_t* g = ground_truth.ptr<uint8_t>(r);
    for (int c = 0; c < prediction.cols; ++c) ++pairs[(static_cast<size_t>(g[c]) << 8) | p[c]];
  }
  for (int g = 0; g < 256; ++g)
    for (int p = 0; p < 256; ++p)
      if (const uint64_t n = pairs[(static_cast<size_t>(g) << 8) | p]) add(p, g, n);
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  if (other.num_classes_ != num_classes_) throw Error("confusion matrix: merging different class counts");
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  for (size_t i = 0; i < unassigned_.size(); ++i) unassigned_[i] += other.unassigned_[i];
  ignored_ += other.ignored_;
  for (size_t i = 0; i < outside_.size(); ++i) outside_[i] += other.outside_[i];
  for (size_t i = 0; i < gt_outside_.size(); ++i) gt_outside_[i] += other.gt_outside_[i];
}

uint64_t ConfusionMatrix::count(int ground_truth, int prediction) const {
  return counts_[static_cast<size_t>(ground_truth) * num_classes_ + prediction];
}

uint64_t ConfusionMatrix::gt_pixels(int c) const {
  uint64_t sum = unassigned_[c];
  for (int p = 0; p < num_classes_; ++p) sum += count(c, p);
  return sum;
}

uint64_t ConfusionMatrix::pred_pixels(int c) const {
  uint64_t sum = 0;
  for (int g = 0; g < num_classes_; ++g) sum += count(g, c);
  return sum;
}

uint64_t ConfusionMatrix::total_pixels() const {
  uint64_t sum = 0;
  for (int c = 0; c < num_classes_; ++c) sum += gt_pixels(c);
  return sum;
}

std::vector<double> ConfusionMatrix::iou() const {
  std::vector<double> result(num_classes_, std::numeric_limits<double>::quiet_NaN());
  for (int c = 0; c < num_classes_; ++c) {
    const uint64_t tp = true_positives(c);
    const uint64_t union_ = gt_pixels(c) + pred_pixels(c) - tp;
    if (union_ > 0) result[c] = static_cast<double>(tp) / static_cast<double>(union_);
  }
  return result;
}

double ConfusionMatrix::mean_iou() const {
  const auto ious = iou();
  double sum = 0;
  int n = 0;
  for (int c = 0; c < num_classes_; ++c) {
    if (!in_ground_truth(c)) continue;
    sum += ious[c];
    ++n;
  }
  return n ? sum / n : std::numeric_limits<double>::quiet_NaN();
}

double ConfusionMatrix::pixel_accuracy() const {
  const uint64_t total = total_pixels();
  if (!total) return std::numeric_limits<double>::quiet_NaN();
  uint64_t tp = 0;
  for (int c = 0; c < num_classes_; ++c) tp += true_positives(c);
  return static_cast<double>(tp) / static_cast<double>(total);
}

double ConfusionMatrix::mean_class_accuracy() const {
  double sum = 0;
  int n = 0;
  for (int c = 0; c < num_classes_; ++c) {
    const uint64_t gt = gt_pixels(c);
    if (!gt) continue;
    sum += static_cast<double>(true_positives(c)) / static_cast<double>(gt);
    ++n;
  }
  return n ? sum / n : std::numeric_limits<double>::quiet_NaN();
}

double ConfusionMatrix::frequency_weighted_iou() const {
  const uint64_t total = total_pixels();
  if (!total) return std::numeric_limits<double>::quiet_NaN();
  const auto ious = iou();
  double sum = 0;
  for (int c = 0; c < num_classes_; ++c) {
    const uint64_t gt = gt_pixels(c);
    if (gt) sum += static_cast<double>(gt) / static_cast<double>(total) * ious[c];
  }
  return sum;
}

}  // namespace clipes

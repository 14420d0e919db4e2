// The confusion matrix behind every segmentation score (spec §8): one matrix
// accumulated over the whole split, then IoU, accuracies and friends.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <vector>

namespace clipes {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes);

  // Accumulates one image (both CV_8UC1, same size; throws clipes::Error
  // otherwise). Ground-truth values outside [0, C) — 255 in practice — are
  // ignored. A predicted value outside [0, C) (e.g. 255 from --ignore-below)
  // predicts no class: the pixel counts in its ground-truth class's total but
  // is no one's true positive nor anyone's prediction.
  void add(const cv::Mat& prediction, const cv::Mat& ground_truth);
  void add(int prediction, int ground_truth, uint64_t count = 1);
  void merge(const ConfusionMatrix& other);

  int num_classes() const { return num_classes_; }
  uint64_t count(int ground_truth, int prediction) const;
  uint64_t true_positives(int c) const { return count(c, c); }
  uint64_t gt_pixels(int c) const;    // row sum + predictions outside [0, C)
  uint64_t pred_pixels(int c) const;  // column sum
  uint64_t total_pixels() const;      // pixels with a valid ground truth
  uint64_t ignored_pixels() const { return ignored_; }  // ground truth outside [0, C)
  // Pixels predicted with value v outside [0, C) other than 255 (which is the
  // deliberate "ignore" of --ignore-below), whatever their ground truth: a
  // sign of the wrong --classes or --label-ids, so eval warns about them.
  const std::vector<uint64_t>& predicted_outside_class_set() const { return outside_; }  // [256]
  // The same for ground-truth values other than 255: ignored like 255, but a
  // sign of a class set that does not fit the ground truth, so eval warns.
  const std::vector<uint64_t>& ground_truth_outside_class_set() const { return gt_outside_; }  // [256]
  bool in_ground_truth(int c) const { return gt_pixels(c) > 0; }

  // TP / (GT + Pred − TP); NaN when the class is neither in GT nor predicted.
  std::vector<double> iou() const;
  // Mean IoU over the classes that occur in the ground truth (NaN if none).
  double mean_iou() const;
  double pixel_accuracy() const;       // Σ TP / Σ GT
  double mean_class_accuracy() const;  // mean of TP_c / GT_c over classes in GT
  double frequency_weighted_iou() const;  // Σ (GT_c / Σ GT) · IoU_c

 private:
  int num_classes_;
  std::vector<uint64_t> counts_;      // C×C, row = ground truth, column = prediction
  std::vector<uint64_t> unassigned_;  // per GT class: predictions outside [0, C)
  uint64_t ignored_ = 0;
  std::vector<uint64_t> outside_ = std::vector<uint64_t>(256, 0);
  std::vector<uint64_t> gt_outside_ = std::vector<uint64_t>(256, 0);
};

}  // namespace clipes

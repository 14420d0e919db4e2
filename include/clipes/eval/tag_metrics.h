// Multi-label scores of predicted image tags against the true image labels
// (`clipes eval --tags`), with TagCLIP's arithmetic (its utils.py):
//   AP per class: images sorted by score, descending (ties keep list order);
//                 AP = Σ over positives of precision at that rank / #positives
//   mAP:          mean AP over the classes that have a positive image. (TagCLIP's
//                 script also averages in a 0 for classes with none; on full VOC
//                 and COCO every class has images, so the figures agree.)
//   overall P/R/F1: one TP/FP/FN count over all (image, class) pairs of the
//                 predicted tags, F1 = 2PR/(P+R) (its 'overall' mode).
//   per class P/R/F1 from the same counts per class.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace clipes {

struct ClassTagScores {
  std::string name;
  double ap = 0;                 // NaN when no image has the class
  double precision = 0, recall = 0, f1 = 0;
  size_t positives = 0, predicted = 0, true_positives = 0;
};

struct TagMetrics {
  size_t images = 0;
  double map = 0;                // NaN without scores
  double precision = 0, recall = 0, f1 = 0;
  std::vector<ClassTagScores> classes;
};

// scores[i][c] per image and class (may be empty: no AP then); predicted and
// truth: class indices per image. Throws clipes::Error on ragged input.
TagMetrics tag_metrics(const std::vector<std::vector<float>>& scores, const std::vector<std::vector<int>>& predicted,
                       const std::vector<std::vector<int>>& truth, const std::vector<std::string>& class_names);

}  // namespace clipes

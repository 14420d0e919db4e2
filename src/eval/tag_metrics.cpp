#include "clipes/eval/tag_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "clipes/util/error.h"

namespace clipes {
namespace {

double ratio(size_t a, size_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }
double f1_of(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

}  // namespace

TagMetrics tag_metrics(const std::vector<std::vector<float>>& scores, const std::vector<std::vector<int>>& predicted,
                       const std::vector<std::vector<int>>& truth, const std::vector<std::string>& class_names) {
  const size_t n = truth.size(), k = class_names.size();
  if (predicted.size() != n || (!scores.empty() && scores.size() != n))
    throw Error("tag metrics: predictions for " + std::to_string(predicted.size()) + " images, truth for " +
                std::to_string(n));
  std::vector<std::vector<char>> is_true(n, std::vector<char>(k, 0)), is_pred(n, std::vector<char>(k, 0));
  for (size_t i = 0; i < n; ++i) {
    for (int c : truth[i]) {
      if (c < 0 || static_cast<size_t>(c) >= k) throw Error("tag metrics: true class index out of range");
      is_true[i][static_cast<size_t>(c)] = 1;
    }
    for (int c : predicted[i]) {
      if (c < 0 || static_cast<size_t>(c) >= k) throw Error("tag metrics: predicted class index out of range");
      is_pred[i][static_cast<size_t>(c)] = 1;
    }
    if (!scores.empty() && scores[i].size() != k) throw Error("tag metrics: an image has the wrong number of scores");
  }
  TagMetrics m;
  m.images = n;
  size_t tp = 0, fp = 0, fn = 0, ap_classes = 0;
  double ap_sum = 0;
  for (size_t c = 0; c < k; ++c) {
    ClassTagScores s;
    s.name = class_names[c];
    size_t fp_c = 0;
    for (size_t i = 0; i < n; ++i) {
      s.positives += is_true[i][c];
      s.predicted += is_pred[i][c];
      s.true_positives += is_true[i][c] && is_pred[i][c];
      fp_c += !is_true[i][c] && is_pred[i][c];
    }
    s.precision = ratio(s.true_positives, s.predicted);
    s.recall = ratio(s.true_positives, s.positives);
    s.f1 = f1_of(s.precision, s.recall);
    tp += s.true_positives;
    fp += fp_c;
    fn += s.positives - s.true_positives;
    s.ap = std::numeric_limits<double>::quiet_NaN();
    if (!scores.empty() && s.positives > 0) {
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a][c] > scores[b][c]; });
      size_t hits = 0;
      double sum = 0;
      for (size_t rank = 0; rank < n; ++rank) {
        if (!is_true[order[rank]][c]) continue;
        ++hits;
        sum += static_cast<double>(hits) / static_cast<double>(rank + 1);
      }
      s.ap = sum / static_cast<double>(s.positives);
      ap_sum += s.ap;
      ++ap_classes;
    }
    m.classes.push_back(s);
  }
  m.map = ap_classes ? ap_sum / static_cast<double>(ap_classes) : std::numeric_limits<double>::quiet_NaN();
  m.precision = ratio(tp, tp + fp);
  m.recall = ratio(tp, tp + fn);
  m.f1 = f1_of(m.precision, m.recall);
  return m;
}

}  // namespace clipes

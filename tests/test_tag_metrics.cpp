// eval --tags arithmetic (eval/tag_metrics.h) on a case worked by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "clipes/eval/tag_metrics.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

TEST(TagMetrics, ApPrecisionRecallAndF1AsWorkedByHand) {
  // Four images, two classes.
  const std::vector<std::vector<float>> scores = {{0.9f, 0.1f}, {0.8f, 0.7f}, {0.3f, 0.6f}, {0.2f, 0.4f}};
  const std::vector<std::vector<int>> truth = {{0}, {1}, {0, 1}, {}};
  const std::vector<std::vector<int>> predicted = {{0}, {0, 1}, {1}, {1}};
  const TagMetrics m = tag_metrics(scores, predicted, truth, {"a", "b"});
  ASSERT_EQ(m.classes.size(), 2u);
  // a ranked: img0 (T), img1 (F), img2 (T), img3 (F) → AP = (1/1 + 2/3) / 2.
  EXPECT_NEAR(m.classes[0].ap, (1.0 + 2.0 / 3) / 2, 1e-12);
  // b ranked: img1 (T), img2 (T), img3, img0 → AP = 1.
  EXPECT_NEAR(m.classes[1].ap, 1.0, 1e-12);
  EXPECT_NEAR(m.map, ((1.0 + 2.0 / 3) / 2 + 1.0) / 2, 1e-12);
  // a: predicted img0, img1 → TP 1, FP 1, FN 1 (img2).
  EXPECT_NEAR(m.classes[0].precision, 0.5, 1e-12);
  EXPECT_NEAR(m.classes[0].recall, 0.5, 1e-12);
  EXPECT_NEAR(m.classes[0].f1, 0.5, 1e-12);
  // b: predicted img1, img2, img3 → TP 2, FP 1, FN 0.
  EXPECT_NEAR(m.classes[1].precision, 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.classes[1].recall, 1.0, 1e-12);
  EXPECT_NEAR(m.classes[1].f1, 0.8, 1e-12);
  // Overall: TP 3, FP 2, FN 1 → P 0.6, R 0.75, F1 2·0.45/1.35.
  EXPECT_NEAR(m.precision, 0.6, 1e-12);
  EXPECT_NEAR(m.recall, 0.75, 1e-12);
  EXPECT_NEAR(m.f1, 2 * 0.6 * 0.75 / 1.35, 1e-12);
  EXPECT_EQ(m.classes[1].positives, 2u);
  EXPECT_EQ(m.classes[1].predicted, 3u);
}

TEST(TagMetrics, TiesKeepListOrderAndAbsentClassesHaveNoAp) {
  // Equal scores: the earlier image ranks first (a stable sort), so a true
  // image listed second gets precision 1/2.
  const TagMetrics m = tag_metrics({{0.5f, 0.f}, {0.5f, 0.f}}, {{}, {}}, {{}, {0}}, {"a", "b"});
  EXPECT_NEAR(m.classes[0].ap, 0.5, 1e-12);
  EXPECT_TRUE(std::isnan(m.classes[1].ap));  // no image has b
  EXPECT_NEAR(m.map, 0.5, 1e-12);            // the mean over classes with a positive
  EXPECT_EQ(m.f1, 0.0);
  // Without scores there is no AP at all; P/R/F1 still.
  const TagMetrics no_scores = tag_metrics({}, {{0}}, {{0}}, {"a"});
  EXPECT_TRUE(std::isnan(no_scores.map));
  EXPECT_EQ(no_scores.f1, 1.0);
  EXPECT_THROW(tag_metrics({}, {{0}}, {{0}, {}}, {"a"}), Error);
  EXPECT_THROW(tag_metrics({}, {{3}}, {{0}}, {"a"}), Error);
}

}  // namespace
}  // namespace clipes

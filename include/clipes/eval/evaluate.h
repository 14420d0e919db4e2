// Scores predicted masks or saved CAMs against ground truth (spec §8), the way
// the reference evaluates: one confusion matrix over the whole set of images.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "clipes/eval/eval_report.h"
#include "clipes/eval/ground_truth.h"
#include "clipes/io/saved_cams.h"

namespace clipes {

// What eval needs to read a `segment` run's saved scores (run.json).
struct SegmentScoreSource {
  SavedScoreRule rule;
  std::vector<int> mask_values;  // per segment class index: the mask value it is written as
  int background = -1;           // the background class's index, or -1
};

struct EvalOptions {
  LabelSet labels;        // classes and their mask values; empty → the ground truth's own
  int threads = 0;        // 0 = one per core
  std::string cam_suffix = "refined";  // CAM files <stem>_<suffix>.npy (refined, or cam for unrefined)
  // Set for a `segment` run: its saved maps are class probabilities, not CAMs.
  std::optional<SegmentScoreSource> segment;
};

// Predictions are <pred_dir>/masks/<id>.png, or <pred_dir>/<id>.png when there
// is no masks/ folder. A missing prediction is not an error: it is listed in
// report.missing and excluded from the scores (callers should say so loudly).
// A prediction whose size differs from its ground truth throws clipes::Error
// naming the prediction file; so does an unreadable file or a missing ground truth.
EvalReport evaluate_masks(const std::string& pred_dir, const GtSource& gt, const std::vector<std::string>& ids,
                          const EvalOptions& options = {});

// From saved CAMs <pred_dir>/cams/<id>_refined.npy (float16/float32 [K,H,W])
// and <id>_keys.npy (int64 [K], 0-based class indices into options.labels):
// sweeps bg = (1 − max)^α for α ∈ {1, 2} (unrefined CAMs: α ∈ 1..10, as the
// official eval_cam.py does for 'highres') and constant backgrounds 0.05..0.95
// (step 0.05), label = argmax over [bg, CAMs] (ties to the lower index, so to
// background). The report's scores are those of the best setting; report.sweep
// lists all of them. Arithmetic in float16 when the CAMs are float16, as the
// reference's numpy does.
//
// A `segment` run (options.segment set): its cams/<stem>_scores.npy become
// class probabilities at the ground truth's size (io/saved_cams.h), or its
// CLIP-ES dicts (segment --cam-format clip-es) are read as they are; the sweep
// is the constant backgrounds 0.05..0.95 on the best foreground probability
// (what segment --bg-threshold applies), plus, when the scores hold a
// background class, "method": the argmax over every class, background
// included (the run's own decision, but for NACLIP's min_probability).
EvalReport evaluate_cams(const std::string& pred_dir, const GtSource& gt, const std::vector<std::string>& ids,
                         const EvalOptions& options = {});

}  // namespace clipes

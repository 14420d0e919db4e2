// From refined CAMs to a pseudo mask and a confidence map (spec §7).
#pragma once
#include <opencv2/core.hpp>

#include <vector>

#include "clipes/io/pseudo_mask.h"

namespace at { class Tensor; }

namespace clipes {

struct PseudoMaskOptions {
  double bg_power = 1.0;      // α in bg = (1 − max_c R_c)^α
  // ≥ 0: a constant background score c instead (the "constant c" rows of
  // `eval --cams`, which pads the CAMs with c exactly like this).
  double bg_threshold = -1.0;
  double ignore_below = 0.0;  // τ: pixels whose confidence < τ become 255 (ignore)
  // Decide on float16-rounded scores, as the reference does: it saves its CAMs
  // as float16 and its evaluation takes the argmax of those (numpy float16
  // arithmetic for the background too). Near-ties then resolve the same way,
  // and masks agree with what `eval --cams` computes from our saved CAMs.
  bool float16_scores = true;
};

// refined: CPU float32 [K, H, W]; label_ids[c]: the mask value written for CAM c
// (1..254). argmax over [bg, R_1..R_K] with ties to the lower index, so
// background wins ties. K = 0 gives all background with confidence 1.
PseudoMask make_pseudo_mask(const at::Tensor& refined, const std::vector<int>& label_ids,
                            const PseudoMaskOptions& options = {});

}  // namespace clipes

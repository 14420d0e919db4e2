// segment_images — `clipes segment` over a list of images: DenseSegmenter
// per image, no labels needed, on the shared batch machinery
// (pipeline/image_batch.h: resume, shards, failure log, atomic writes).
//
// Outputs under OUT, the same layout as `generate` so `eval` and `visualize`
// read them unchanged:
//   masks/<stem>.png         VOC-palette PNG of the classes' mask values
//   confidence/<stem>.png    round(255 · the winning class probability)
//   cams/<stem>_scores.npy   float16 [S, hs, ws]: the method's channels at the
//                            scoring grid, before the final upsampling (--save-cams)
//   cams/<stem>_keys.npy     int64 [S]: the class index of each channel (--save-cams)
//   vis/<stem>.jpg           contact sheet (--vis)
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "clipes/data/dataset.h"
#include "clipes/io/image_decode.h"
#include "clipes/pipeline/batch_runner.h"
#include "clipes/methods/segment_classes.h"

namespace clipes {

class DenseSegmenter;

struct SegmentRunOptions {
  BatchOptions batch;
  DecodeLimits decode;
  bool save_scores = false;  // --save-cams
  bool vis = false;          // --vis contact sheets
};

struct SegmentPaths {
  std::string mask, confidence, scores, keys, vis;
  static SegmentPaths for_stem(const std::string& out_dir, const std::string& stem);
};

BatchSummary segment_images(const DenseSegmenter& segmenter, const SegmentClasses& classes,
                            const std::vector<ImageRecord>& records, const SegmentRunOptions& options,
                            const std::function<void(const BatchProgress&)>& progress = {});

}  // namespace clipes

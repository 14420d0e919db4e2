// segment_images — `clipes segment` over a list of images: any ImageSegmenter
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
// or, with CamFormat::ClipEs, cams/<stem>.npy: the official CLIP-ES dict
// (io/clip_es_cams.h) whose 'attn_highres' holds the class probabilities at
// the image of the foreground classes that win the foreground argmax
// somewhere, 'keys' their index in the class file (mask value − 1 with
// consecutive ids), so the official eval_cam.py sweeps its background.
//   vis/<stem>.jpg           contact sheet (--vis)
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "clipes/data/dataset.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/mask_writer.h"
#include "clipes/pipeline/batch_runner.h"
#include "clipes/methods/image_segmenter.h"
#include "clipes/methods/segment_classes.h"

namespace clipes {

struct SegmentRunOptions {
  BatchOptions batch;
  DecodeLimits decode;
  bool save_scores = false;  // --save-cams
  CamFormat cam_format = CamFormat::Npy;  // the layout of the saved scores
  bool vis = false;          // --vis contact sheets
};

struct SegmentStats {
  BatchSummary batch;
  SegmentTimings stage_ms_sum;  // summed over the images computed
  int64_t images_computed = 0;
};

struct SegmentPaths {
  std::string mask, confidence, scores, keys, clip_es, vis;
  static SegmentPaths for_stem(const std::string& out_dir, const std::string& stem);
};

SegmentStats segment_images(const ImageSegmenter& segmenter, const SegmentClasses& classes,
                            const std::vector<ImageRecord>& records, const SegmentRunOptions& options,
                            const std::function<void(const BatchProgress&)>& progress = {});

}  // namespace clipes

// generate_masks — CLIP-ES over a list of images: the batch pipeline behind
// `clipes generate`. Per image: labels → class indices, ClipEs, pseudo mask,
// then the writer (io/mask_writer.h) on the write thread. Decoding, compute
// and writing overlap (pipeline/batch_runner.h); a failing image is recorded
// in OUT/failures.jsonl and skipped; complete outputs are skipped on resume.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "clipes/cam/mask_from_cams.h"
#include "clipes/data/dataset.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/mask_writer.h"
#include "clipes/pipeline/batch_runner.h"
#include "clipes/methods/clip_es.h"
#include "clipes/text/class_config.h"

namespace clipes {

// The ClipEs settings a class file implies (prompts, background words,
// template, box threshold); callers override what the user asked for.
ClipEsConfig clip_es_config_for(const ClassConfig& classes);

struct GenerateOptions {
  BatchOptions batch;  // out_dir, shard, limit, resume, queue depth
  DecodeLimits decode;  // --max-pixels: refused from the header, before decoding
  PseudoMaskOptions mask;
  MaskWriteOptions write;
  ClassConfig::LabelIds label_ids = ClassConfig::LabelIds::Consecutive;
  // Also a contact sheet per image, OUT/vis/<stem>.jpg (image, CAMs, refined
  // CAMs, mask), drawn from the in-memory float32 CAMs after the mask is
  // written, as segment_images does: a run killed in between has no sheet for
  // that image, and `clipes visualize` can redo it from saved CAMs.
  bool vis = false;
};

struct GenerateStats {
  BatchSummary batch;
  ClipEsTimings stage_ms_sum;  // summed over processed images
  int64_t images_computed = 0;
  int64_t labels_computed = 0;
};

// Runs the images of `records` that fall into the shard. Throws only for fatal
// problems (OUT not writable, out of memory); per-image problems — unreadable
// file, no labels, an unknown class name — go to failures.jsonl.
GenerateStats generate_masks(const ClipEs& clip_es, const ClassConfig& classes,
                             const std::vector<ImageRecord>& records, const GenerateOptions& options,
                             const std::function<void(const BatchProgress&)>& progress = {});

}  // namespace clipes

// Ground truth written as VOC-style class PNGs (issue 27 item 9): the layout
// the official CLIP-ES scripts read as --gt_root (<id>.png, class values,
// 255 = ignore, the VOC palette). For COCO that means rasterising the
// instances json once, as the CLIP-ES authors did with their own converter,
// so that eval_cam.py can score a clipes run on COCO too.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "clipes/pipeline/batch_runner.h"

namespace clipes {

class GtSource;

// Writes <batch.out_dir>/<id>.png for each id through the shared batch
// runner: resumable (a PNG that exists is complete, each is written
// atomically), sharded, an id without ground truth recorded in failures.jsonl.
BatchSummary write_ground_truth_pngs(const GtSource& gt, const std::vector<std::string>& ids,
                                     const BatchOptions& batch,
                                     const std::function<void(const BatchProgress&)>& progress = {});

}  // namespace clipes

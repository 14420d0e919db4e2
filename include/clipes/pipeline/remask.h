// Masks re-made from saved CAMs: what `clipes masks --from SRC --out DST`
// runs (issue 27 item 6). Trying another background threshold, CAM kind or
// ignore level used to mean a full network rerun into a new OUT (~10 h for
// VOC train_aug on a CPU); from the CAMs a `generate --save-cams` run left,
// the same step generate takes last (cam/mask_from_cams.h, float16 scores
// as the reference) takes seconds per thousand images. At generate's own
// settings the masks are byte-identical to generate's.
#pragma once
#include <string>
#include <vector>

#include "clipes/cam/mask_from_cams.h"
#include "clipes/io/mask_writer.h"
#include "clipes/pipeline/batch_runner.h"

namespace clipes {

struct RemaskOptions {
  std::string cams_dir;               // SRC/cams: either layout (io/saved_cams.h)
  BatchOptions batch;                 // DST, shard, limit, resume (a mask + confidence = complete)
  PseudoMaskOptions mask;             // background rule and ignore level
  bool unrefined = false;             // the CAMs before CAA (generate --no-caa's masks)
  std::vector<int> value_of_class;    // class index (the keys) → mask value, as SRC wrote them
  MaskWriteOptions write;             // palette or grey; CAMs are never copied
};

// The stems that have saved CAMs in `cams_dir` (sorted): <stem>_refined.npy
// with its keys, or an official <stem>.npy dict. No folder: none.
std::vector<std::string> stems_with_saved_cams(const std::string& cams_dir);

// Writes DST/masks/<stem>.png and DST/confidence/<stem>.png for each stem,
// through the shared batch runner (failures logged, the run goes on).
BatchSummary remask_from_saved_cams(const std::vector<std::string>& stems, const RemaskOptions& options,
                                    const std::function<void(const BatchProgress&)>& progress = {});

}  // namespace clipes

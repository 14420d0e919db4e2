// A run's masks as a COCO results file: one entry per image and class
// present, {"image_id", "category_id", "segmentation": {"size": [h, w],
// "counts": <compressed RLE>}, "score"}, the layout pycocotools' loadRes and
// COCOeval(iouType='segm') read. The score is the mean confidence of the
// class's pixels (confidence/<stem>.png).
#pragma once
#include <map>
#include <string>

namespace clipes {

struct CocoResultsSummary {
  size_t images = 0, entries = 0;
  size_t skipped_stems = 0;  // masks whose stem is not a COCO image id (not all digits)
};

// category_of_value: mask value → COCO category id (0 and 255 are never
// categories). Writes `path` atomically. Throws clipes::Error naming the
// folder when no mask has a numeric stem.
CocoResultsSummary write_coco_results(const std::string& run_dir, const std::map<int, int>& category_of_value,
                                      const std::string& path);

}  // namespace clipes

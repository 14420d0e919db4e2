// A run's masks as a COCO results file: one entry per image and class
// present, {"image_id", "category_id", "segmentation": {"size": [h, w],
// "counts": <compressed RLE>}, "score"}, the layout pycocotools' loadRes and
// COCOeval(iouType='segm') read. The score is the mean confidence of the
// class's pixels (confidence/<stem>.png).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace clipes {

struct CocoResultsSummary {
  size_t images = 0, entries = 0;
  size_t skipped_stems = 0;  // masks whose stem names no COCO image id
};

// The image id a COCO file stem spells: all digits ("000000000042", COCO
// 2017), or COCO 2014's "COCO_val2014_000000000042" (the names CLIP-ES
// uses; issue 27 item 5): the digits after the last '_'. nullopt otherwise.
std::optional<int64_t> coco_image_id_from_stem(const std::string& stem);

// category_of_value: mask value → COCO category id (0 and 255 are never
// categories). image_id_of: a mask stem → its image id, nullopt to skip the
// mask (the run's instances json when there is one; else the file-name
// rule). Writes `path` atomically. Throws clipes::Error naming the folder
// when no mask has an image id.
CocoResultsSummary write_coco_results(
    const std::string& run_dir, const std::map<int, int>& category_of_value, const std::string& path,
    const std::function<std::optional<int64_t>(const std::string&)>& image_id_of = coco_image_id_from_stem);

}  // namespace clipes

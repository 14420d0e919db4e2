// Training-ready exports of a `generate`/`segment` output folder: the split
// list and the config snippet mmsegmentation or deeplab-pytorch need to train
// on the pseudo masks (README "Training on the masks").
//
// The masks hold class ids with 0 = background and 255 = ignore, the VOC
// convention both frameworks use. A run whose class set has no background
// never writes 0; for mmseg that is `reduce_zero_label=True` (ids 1..N
// become 0..N−1), which the snippet then sets.
#pragma once
#include <string>
#include <vector>

namespace clipes {

enum class TrainingFramework { Mmseg, Deeplab };
// "mmseg" | "deeplab" → TrainingFramework; throws clipes::Error otherwise.
TrainingFramework parse_training_framework(const std::string& text);

struct TrainingExportInputs {
  std::string run_dir;        // OUT of generate/segment (masks/ inside)
  std::string images_dir;     // where the images are (run.json's images_folder)
  int num_classes = 0;        // classes the masks can hold, background included when there is one
  bool has_background = true; // masks use 0 for background
  std::vector<std::string> class_names;  // by mask value 0..; for the snippet's metainfo
};

struct TrainingExport {
  std::string list_file, config_file;  // written, under <run_dir>/export/<framework>/
  size_t images = 0;                   // lines in the list
  size_t masks_without_image = 0;      // masks whose image was not found (left out)
};

// Lists every mask whose image exists, writes the list and the snippet
// atomically. Throws clipes::Error naming the folder when there are no masks.
TrainingExport export_for_training(TrainingFramework framework, const TrainingExportInputs& inputs);

}  // namespace clipes

// Contact sheets: one image per input that shows what the pipeline saw and
// decided, for eyeballing a run without numpy.
//
// Layout (two tile columns, each tile under a title bar):
//   row 0       original image            | pseudo mask blended over the image
//   (GT row)    ground truth (its title    | errors: wrong pixels red, right ones dimmed
//               carries the image's IoU)
//   row 1..K    "<label>: CAM" (JET)      | "<label>: refined" (JET)   — absent on mask-only sheets
//   colour bar  the JET scale 0 … 1 the heat maps use (when there are heat maps)
//   legend      swatch + id + name for every value in the mask or the ground
//               truth; below the panels, or in a column beside them when the
//               panels are taller than wide (many labels).
// The ignore value 255 is drawn hatched black and white everywhere (mask,
// ground truth, legend), so it can never be confused with a palette colour
// such as VOC's grey (128,128,128) or its cream 255 entry.
// Tiles are scaled down (never up) so the panels stay at most ~2000 px wide.
#pragma once
#include <ATen/core/Tensor.h>
#include <opencv2/core.hpp>

#include <string>
#include <vector>

#include "clipes/io/indexed_png.h"  // Rgb

namespace clipes {

struct ContactSheetInput {
  cv::Mat rgb;       // CV_8UC3, R,G,B
  cv::Mat mask_ids;  // CV_8UC1 predicted ids (resized to the image, nearest, if another size)
  // Optional CV_8UC1 ground-truth ids (255 = ignore): adds the GT/errors row.
  cv::Mat ground_truth;
  std::string ground_truth_title = "ground truth";  // e.g. with the image's IoU (see image_iou_title)
  // One heat-map row per label. Either tensor may be undefined (that column
  // stays empty); both undefined gives a mask-only sheet. [K,H,W], any float
  // dtype, values clamped to [0,1], resized to the image.
  std::vector<std::string> label_names;
  at::Tensor cams, refined;
  std::string cam_title = "CAM", refined_title = "refined";
  std::vector<std::string> class_name_by_id;  // names mask value i; 255 is "ignore" unless named
  std::vector<Rgb> palette;                   // colour of each id
};

struct ContactSheetGeometry {
  int tile_width = 0, tile_height = 0;  // one scaled image
  int rows = 0;                         // tile rows
  int colour_bar_height = 0;            // 0 without heat maps
  bool legend_beside = false;
  int legend_columns = 0, legend_rows = 0;
  int width = 0, height = 0;  // the whole sheet
};

// The sheet's size for an image_height × image_width input with
// `num_heat_rows` label rows (0: mask-only), a ground-truth row or not, and
// `num_legend_entries` distinct ids.
ContactSheetGeometry contact_sheet_geometry(int image_height, int image_width, int num_heat_rows,
                                            bool ground_truth_row, int num_legend_entries);

// Returns a CV_8UC3 BGR image (ready for cv::imencode). Throws clipes::Error
// when the shapes do not agree.
cv::Mat make_contact_sheet(const ContactSheetInput& input);

// make_contact_sheet, JPEG-encoded and written atomically to `path` (parent
// folders created): shared by `visualize`, `generate --vis` and `segment
// --vis`. Throws clipes::Error naming `path` on failure.
void write_contact_sheet(const std::string& path, const ContactSheetInput& input, int jpeg_quality = 90);

// "GT, IoU 0.734": the mean IoU of this one image over the classes in its
// ground truth or its prediction (so a wrongly predicted class lowers it),
// ground-truth 255 ignored. "GT, no classes" when both are empty.
std::string image_iou_title(const cv::Mat& prediction, const cv::Mat& ground_truth);

}  // namespace clipes

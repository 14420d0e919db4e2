// CAM contact sheets (issue #4): one image per input that shows what the
// pipeline saw and decided, for eyeballing a run without numpy.
//
// Layout (two tile columns, each tile under a title bar):
//   row 0       original image          | final mask blended over the image
//   row 1..K    "<label>: CAM" (JET)    | "<label>: refined" (JET)
//   legend      colour swatch + class name for every id present in the mask
//               (255 = "ignore"), wrapping in fixed-width cells.
// Tiles are scaled down (never up) so the sheet stays at most ~2000 px wide.
#pragma once
#include <opencv2/core.hpp>

#include <string>
#include <vector>

#include "clipes/io/indexed_png.h"  // Rgb

namespace at { class Tensor; }

namespace clipes {

struct ContactSheetGeometry {
  int tile_width = 0, tile_height = 0;  // one scaled image
  int legend_columns = 0, legend_rows = 0;
  int width = 0, height = 0;            // the whole sheet
};

// The sheet's size for an image_height × image_width input with `num_labels`
// CAM rows and `num_legend_entries` distinct mask ids.
ContactSheetGeometry contact_sheet_geometry(int image_height, int image_width, int num_labels,
                                            int num_legend_entries);

// rgb: CV_8UC3 (R,G,B) original; cams, refined: CPU float tensors [K,H,W]
// (any float dtype; values in [0,1], clamped) in label_names order;
// mask_ids: CV_8UC1 class ids; class_name_by_id[i] names mask value i (255 is
// "ignore" unless the list is that long); palette: colour of each id.
// CAMs and the mask are resized to the image if their size differs.
// Returns a CV_8UC3 BGR image (ready for cv::imencode). Throws clipes::Error
// when the shapes do not agree.
cv::Mat make_contact_sheet(const cv::Mat& rgb, const std::vector<std::string>& label_names, const at::Tensor& cams,
                           const at::Tensor& refined, const cv::Mat& mask_ids,
                           const std::vector<std::string>& class_name_by_id, const std::vector<Rgb>& palette);

// make_contact_sheet, JPEG-encoded and written atomically to `path` (parent
// folders created) — one image's sheet, shared by `clipes visualize` and
// `clipes generate --vis`. Throws clipes::Error naming `path` on failure.
void write_contact_sheet(const std::string& path, const cv::Mat& rgb, const std::vector<std::string>& label_names,
                         const at::Tensor& cams, const at::Tensor& refined, const cv::Mat& mask_ids,
                         const std::vector<std::string>& class_name_by_id, const std::vector<Rgb>& palette,
                         int jpeg_quality = 90);

}  // namespace clipes

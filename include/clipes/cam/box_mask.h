// Box mask of a CAM (spec §6): the region CAA is allowed to propagate from.
//
// Reproduces the reference's scoremap2bbox exactly, quirks included, because
// the boxes decide which columns of the affinity survive:
//   u8 = floor(255·cam) as uint8;  t = int(θ·max(u8));  bin = u8 > t;
//   every contour of bin (RETR_TREE, so holes count too) → boundingRect,
//   clamped with x1 = min(x+bw, w−1), y1 = min(y+bh, h−1), end exclusive:
//   a box touching the right/bottom edge loses that column/row.
#pragma once
#include <opencv2/core.hpp>

#include <vector>

namespace at { class Tensor; }

namespace clipes {

struct BoxMaskBox { int x0, y0, x1, y1; };  // end-exclusive, after the clamp

// cam_f32: CV_32FC1 h×w with values in [0, 1]. No contours → no boxes.
std::vector<BoxMaskBox> cam_boxes(const cv::Mat& cam_f32, double threshold);

// The union of cam_boxes as a 0/1 mask. cam: [h, w] float (any device);
// returns [h, w] float32 on the same device.
at::Tensor box_mask(const at::Tensor& cam, double threshold);

}  // namespace clipes

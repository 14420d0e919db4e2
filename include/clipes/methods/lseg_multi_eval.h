// LSeg's multi-scale + flip test-time evaluation (lang-seg's
// LSeg_MultiEvalModule, lseg-spec §7.2): the image at six scales, each run in
// 480×480 windows (padded with −1, overlaps averaged), every window also run
// mirrored and the two outputs added, the raw logits of all scales summed at
// the image's size. Only the argmax of the sum is meaningful (lseg-spec §10 item 10).
#pragma once
#include <ATen/core/Tensor.h>
#include <opencv2/core.hpp>

#include <vector>

namespace clipes {

class LsegModel;

struct LsegMultiEvalOptions {
  int base_size = 520;  // long side at scale 1 (lseg-spec §7.2; citys: 2048)
  int crop_size = 480;  // network input side (citys: 768)
  std::vector<double> scales = {0.5, 0.75, 1.0, 1.25, 1.5, 1.75};
  bool flip = true;
};

// LSeg's input normalisation (lseg-spec §7): ToTensor then (x − 0.5) / 0.5,
// in torchvision's float32 order. `rgb_u8` CV_8UC3 (R,G,B) → [1, 3, H, W].
at::Tensor lseg_normalize(const cv::Mat& rgb_u8);

// Where one scale of the evaluator puts its windows (lseg-spec §7.2): the
// image resized to height×width (long side ceil(base·s)); one window padded
// to crop×crop when the long side fits, else rows×cols windows of crop at
// `stride` over the image, first padded to crop on the short side if shorter.
struct LsegScalePlan {
  int64_t height = 0, width = 0;
  bool single_window = true, short_side_padded = false;
  int64_t rows = 1, cols = 1, stride = 0;
};
LsegScalePlan lseg_scale_plan(int64_t h, int64_t w, double scale, const LsegMultiEvalOptions& options);
// Network forwards lseg_multi_eval makes for an h×w image (flips included).
int64_t lseg_forward_count(int64_t h, int64_t w, const LsegMultiEvalOptions& options);

// Summed raw logits [1, K, h, w] for a normalised image [1, 3, h, w] of any
// size and text features [K, C] (LsegModel::encode_text's).
at::Tensor lseg_multi_eval(const LsegModel& model, const at::Tensor& image, const at::Tensor& text_features,
                           const LsegMultiEvalOptions& options = {});

}  // namespace clipes

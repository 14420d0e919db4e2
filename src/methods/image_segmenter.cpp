#include "clipes/methods/image_segmenter.h"

#include <torch/torch.h>

#include <cstring>
#include <tuple>

namespace clipes {

ImageSegmenter::~ImageSegmenter() = default;

SegmentTimings& SegmentTimings::operator+=(const SegmentTimings& o) {
  preprocess_ms += o.preprocess_ms;
  forward_ms += o.forward_ms;
  upsample_ms += o.upsample_ms;
  return *this;
}

void label_rows(const at::Tensor& probs, int background, double bg_threshold, int64_t y0, SegmentResult& result) {
  const int64_t num_classes = probs.size(0), rows = probs.size(1), width = probs.size(2);
  at::Tensor value, index;
  std::vector<int64_t> foreground;
  for (int64_t c = 0; c < num_classes; ++c)
    if (c != background) foreground.push_back(c);
  if (bg_threshold >= 0 && !foreground.empty()) {
    // The constant background of eval's sweep on saved scores: the best
    // foreground class, unless its probability is <= the threshold (ties go
    // to background there too); the method's own background decision is
    // replaced, as eval replaces it.
    const at::Tensor foreground_index = torch::tensor(foreground, torch::kLong);
    const auto [best, best_index] = probs.index_select(0, foreground_index).max(0);
    const at::Tensor is_background = best <= bg_threshold;
    index = at::where(is_background, at::full_like(best_index, background >= 0 ? background : num_classes),
                      foreground_index.index({best_index}));
    value = at::where(is_background, 1 - best, best);
  } else {
    std::tie(value, index) = probs.max(0);  // [rows, W]
  }
  const at::Tensor v = value.clamp(0.0, 1.0).to(torch::kFloat).contiguous();
  const at::Tensor i = index.to(torch::kInt).contiguous();
  std::memcpy(result.confidence.ptr<float>(static_cast<int>(y0)), v.data_ptr<float>(), sizeof(float) * rows * width);
  std::memcpy(result.class_index.ptr<int>(static_cast<int>(y0)), i.data_ptr<int>(), sizeof(int) * rows * width);
}

}  // namespace clipes

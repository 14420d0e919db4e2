#include "clipes/cam/mask_from_cams.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "clipes/util/error.h"

namespace clipes {

PseudoMask make_pseudo_mask(const at::Tensor& refined, const std::vector<int>& label_ids,
                            const PseudoMaskOptions& options) {
  if (refined.dim() != 3) throw Error("pseudo mask: refined CAMs must be [K, H, W]");
  const int64_t k = refined.size(0);
  if (static_cast<int64_t>(label_ids.size()) != k)
    throw Error("pseudo mask: " + std::to_string(label_ids.size()) + " label ids for " + std::to_string(k) +
                " CAMs");
  for (int id : label_ids)
    if (id < 1 || id > 254) throw Error("pseudo mask: label id " + std::to_string(id) + " outside 1..254");
  // No full-size copies: a CPU float32 contiguous input (what ClipEs returns)
  // is read in place and each score rounded to float16 as it is read — the
  // same values as converting the whole tensor, without 6·K bytes per pixel
  // of temporaries (1 GB for four labels on a 40 MP photo).
  at::Tensor cams = refined.detach().to(torch::kCPU, torch::kFloat).contiguous();
  // numpy float16 ufuncs compute in float32 and round the result to float16.
  auto round16 = [&](float v) { return options.float16_scores ? static_cast<float>(c10::Half(v)) : v; };
  const int h = static_cast<int>(cams.size(1)), w = static_cast<int>(cams.size(2));
  const int64_t plane = static_cast<int64_t>(h) * w;
  const float* data = cams.data_ptr<float>();

  PseudoMask out{cv::Mat(h, w, CV_8UC1), cv::Mat(h, w, CV_32FC1)};
  for (int y = 0; y < h; ++y) {
    uint8_t* label_row = out.labels.ptr<uint8_t>(y);
    float* conf_row = out.confidence.ptr<float>(y);
    for (int x = 0; x < w; ++x) {
      const int64_t p = static_cast<int64_t>(y) * w + x;
      float fg_max = 0.0f;
      int best = -1;  // the first maximum among the foreground CAMs
      for (int64_t c = 0; c < k; ++c) {
        const float v = round16(data[c * plane + p]);
        if (c == 0 || v > fg_max) {
          fg_max = v;
          best = static_cast<int>(c);
        }
      }
      // bg = (1 − max_c R_c)^α; np.argmax over [bg, R_1..R_K] keeps the first
      // maximum, so background wins ties (spec §7).
      const float bg = options.bg_threshold >= 0
                           ? round16(static_cast<float>(options.bg_threshold))
                           : round16(static_cast<float>(std::pow(round16(1.0f - fg_max), options.bg_power)));
      const bool background = k == 0 || !(fg_max > bg);
      const float conf = background ? (k == 0 ? 1.0f : bg) : fg_max;
      conf_row[x] = conf;
      label_row[x] = conf < options.ignore_below ? 255 : background ? 0 : static_cast<uint8_t>(label_ids[best]);
    }
  }
  return out;
}

}  // namespace clipes

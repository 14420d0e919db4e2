#include "clipes/methods/lseg_multi_eval.h"

#include <torch/torch.h>

#include <cmath>

#include "clipes/model/lseg_model.h"
#include "clipes/util/error.h"

namespace clipes {

namespace {

// PyTorch-Encoding's up_kwargs: bilinear, align_corners=True, no antialias
// even when shrinking (lseg-spec §7.2, §10 item 10).
at::Tensor resize(const at::Tensor& x, int64_t h, int64_t w) {
  return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/true);
}

// Bottom/right padding to crop×crop with −mean/std = −1 per channel (lseg-spec §7.2).
at::Tensor pad_to(const at::Tensor& x, int64_t crop) {
  const int64_t ph = std::max<int64_t>(crop - x.size(2), 0), pw = std::max<int64_t>(crop - x.size(3), 0);
  if (ph == 0 && pw == 0) return x;
  return at::constant_pad_nd(x, {0, pw, 0, ph}, -1.0);
}

// infer(img) = f(img) + flip_W(f(flip_W(img))): a sum, not a mean (lseg-spec §7.2).
at::Tensor infer(const LsegModel& model, const at::Tensor& img, const at::Tensor& text, bool flip) {
  at::Tensor out = model.forward(img, text);
  if (flip) out = out + model.forward(img.flip({3}), text).flip({3});
  return out;
}

}  // namespace

at::Tensor lseg_normalize(const cv::Mat& rgb_u8) {
  if (rgb_u8.empty() || rgb_u8.type() != CV_8UC3) throw Error("lseg_normalize: expected an 8-bit RGB image");
  const cv::Mat m = rgb_u8.isContinuous() ? rgb_u8 : rgb_u8.clone();
  at::Tensor x = torch::from_blob(m.data, {m.rows, m.cols, 3}, torch::kUInt8).permute({2, 0, 1}).unsqueeze(0);
  // Same float32 steps as ToTensor (v / 255) then Normalize (sub, div).
  return x.to(torch::kFloat).div(255).sub(0.5).div(0.5).contiguous();
}

LsegScalePlan lseg_scale_plan(int64_t h, int64_t w, double s, const LsegMultiEvalOptions& o) {
  LsegScalePlan p;
  const int64_t crop = o.crop_size;
  p.stride = static_cast<int64_t>(crop * 2.0 / 3.0);  // int(crop_size · 2/3) = 320
  const auto long_size = static_cast<int64_t>(std::ceil(o.base_size * s));
  int64_t short_size;
  // `h > w` on the original size; the short side rounds half up (int(v + 0.5)).
  if (h > w) {
    p.height = long_size;
    p.width = static_cast<int64_t>(1.0 * w * long_size / h + 0.5);
    short_size = p.width;
  } else {
    p.width = long_size;
    p.height = static_cast<int64_t>(1.0 * h * long_size / w + 0.5);
    short_size = p.height;
  }
  p.single_window = long_size <= crop;
  p.short_side_padded = !p.single_window && short_size < crop;
  if (!p.single_window) {
    const int64_t ph = std::max(p.height, p.short_side_padded ? crop : 0);
    const int64_t pw = std::max(p.width, p.short_side_padded ? crop : 0);
    p.rows = static_cast<int64_t>(std::ceil(1.0 * (ph - crop) / p.stride)) + 1;
    p.cols = static_cast<int64_t>(std::ceil(1.0 * (pw - crop) / p.stride)) + 1;
  }
  return p;
}

int64_t lseg_forward_count(int64_t h, int64_t w, const LsegMultiEvalOptions& o) {
  int64_t n = 0;
  for (const double s : o.scales) {
    const LsegScalePlan p = lseg_scale_plan(h, w, s, o);
    n += p.rows * p.cols;
  }
  return n * (o.flip ? 2 : 1);
}

at::Tensor lseg_multi_eval(const LsegModel& model, const at::Tensor& image, const at::Tensor& text,
                           const LsegMultiEvalOptions& o) {
  torch::NoGradGuard no_grad;
  if (image.dim() != 4 || image.size(0) != 1 || image.size(1) != 3)
    throw Error("LSeg multi-scale evaluation takes one normalised image [1, 3, h, w]");
  if (o.crop_size <= 0 || o.crop_size % 32 != 0 || o.base_size <= 0 || o.scales.empty())
    throw Error("LSeg multi-scale evaluation: crop size must be a positive multiple of 32, base size positive, "
                "at least one scale");
  const at::Tensor x = image.to(torch::kFloat);
  const int64_t h = x.size(2), w = x.size(3), K = text.size(0), crop = o.crop_size;
  at::Tensor scores = torch::zeros({1, K, h, w});
  for (const double s : o.scales) {
    const LsegScalePlan p = lseg_scale_plan(h, w, s, o);
    const at::Tensor cur = resize(x, p.height, p.width);
    at::Tensor out;
    if (p.single_window) {
      out = infer(model, pad_to(cur, crop), text, o.flip).slice(2, 0, p.height).slice(3, 0, p.width);
    } else {
      const at::Tensor img = p.short_side_padded ? pad_to(cur, crop) : cur;
      const int64_t ph = img.size(2), pw = img.size(3);
      at::Tensor acc = torch::zeros({1, K, ph, pw});
      at::Tensor cnt = torch::zeros({1, 1, ph, pw});
      for (int64_t i = 0; i < p.rows; ++i)
        for (int64_t j = 0; j < p.cols; ++j) {
          const int64_t h0 = i * p.stride, w0 = j * p.stride;
          const int64_t h1 = std::min(h0 + crop, ph), w1 = std::min(w0 + crop, pw);
          const at::Tensor window = img.slice(2, h0, h1).slice(3, w0, w1);
          const at::Tensor o_win = infer(model, pad_to(window, crop), text, o.flip);
          acc.slice(2, h0, h1).slice(3, w0, w1).add_(o_win.slice(2, 0, h1 - h0).slice(3, 0, w1 - w0));
          cnt.slice(2, h0, h1).slice(3, w0, w1).add_(1);
        }
      out = (acc / cnt).slice(2, 0, p.height).slice(3, 0, p.width);
    }
    scores += resize(out.contiguous(), h, w);
  }
  return scores;
}

}  // namespace clipes

#include "clipes/io/preprocess.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "clipes/io/pil_resize.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

// CLIP's normalisation constants, as the float32 tensors torchvision builds.
constexpr float kMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr float kStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

void check_rgb(const cv::Mat& m, const char* who) {
  if (m.empty() || m.type() != CV_8UC3)
    throw Error(std::string(who) + ": expected a non-empty 8-bit RGB image (CV_8UC3)");
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

at::Tensor normalize_clip(const cv::Mat& rgb_u8) {
  check_rgb(rgb_u8, "normalize_clip");
  const int h = rgb_u8.rows, w = rgb_u8.cols;
  at::Tensor out = torch::empty({3, h, w}, torch::kFloat32);
  float* planes = out.data_ptr<float>();
  const int64_t plane = static_cast<int64_t>(h) * w;
  for (int y = 0; y < h; ++y) {
    const uchar* src = rgb_u8.ptr<uchar>(y);
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        // Same float32 steps as ToTensor (x / 255) then Normalize (sub, div):
        // bitwise equal to the reference, not merely close.
        const float v = static_cast<float>(src[x * 3 + c]) / 255.0f;
        planes[c * plane + static_cast<int64_t>(y) * w + x] = (v - kMean[c]) / kStd[c];
      }
    }
  }
  return out;
}

PatchMultipleSize patch_multiple_size(int h0, int w0, int patch, int max_tokens) {
  if (h0 <= 0 || w0 <= 0)
    throw Error("patch_multiple_size: invalid image size " + std::to_string(w0) + "x" + std::to_string(h0));
  if (patch <= 0) throw Error("patch_multiple_size: invalid patch size " + std::to_string(patch));
  const int64_t kPatch = patch;
  const int64_t gh0 = ceil_div(h0, kPatch), gw0 = ceil_div(w0, kPatch);
  if (max_tokens <= 0 || gh0 * gw0 <= max_tokens)
    return {static_cast<int>(gh0 * kPatch), static_cast<int>(gw0 * kPatch)};

  // The grid ceil(h0·s/P) × ceil(w0·s/P) only grows with s and changes at
  // s = P·k/h0 or s = P·k/w0, so the largest admissible s is one of those
  // breakpoints. At s = P·gh/h0 the grid is gh × ceil(w0·gh/h0) — integer
  // arithmetic, no float rounding at the breakpoints. Among feasible
  // candidates keep the largest s (compare gh/h0 against gw/w0 exactly).
  int64_t best_h = 1, best_w = 1;
  int64_t best_num = 0, best_den = 1;  // best s = best_num·P / best_den
  auto consider = [&](int64_t gh, int64_t gw, int64_t num, int64_t den) {
    if (gh * gw > max_tokens) return;
    if (best_num == 0 || num * best_den > best_num * den) {
      best_h = gh, best_w = gw, best_num = num, best_den = den;
    }
  };
  for (int64_t gh = 1; gh <= gh0; ++gh) consider(gh, std::max<int64_t>(1, ceil_div(w0 * gh, h0)), gh, h0);
  for (int64_t gw = 1; gw <= gw0; ++gw) consider(std::max<int64_t>(1, ceil_div(h0 * gw, w0)), gw, gw, w0);
  // gh = 1 with the long side's breakpoint gw = 1 is always feasible.
  return {static_cast<int>(best_h * kPatch), static_cast<int>(best_w * kPatch)};
}

at::Tensor preprocess_to_patch_multiple(const cv::Mat& rgb_u8, int patch, int max_tokens) {
  check_rgb(rgb_u8, "preprocess_to_patch_multiple");
  const PatchMultipleSize s = patch_multiple_size(rgb_u8.rows, rgb_u8.cols, patch, max_tokens);
  // A stretch to the patch multiple, no crop or padding (spec §3 step 2).
  return normalize_clip(pil_bicubic_resize(rgb_u8, s.width, s.height));
}

at::Tensor preprocess_224(const cv::Mat& rgb_u8, int size) {
  check_rgb(rgb_u8, "preprocess_224");
  if (size <= 0) throw Error("preprocess_224: invalid size " + std::to_string(size));
  const int h = rgb_u8.rows, w = rgb_u8.cols;
  // torchvision Resize(size): short side → size, long side int(size·long/short)
  // (truncated, computed as Python's true division of integers).
  const int shorter = std::min(h, w), longer = std::max(h, w);
  const int new_long =
      static_cast<int>(static_cast<double>(static_cast<int64_t>(size) * longer) / shorter);
  const int nh = h <= w ? size : new_long;
  const int nw = h <= w ? new_long : size;
  const cv::Mat resized = pil_bicubic_resize(rgb_u8, nw, nh);
  // CenterCrop: offsets int(round((H' − size) / 2)) with Python's round half
  // to even (nearbyint under the default rounding mode) — spec §3 step 6.
  const int top = static_cast<int>(std::nearbyint((nh - size) / 2.0));
  const int left = static_cast<int>(std::nearbyint((nw - size) / 2.0));
  return normalize_clip(resized(cv::Rect(left, top, size, size)));
}

}  // namespace clipes

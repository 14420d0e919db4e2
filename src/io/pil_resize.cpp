// Pillow's ImagingResample (libImaging/Resample.c) for 8-bit images and the
// BICUBIC filter, rewritten from its documented arithmetic (spec §3 step 7).
// Every detail below — float box, truncating int casts, the order of the
// double operations, the rounding of the fixed-point coefficients — changes
// some output pixels if altered, so keep them as they are.
//
// Built with -ffp-contract=off (see CMakeLists.txt): fusing e.g.
// (xx + 0.5) * scale - support into one FMA would change bounds and weights
// by an ulp on FMA hardware and break exact parity.
#include "clipes/io/pil_resize.h"

#include <opencv2/core/utility.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "clipes/util/error.h"

namespace clipes {
namespace {

// 8 bits of result, 2 bits of headroom for the filter's negative lobes and
// overshoot, the rest (22) for the fraction, so that sums fit an int32.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kBicubicSupport = 2.0;

// Cubic convolution kernel with a = -0.5 (Keys), written with the same
// operation order as Pillow so that every double rounds identically.
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output position along one axis: the first input index used, how
// many follow, and their fixed-point weights (ksize slots per output).
struct AxisCoeffs {
  int ksize = 0;
  std::vector<int> first;        // xmin per output index
  std::vector<int> count;        // xmax (number of taps) per output index
  std::vector<int32_t> weights;  // out_size × ksize
};

AxisCoeffs precompute(int in_size, int out_size) {
  // Pillow receives the source box as floats (0, 0, w, h) and computes the
  // scale from their difference; for integer sizes this is exact.
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  // When shrinking, the kernel is stretched by the scale factor (antialias).
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kBicubicSupport * filterscale;

  AxisCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);

  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // "Rounding" by truncation toward zero, then clamping, exactly as Pillow.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;

    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    // Normalise per output pixel so the taps sum to 1 (divide, not multiply
    // by a reciprocal: that is what Pillow does and it rounds differently).
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    // Fixed point, rounding half away from zero via a truncating cast.
    int32_t* kk = &c.weights[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double scaled = k[x] * (1 << kPrecisionBits);
      kk[x] = static_cast<int32_t>(k[x] < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

// The accumulator starts at one half (1 << 21) so that the final shift rounds;
// Pillow clips through a lookup table indexed by acc >> 22 that saturates to
// [0, 255] — the same as clamping (arithmetic shift of negative sums).
inline uchar clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uchar>(v < 0 ? 0 : (v > 255 ? 255 : v));
}
constexpr int32_t kHalf = int32_t(1) << (kPrecisionBits - 1);

// Horizontal pass: output row yy reads input row yy + row_offset.
template <int C>
void resample_horizontal(const cv::Mat& in, cv::Mat& out, int row_offset, const AxisCoeffs& c) {
  cv::parallel_for_(cv::Range(0, out.rows), [&](const cv::Range& rows) {
    for (int yy = rows.start; yy < rows.end; ++yy) {
      const uchar* src = in.ptr<uchar>(yy + row_offset);
      uchar* dst = out.ptr<uchar>(yy);
      for (int xx = 0; xx < out.cols; ++xx) {
        const int xmin = c.first[xx], xmax = c.count[xx];
        const int32_t* k = &c.weights[static_cast<size_t>(xx) * c.ksize];
        int32_t acc[C];
        for (int ch = 0; ch < C; ++ch) acc[ch] = kHalf;
        for (int x = 0; x < xmax; ++x) {
          const uchar* p = src + (x + xmin) * C;
          for (int ch = 0; ch < C; ++ch) acc[ch] += static_cast<int32_t>(p[ch]) * k[x];
        }
        for (int ch = 0; ch < C; ++ch) dst[xx * C + ch] = clip8(acc[ch]);
      }
    }
  });
}

// Vertical pass: output row yy blends input rows first[yy] .. first[yy]+count[yy]-1.
template <int C>
void resample_vertical(const cv::Mat& in, cv::Mat& out, const std::vector<int>& first,
                       const AxisCoeffs& c) {
  const int width = out.cols * C;
  cv::parallel_for_(cv::Range(0, out.rows), [&](const cv::Range& rows) {
    std::vector<int32_t> acc(width);
    for (int yy = rows.start; yy < rows.end; ++yy) {
      const int ymin = first[yy], ymax = c.count[yy];
      const int32_t* k = &c.weights[static_cast<size_t>(yy) * c.ksize];
      std::fill(acc.begin(), acc.end(), kHalf);
      // Row-wise accumulation: the same integer sums as Pillow's per-pixel
      // loop (integer addition is associative), but cache friendly.
      for (int y = 0; y < ymax; ++y) {
        const uchar* src = in.ptr<uchar>(y + ymin);
        const int32_t w = k[y];
        for (int i = 0; i < width; ++i) acc[i] += static_cast<int32_t>(src[i]) * w;
      }
      uchar* dst = out.ptr<uchar>(yy);
      for (int i = 0; i < width; ++i) dst[i] = clip8(acc[i]);
    }
  });
}

template <int C>
cv::Mat resize_impl(const cv::Mat& src, int out_w, int out_h) {
  const bool need_horizontal = out_w != src.cols;
  const bool need_vertical = out_h != src.rows;
  if (!need_horizontal && !need_vertical) return src.clone();

  const AxisCoeffs vert = precompute(src.rows, out_h);
  std::vector<int> vert_first = vert.first;
  cv::Mat cur = src;

  if (need_horizontal) {
    // Only the input rows the vertical pass will read are resampled
    // horizontally; the vertical bounds are shifted to match.
    const int ybox_first = vert.first.front();
    const int ybox_last = vert.first.back() + vert.count.back();
    for (int& f : vert_first) f -= ybox_first;
    const AxisCoeffs horiz = precompute(src.cols, out_w);
    cv::Mat tmp(ybox_last - ybox_first, out_w, src.type());
    resample_horizontal<C>(src, tmp, ybox_first, horiz);
    cur = tmp;
  }
  if (!need_vertical) return cur;

  cv::Mat out(out_h, cur.cols, src.type());
  resample_vertical<C>(cur, out, vert_first, vert);
  return out;
}

}  // namespace

cv::Mat pil_bicubic_resize(const cv::Mat& src, int out_width, int out_height) {
  if (src.empty()) throw Error("pil_bicubic_resize: empty input image");
  if (out_width <= 0 || out_height <= 0)
    throw Error("pil_bicubic_resize: invalid output size " + std::to_string(out_width) + "x" +
                std::to_string(out_height));
  switch (src.type()) {
    case CV_8UC1: return resize_impl<1>(src, out_width, out_height);
    case CV_8UC3: return resize_impl<3>(src, out_width, out_height);
    case CV_8UC4: return resize_impl<4>(src, out_width, out_height);
    default:
      throw Error("pil_bicubic_resize: expected an 8-bit image with 1, 3 or 4 channels");
  }
}

}  // namespace clipes

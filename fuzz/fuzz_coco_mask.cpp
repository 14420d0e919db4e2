// libFuzzer harness: COCO RLE and polygon decoders (src/data/coco_mask.cpp).
//
// Input: byte 0 = mode, bytes 1-2 / 3-4 = height / width (little-endian, taken
// modulo 257 so that masks stay small and the harness measures the decoders,
// not the allocator; the polygon work the decoder allows grows with the
// image's perimeter), then the payload:
//   mode 0: a compressed RLE string (decode_rle_string → decode_rle, and the
//           encode_rle_string round trip);
//   mode 1: uncompressed counts, little-endian uint32 each (decode_rle);
//   mode 2: a polygon, int16 pairs / 8 (rle_from_polygon, rasterize_polygon);
//   mode 3: a polygon of raw doubles (NaN, inf, huge: must be an Error, not UB).
// Properties checked beyond "no crash": a polygon's RLE covers exactly h*w
// pixels, encode/decode of RLE strings and masks round-trip.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "clipes/data/coco_mask.h"
#include "clipes/util/error.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

void check_mask(const cv::Mat& mask, int h, int w) {
  check(mask.rows == h && mask.cols == w && mask.type() == CV_8UC1, "decoded mask has the requested size");
  if (h == 0 || w == 0) return;
  const std::vector<uint32_t> again = clipes::encode_rle(mask);
  const cv::Mat back = clipes::decode_rle(again, h, w);
  check(cv::countNonZero(back != mask) == 0, "encode_rle/decode_rle round trip");
}

}  // namespace

// OpenCV's thread pool makes every small cv:: call wait for niced workers on
// a busy machine (a few inputs per second); the masks are tiny, stay serial.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cv::setNumThreads(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const int mode = data[0] % 4;
  const int h = (data[1] | (data[2] << 8)) % 257;
  const int w = (data[3] | (data[4] << 8)) % 257;
  const uint8_t* p = data + 5;
  const size_t n = size - 5;
  try {
    if (mode == 0) {
      const std::string compressed(reinterpret_cast<const char*>(p), n);
      const std::vector<uint32_t> counts = clipes::decode_rle_string(compressed);
      check(clipes::decode_rle_string(clipes::encode_rle_string(counts)) == counts, "RLE string round trip");
      check_mask(clipes::decode_rle(counts, h, w), h, w);
    } else if (mode == 1) {
      std::vector<uint32_t> counts(n / 4);
      if (!counts.empty()) std::memcpy(counts.data(), p, counts.size() * 4);
      check_mask(clipes::decode_rle(counts, h, w), h, w);
    } else {
      std::vector<double> xy;
      if (mode == 2) {
        for (size_t i = 0; i + 1 < n; i += 2) xy.push_back(static_cast<int16_t>(p[i] | (p[i + 1] << 8)) / 8.0);
      } else {
        for (size_t i = 0; i + 8 <= n; i += 8) {
          double v;
          std::memcpy(&v, p + i, 8);
          xy.push_back(v);
        }
      }
      if (xy.size() % 2) xy.pop_back();
      const std::vector<uint32_t> counts = clipes::rle_from_polygon(xy, h, w);
      uint64_t total = 0;
      for (uint32_t c : counts) total += c;
      check(total == static_cast<uint64_t>(h) * static_cast<uint64_t>(w), "polygon RLE covers h*w pixels");
      // rasterize_polygon is decode_rle(rle_from_polygon(...)): not run twice.
      check_mask(clipes::decode_rle(counts, h, w), h, w);
    }
  } catch (const clipes::Error&) {
    // Bad input reported the documented way.
  }
  return 0;
}

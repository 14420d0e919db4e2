// libFuzzer harness: label PNGs (read_label_png_bytes, src/io/indexed_png.cpp).
// Inputs whose IHDR (always the first chunk, bytes 16..23) asks for more than
// 4 M pixels are skipped: the reader accepts up to kMaxLabelPngSide per side
// by design, and allocating that much per input would only measure malloc.
// (The user limit itself is covered by a unit test.)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/io/indexed_png.h"
#include "clipes/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= 24) {
    auto be32 = [&](size_t o) {
      return (uint32_t{data[o]} << 24) | (uint32_t{data[o + 1]} << 16) | (uint32_t{data[o + 2]} << 8) | data[o + 3];
    };
    if (static_cast<uint64_t>(be32(16)) * be32(20) > (uint64_t{1} << 22)) return 0;
  }
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const cv::Mat ids = clipes::read_label_png_bytes(bytes, "fuzz.png");
    if (ids.type() != CV_8UC1 || ids.rows > clipes::kMaxLabelPngSide || ids.cols > clipes::kMaxLabelPngSide) {
      std::fprintf(stderr, "property violated: bad label image\n");
      std::abort();
    }
  } catch (const clipes::Error&) {
  }
  return 0;
}

// Image dimensions read from the file header alone, without decoding.
//
// Decoding allocates width × height × channels bytes before the first row is
// read, and a tiny file can claim any size (a 30000×30000 PNG of zeros deflates
// to a few MB). image_decode.h checks these dimensions against a pixel limit
// before any decoder runs.
//
// Recognised: PNG (IHDR), JPEG (first SOFn segment), BMP (core and info
// headers, top-down or bottom-up), WebP (VP8, VP8L, VP8X canvas), TIFF and
// BigTIFF (first IFD, either byte order: OpenCV decodes only the first page),
// PNM P1–P7, Sun raster and JPEG 2000 (JP2 boxes or a raw codestream) — every
// format OpenCV 4.6's imdecode reads on Debian 12 with 8- or 16-bit samples.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <optional>
#include <vector>

namespace clipes {

struct ImageHeader {
  const char* format;  // "PNG", "JPEG", ...: static storage, for messages
  // 64-bit because several formats allow dimensions beyond INT_MAX.
  int64_t width = 0;
  int64_t height = 0;
};

// The format and dimensions declared by the header of an encoded file;
// nullopt when the bytes are none of the formats above. A recognised file whose
// header is cut short or malformed (zero dimensions included) yields its format
// with width = height = 0.
std::optional<ImageHeader> probe_image_header(const std::vector<uchar>& bytes);

// Just the size, or nullopt when it cannot be read from the header; a dimension
// beyond INT_MAX saturates at INT_MAX (no decoder accepts such an image anyway).
std::optional<cv::Size> probe_image_size(const std::vector<uchar>& bytes);

}  // namespace clipes

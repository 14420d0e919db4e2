#include "clipes/io/image_decode.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "clipes/util/error.h"

namespace clipes {
namespace {

// libjpeg only warns when the entropy-coded data stops early and pads the rest
// of the image with grey; OpenCV then returns that image as if all was well.
// PIL (what the reference uses) refuses such files ("image file is truncated"),
// so we detect them: walk the marker segments up to the first start-of-scan and
// require an end-of-image marker (FF D9) somewhere after it. Inside entropy-coded
// data a 0xFF byte is always followed by 0x00 or a restart marker, so FF D9 there
// can only be the real end. Returns false for anything that is not a JPEG or
// whose header we cannot walk (OpenCV judges those).
bool is_truncated_jpeg(const std::vector<uchar>& b) {
  const size_t n = b.size();
  if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return false;
  size_t i = 2;
  while (i + 1 < n) {
    if (b[i] != 0xFF) return false;        // not at a marker: give up, let OpenCV judge
    while (i < n && b[i] == 0xFF) ++i;      // fill bytes may precede a marker
    if (i >= n) return true;
    const uchar marker = b[i++];
    if (marker == 0xD9) return false;       // EOI before any scan: nothing to check
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (i + 1 >= n) return true;            // cut inside the header
    const size_t len = (static_cast<size_t>(b[i]) << 8) | b[i + 1];
    if (len < 2) return false;
    if (marker == 0xDA) {                   // SOS: entropy-coded data follows
      for (size_t j = i + len; j + 1 < n; ++j)
        if (b[j] == 0xFF && b[j + 1] == 0xD9) return false;
      return true;
    }
    i += len;
  }
  return true;  // ran out of bytes before the first scan
}

// 16-bit samples → 8 bits with round(v / 257), which maps 0..65535 onto 0..255
// exactly (65535 = 255 · 257). No v has a fractional part of exactly one half.
cv::Mat to_8bit(const cv::Mat& m16) {
  cv::Mat out(m16.rows, m16.cols, CV_MAKETYPE(CV_8U, m16.channels()));
  const int width = m16.cols * m16.channels();
  for (int y = 0; y < m16.rows; ++y) {
    const uint16_t* src = m16.ptr<uint16_t>(y);
    uchar* dst = out.ptr<uchar>(y);
    for (int x = 0; x < width; ++x) dst[x] = static_cast<uchar>((src[x] + 128u) / 257u);
  }
  return out;
}

}  // namespace

cv::Mat decode_image_rgb_bytes(const std::vector<uchar>& bytes, const std::string& name) {
  if (bytes.empty()) throw file_error(name, "empty file");
  if (is_truncated_jpeg(bytes)) throw file_error(name, "truncated JPEG (image data ends early)");

  cv::Mat raw;
  try {
    // IMREAD_UNCHANGED keeps 16-bit depth and alpha, and (like the explicit
    // IMREAD_IGNORE_ORIENTATION flag) stops OpenCV from applying the EXIF
    // orientation, which the reference ignores (spec §3 step 1).
    raw = cv::imdecode(bytes, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw file_error(name, "cannot decode image (" + e.msg + ")");
  }
  if (raw.empty() || raw.rows <= 0 || raw.cols <= 0)
    throw file_error(name, "cannot decode image (corrupt or unsupported format)");

  if (raw.depth() == CV_16U) {
    raw = to_8bit(raw);
  } else if (raw.depth() != CV_8U) {
    throw file_error(name, "unsupported pixel format (only 8- and 16-bit integer images)");
  }

  // OpenCV hands back BGR/BGRA; PIL's convert('RGB') drops alpha without blending.
  cv::Mat rgb;
  switch (raw.channels()) {
    case 1: cv::cvtColor(raw, rgb, cv::COLOR_GRAY2RGB); break;
    case 2: {  // grey + alpha (some TIFFs): keep the grey channel
      cv::Mat grey;
      cv::extractChannel(raw, grey, 0);
      cv::cvtColor(grey, rgb, cv::COLOR_GRAY2RGB);
      break;
    }
    case 3: cv::cvtColor(raw, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(raw, rgb, cv::COLOR_BGRA2RGB); break;
    default:
      throw file_error(name, "unsupported image with " + std::to_string(raw.channels()) + " channels");
  }
  return rgb;
}

cv::Mat decode_image_rgb(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw file_error(path, "file not found");
  if (fs::is_directory(path, ec)) throw file_error(path, "is a directory, not an image file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(path, "cannot open file for reading");
  std::vector<uchar> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw file_error(path, "read error");
  return decode_image_rgb_bytes(bytes, path);
}

}  // namespace clipes

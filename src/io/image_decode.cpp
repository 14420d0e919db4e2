#include "clipes/io/image_decode.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "clipes/io/image_header.h"
#include "clipes/io/gif_decode.h"
#include "clipes/io/png_decode.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/option_error.h"

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

// "900 MP", "40 MP", "12.5 MP": three significant digits, no exponent above 100.
std::string megapixels(double pixels) {
  char buf[48];
  const double mp = pixels / 1e6;
  std::snprintf(buf, sizeof buf, mp >= 100 ? "%.0f MP" : "%.3g MP", mp);
  return buf;
}

// Refuses what the header says is too large, before anything is allocated.
// w·h can exceed int64 (BigTIFF), so compare h against limit / w instead.
void check_size(const ImageHeader& h, const DecodeLimits& limits, const std::string& name) {
  if (limits.max_pixels <= 0 || h.height <= limits.max_pixels / h.width) return;
  const double pixels = static_cast<double>(h.width) * static_cast<double>(h.height);
  throw option_error(printable(name) + ": image is " + std::to_string(h.width) + "×" + std::to_string(h.height) + " (" +
                             megapixels(pixels) + "), over the pixel limit of " +
                             megapixels(static_cast<double>(limits.max_pixels)) + " (" + option_key("max_pixels") + ")");
}

// IMREAD_UNCHANGED output (grey, grey+alpha, BGR or BGRA; 8 or 16 bits) → RGB.
cv::Mat to_rgb(cv::Mat raw, const std::string& name) {
  if (raw.depth() == CV_16U) {
    raw = to_8bit(raw);
  } else if (raw.depth() != CV_8U) {
    throw file_error(name, "unsupported pixel format (only 8- and 16-bit integer images)");
  }
  // PIL's convert('RGB') drops alpha without blending.
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

cv::Mat decode_checked(const std::vector<uchar>& bytes, const std::string& name, const DecodeLimits& limits) {
  if (bytes.empty()) throw file_error(name, "empty file");
  const std::optional<ImageHeader> header = probe_image_header(bytes);
  // No size, no decoding: an unchecked decoder is exactly what a bomb needs.
  if (!header)
    throw file_error(name,
                     "cannot decode image (not a PNG, JPEG, GIF, BMP, WebP, TIFF, PNM, Sun raster or JPEG 2000 file)");
  if (header->width <= 0 || header->height <= 0)
    throw file_error(name, std::string("cannot decode image (truncated or corrupt ") + header->format + " header)");
  check_size(*header, limits, name);
  if (is_truncated_jpeg(bytes)) throw file_error(name, "truncated JPEG (image data ends early)");

  if (std::strcmp(header->format, "PNG") == 0) return to_rgb(decode_png_like_opencv(bytes, name), name);
  if (std::strcmp(header->format, "GIF") == 0) return decode_gif_first_frame_rgb(bytes, name);  // OpenCV has none

  // IMREAD_UNCHANGED keeps 16-bit depth and alpha, and (like the explicit
  // IMREAD_IGNORE_ORIENTATION flag) stops OpenCV from applying the EXIF
  // orientation, which the reference ignores (spec §3 step 1).
  const cv::Mat raw = cv::imdecode(bytes, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  if (raw.empty() || raw.rows <= 0 || raw.cols <= 0)
    throw file_error(name, "cannot decode image (corrupt or unsupported " + std::string(header->format) + " file)");
  return to_rgb(raw, name);
}

struct Fd {
  int fd;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

std::vector<uchar> read_file(const std::string& path) {
  // The real reason (symlink loop, folder, FIFO, permissions), not "not found".
  const std::string why = why_not_a_readable_file(path, "is a directory, not an image file");
  if (!why.empty()) throw file_error(path, why);
  const Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw file_error(path, std::strerror(errno));  // changed since the check: say what open saw
  std::vector<uchar> bytes;
  struct stat st {};
  if (::fstat(f.fd, &st) == 0 && st.st_size > 0) bytes.reserve(static_cast<size_t>(st.st_size));
  uchar buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw file_error(path, std::string("read error: ") + std::strerror(errno));
    }
    bytes.insert(bytes.end(), buf, buf + n);
  }
  return bytes;
}

}  // namespace

cv::Mat decode_image_rgb_bytes(const std::vector<uchar>& bytes, const std::string& name, const DecodeLimits& limits) {
  // Whatever escapes a decoder becomes a one-line error naming the file, so a
  // batch records it and moves on (OpenCV throws cv::Exception for failed
  // allocations and internal asserts, the standard library std::bad_alloc).
  try {
    return decode_checked(bytes, name, limits);
  } catch (const Error&) {
    throw;
  } catch (const cv::Exception& e) {
    // e.err is the bare description; e.msg adds OpenCV's source location and a newline.
    std::string what = e.err.empty() ? e.msg : e.err;
    for (char& c : what)
      if (c == '\n' || c == '\r') c = ' ';
    if (e.code == cv::Error::StsNoMem) throw file_error(name, "out of memory while decoding (OpenCV: " + what + ")");
    throw file_error(name, "cannot decode image (OpenCV: " + what + ")");
  } catch (const std::bad_alloc&) {
    throw file_error(name, "out of memory while decoding");
  }
}

cv::Mat decode_image_rgb(const std::string& path, const DecodeLimits& limits) {
  std::vector<uchar> bytes;
  try {
    bytes = read_file(path);
  } catch (const std::bad_alloc&) {
    throw file_error(path, "out of memory while reading the file");
  }
  return decode_image_rgb_bytes(bytes, path, limits);
}

}  // namespace clipes

#include "clipes/io/image_header.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace clipes {
namespace {

using Bytes = std::vector<uchar>;
using Header = std::optional<ImageHeader>;

// Every read goes through these: they check the bounds themselves (`at` and
// `len` are untrusted, so `at + len` is never formed where it could wrap) and
// report a short read as nullopt-worthy by returning false.
bool has(const Bytes& b, uint64_t at, uint64_t len) { return at <= b.size() && len <= b.size() - at; }

uint64_t be(const Bytes& b, uint64_t at, int len) {
  uint64_t v = 0;
  for (int k = 0; k < len; ++k) v = (v << 8) | b[at + k];
  return v;
}
uint64_t le(const Bytes& b, uint64_t at, int len) {
  uint64_t v = 0;
  for (int k = len - 1; k >= 0; --k) v = (v << 8) | b[at + k];
  return v;
}

bool starts_with(const Bytes& b, const char* magic, size_t len) {
  return b.size() >= len && std::memcmp(b.data(), magic, len) == 0;
}

int64_t to_dim(uint64_t v) { return static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)); }

Header make(const char* format, uint64_t width, uint64_t height) {
  if (width == 0 || height == 0) return std::nullopt;  // no decoder accepts these
  return ImageHeader{format, to_dim(width), to_dim(height)};
}

// GIF87a/GIF89a: the logical screen's width and height, little-endian, at 6.
Header probe_gif(const Bytes& b) {
  if (b.size() < 10) return std::nullopt;
  return make("GIF", b[6] | (b[7] << 8), b[8] | (b[9] << 8));
}

Header probe_png(const Bytes& b) {
  // Signature, then IHDR must be the first chunk: length 13, width, height (BE).
  if (!has(b, 8, 16) || be(b, 8, 4) != 13 || std::memcmp(&b[12], "IHDR", 4) != 0) return std::nullopt;
  return make("PNG", be(b, 16, 4), be(b, 20, 4));
}

Header probe_jpeg(const Bytes& b) {
  // Walk the marker segments to the first start-of-frame, as libjpeg does
  // (it also skips stray non-FF bytes between segments, with a warning).
  uint64_t i = 2;
  while (true) {
    while (i < b.size() && b[i] != 0xFF) ++i;
    while (i < b.size() && b[i] == 0xFF) ++i;  // fill bytes
    if (i >= b.size()) return std::nullopt;
    const uchar marker = b[i++];
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;           // EOI / scan before any frame
    if (!has(b, i, 2)) return std::nullopt;
    const uint64_t len = be(b, i, 2);
    if (len < 2) return std::nullopt;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (!has(b, i, 7)) return std::nullopt;
      // Height 0 means "defined later by a DNL marker", which libjpeg rejects.
      return make("JPEG", be(b, i + 5, 2), be(b, i + 3, 2));
    }
    i += len;
  }
}

Header probe_bmp(const Bytes& b) {
  if (!has(b, 14, 4)) return std::nullopt;
  const uint64_t header_size = le(b, 14, 4);
  if (header_size == 12) {  // OS/2 BITMAPCOREHEADER: unsigned 16-bit fields
    if (!has(b, 18, 4)) return std::nullopt;
    return make("BMP", le(b, 18, 2), le(b, 20, 2));
  }
  if (header_size < 16 || !has(b, 18, 8)) return std::nullopt;
  // BITMAPINFOHEADER and later: signed 32-bit; a negative height means top-down rows.
  const int64_t w = static_cast<int32_t>(le(b, 18, 4));
  const int64_t h = static_cast<int32_t>(le(b, 22, 4));
  if (w <= 0) return std::nullopt;
  return make("BMP", static_cast<uint64_t>(w), static_cast<uint64_t>(h < 0 ? -h : h));
}

Header probe_webp(const Bytes& b) {
  if (!has(b, 0, 20) || std::memcmp(&b[8], "WEBP", 4) != 0) return std::nullopt;
  const uint64_t d = 20;  // the first chunk's payload
  if (std::memcmp(&b[12], "VP8 ", 4) == 0) {
    // Lossy: 3-byte frame tag, start code 9D 01 2A, then 14-bit width and height.
    if (!has(b, d, 10) || b[d + 3] != 0x9D || b[d + 4] != 0x01 || b[d + 5] != 0x2A) return std::nullopt;
    return make("WebP", le(b, d + 6, 2) & 0x3FFF, le(b, d + 8, 2) & 0x3FFF);
  }
  if (std::memcmp(&b[12], "VP8L", 4) == 0) {
    // Lossless: signature 0x2F, then 14 bits width − 1 and 14 bits height − 1.
    if (!has(b, d, 5) || b[d] != 0x2F) return std::nullopt;
    const uint64_t bits = le(b, d + 1, 4);
    return make("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
  }
  if (std::memcmp(&b[12], "VP8X", 4) == 0) {
    // Extended: flags, 3 reserved bytes, 24-bit canvas width − 1 and height − 1.
    if (!has(b, d, 10)) return std::nullopt;
    return make("WebP", le(b, d + 4, 3) + 1, le(b, d + 7, 3) + 1);
  }
  return std::nullopt;
}

Header probe_tiff(const Bytes& b) {
  const bool little = b[0] == 'I';
  auto rd = [&](uint64_t at, int len) { return little ? le(b, at, len) : be(b, at, len); };
  const bool big_tiff = rd(2, 2) == 43;
  // Classic: 2-byte entry count, 12-byte entries, 4-byte value field.
  // BigTIFF: 8-byte count, 20-byte entries, 8-byte value field.
  const int count_size = big_tiff ? 8 : 2;
  const uint64_t entry_size = big_tiff ? 20 : 12;
  uint64_t ifd = 0;
  if (big_tiff) {
    if (!has(b, 4, 12) || rd(4, 2) != 8) return std::nullopt;
    ifd = rd(8, 8);
  } else {
    if (!has(b, 4, 4)) return std::nullopt;
    ifd = rd(4, 4);
  }
  if (!has(b, ifd, count_size)) return std::nullopt;
  const uint64_t first = ifd + count_size;
  // A truncated IFD just ends the search early; never trust the count for a loop bound.
  const uint64_t entries = std::min(rd(ifd, count_size), (b.size() - first) / entry_size);
  uint64_t width = 0, height = 0;
  for (uint64_t k = 0; k < entries; ++k) {
    const uint64_t e = first + k * entry_size;
    const uint64_t tag = rd(e, 2), type = rd(e + 2, 2);
    if (tag != 256 && tag != 257) continue;  // ImageWidth, ImageLength
    const uint64_t value_at = e + (big_tiff ? 12 : 8);
    uint64_t v = 0;
    if (type == 3) v = rd(value_at, 2);                   // SHORT
    else if (type == 4) v = rd(value_at, 4);              // LONG
    else if (type == 16 && big_tiff) v = rd(value_at, 8); // LONG8
    else return std::nullopt;
    (tag == 256 ? width : height) = v;
  }
  return make("TIFF", width, height);
}

// PNM headers are whitespace-separated ASCII tokens with '#' comments to the end
// of the line. Numbers saturate instead of wrapping.
struct PnmTokens {
  const Bytes& b;
  uint64_t i;
  void skip_space() {
    while (i < b.size()) {
      if (b[i] == '#') {
        while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
      } else if (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r' || b[i] == '\v' || b[i] == '\f') {
        ++i;
      } else {
        return;
      }
    }
  }
  std::optional<uint64_t> number() {
    skip_space();
    if (i >= b.size() || b[i] < '0' || b[i] > '9') return std::nullopt;
    uint64_t v = 0;
    for (; i < b.size() && b[i] >= '0' && b[i] <= '9'; ++i)
      v = std::min<uint64_t>(v * 10 + (b[i] - '0'), UINT32_MAX);  // ample; cannot wrap
    if (i >= b.size()) return std::nullopt;  // cut short: "37" may have been "375"
    return v;
  }
  bool word(const char* w) {
    skip_space();
    const size_t n = std::strlen(w);
    if (!has(b, i, n) || std::memcmp(&b[i], w, n) != 0) return false;
    i += n;
    return true;
  }
};

Header probe_pnm(const Bytes& b) {
  PnmTokens t{b, 2};
  if (b[1] != '7') {  // P1..P6: width, height, [maxval]
    const auto w = t.number();
    const auto h = t.number();
    if (!w || !h) return std::nullopt;
    return make("PNM", *w, *h);
  }
  // P7 (PAM): "WIDTH n", "HEIGHT n", DEPTH, MAXVAL, TUPLTYPE ... "ENDHDR".
  uint64_t width = 0, height = 0;
  while (t.i < b.size()) {
    if (t.word("ENDHDR")) return make("PNM", width, height);
    if (t.word("WIDTH")) {
      const auto v = t.number();
      if (!v) return std::nullopt;
      width = *v;
    } else if (t.word("HEIGHT")) {
      const auto v = t.number();
      if (!v) return std::nullopt;
      height = *v;
    } else {  // another field: skip its token(s) to the next whitespace
      t.skip_space();
      do ++t.i; while (t.i < b.size() && b[t.i] > ' ');  // at least one byte: always progresses
    }
  }
  return std::nullopt;
}

Header probe_sun_raster(const Bytes& b) {
  if (!has(b, 4, 8)) return std::nullopt;
  return make("Sun raster", be(b, 4, 4), be(b, 8, 4));
}

// JPEG 2000 codestream: SIZ right after SOC gives the reference grid
// (Xsiz, Ysiz) and the image offset on it (XOsiz, YOsiz).
Header probe_j2k_codestream(const Bytes& b, uint64_t at) {
  if (!has(b, at, 24) || be(b, at, 4) != 0xFF4FFF51u) return std::nullopt;
  const uint64_t x = be(b, at + 8, 4), y = be(b, at + 12, 4);
  const uint64_t x0 = be(b, at + 16, 4), y0 = be(b, at + 20, 4);
  if (x <= x0 || y <= y0) return std::nullopt;
  return make("JPEG 2000", x - x0, y - y0);
}

// JP2 file: a sequence of boxes; the header superbox 'jp2h' holds 'ihdr'
// (height, width, ...). Falls back to the codestream box 'jp2c'.
Header probe_jp2(const Bytes& b, uint64_t at, uint64_t end) {
  while (at < end && has(b, at, 8)) {
    uint64_t len = be(b, at, 4), header = 8;
    if (len == 1) {  // 64-bit length follows the type
      if (!has(b, at, 16)) return std::nullopt;
      len = be(b, at + 8, 8);
      header = 16;
    } else if (len == 0) {  // box runs to the end
      len = end - at;
    }
    if (len < header || len > end - at) return std::nullopt;
    const uchar* type = &b[at + 4];
    if (std::memcmp(type, "jp2h", 4) == 0) return probe_jp2(b, at + header, at + len);
    if (std::memcmp(type, "ihdr", 4) == 0) {
      if (len < header + 8) return std::nullopt;
      return make("JPEG 2000", be(b, at + header + 4, 4), be(b, at + header, 4));
    }
    if (std::memcmp(type, "jp2c", 4) == 0) return probe_j2k_codestream(b, at + header);
    at += len;
  }
  return std::nullopt;
}

}  // namespace

std::optional<ImageHeader> probe_image_header(const std::vector<uchar>& b) {
  Header h;
  const char* format = nullptr;
  auto is = [&](const char* name, Header probed) {
    format = name;
    h = probed;
  };
  if (starts_with(b, "\x89PNG\r\n\x1A\n", 8)) is("PNG", probe_png(b));
  else if (starts_with(b, "\xFF\xD8", 2)) is("JPEG", probe_jpeg(b));
  else if (starts_with(b, "BM", 2)) is("BMP", probe_bmp(b));
  else if (starts_with(b, "GIF87a", 6) || starts_with(b, "GIF89a", 6)) is("GIF", probe_gif(b));
  else if (b.size() >= 12 && starts_with(b, "RIFF", 4) && std::memcmp(&b[8], "WEBP", 4) == 0) is("WebP", probe_webp(b));
  else if (starts_with(b, "II*\0", 4) || starts_with(b, "MM\0*", 4) || starts_with(b, "II+\0", 4) ||
           starts_with(b, "MM\0+", 4))
    is("TIFF", probe_tiff(b));
  else if (b.size() >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7') is("PNM", probe_pnm(b));
  else if (starts_with(b, "\x59\xA6\x6A\x95", 4)) is("Sun raster", probe_sun_raster(b));
  else if (starts_with(b, "\xFF\x4F\xFF\x51", 4)) is("JPEG 2000", probe_j2k_codestream(b, 0));
  else if (starts_with(b, "\0\0\0\x0CjP  \r\n\x87\n", 12)) is("JPEG 2000", probe_jp2(b, 0, b.size()));
  if (!format) return std::nullopt;
  if (!h) return ImageHeader{format, 0, 0};  // recognised, but the size cannot be read
  return h;
}

std::optional<cv::Size> probe_image_size(const std::vector<uchar>& bytes) {
  const auto h = probe_image_header(bytes);
  if (!h || h->width <= 0 || h->height <= 0) return std::nullopt;
  auto clamp = [](int64_t v) { return static_cast<int>(std::min<int64_t>(v, INT_MAX)); };
  return cv::Size(clamp(h->width), clamp(h->height));
}

}  // namespace clipes

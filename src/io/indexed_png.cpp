#include "clipes/io/indexed_png.h"

#include <png.h>

#include <cstring>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {

const std::vector<Rgb>& voc_palette() {
  // VOC devkit's labelcolormap: the bits of the index are spread over the
  // top bits of R, G and B, three at a time.
  static const std::vector<Rgb> palette = [] {
    std::vector<Rgb> p(256);
    for (int i = 0; i < 256; ++i) {
      int r = 0, g = 0, b = 0, c = i;
      for (int j = 0; j < 8; ++j) {
        r |= ((c >> 0) & 1) << (7 - j);
        g |= ((c >> 1) & 1) << (7 - j);
        b |= ((c >> 2) & 1) << (7 - j);
        c >>= 3;
      }
      p[i] = {static_cast<uint8_t>(r), static_cast<uint8_t>(g), static_cast<uint8_t>(b)};
    }
    return p;
  }();
  return palette;
}

namespace {

void png_error_to_exception(png_structp png, png_const_charp message) {
  // libpng requires this not to return; we unwind with an exception, which is
  // safe because our libpng calls are made from C++ frames only.
  throw Error(message ? message : "libpng error");
}
void png_warning_ignore(png_structp, png_const_charp) {}

void append_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char*>(data), length);
}
void no_flush(png_structp) {}

struct ReadCursor {
  const std::string* bytes;
  size_t offset;
};
void read_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* cur = static_cast<ReadCursor*>(png_get_io_ptr(png));
  if (cur->offset + length > cur->bytes->size()) png_error(png, "truncated PNG");
  std::memcpy(data, cur->bytes->data() + cur->offset, length);
  cur->offset += length;
}

}  // namespace

std::string encode_indexed_png(const cv::Mat& ids, const std::vector<Rgb>& palette) {
  if (ids.type() != CV_8UC1) throw Error("indexed PNG needs an 8-bit single-channel image");
  std::string out;
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_to_exception, png_warning_ignore);
  png_infop info = png_create_info_struct(png);
  try {
    png_set_write_fn(png, &out, append_bytes, no_flush);
    png_set_IHDR(png, info, ids.cols, ids.rows, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    std::vector<png_color> colors(std::min<size_t>(palette.size(), 256));
    for (size_t i = 0; i < colors.size(); ++i) colors[i] = {palette[i][0], palette[i][1], palette[i][2]};
    png_set_PLTE(png, info, colors.data(), static_cast<int>(colors.size()));
    png_write_info(png, info);
    for (int y = 0; y < ids.rows; ++y) png_write_row(png, const_cast<png_bytep>(ids.ptr<uint8_t>(y)));
    png_write_end(png, nullptr);
  } catch (...) {
    png_destroy_write_struct(&png, &info);
    throw;
  }
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_indexed_png(const std::string& path, const cv::Mat& ids, const std::vector<Rgb>& palette) {
  std::string bytes;
  try {
    bytes = encode_indexed_png(ids, palette);
  } catch (const Error& e) {
    throw file_error(path, e.what());
  }
  write_file_atomic(path, bytes);
}

cv::Mat read_label_png(const std::string& path) { return read_label_png_bytes(read_file(path), path); }

cv::Mat read_label_png_bytes(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0)
    throw file_error(name, "not a PNG file");
  // IHDR is always the first chunk (libpng insists). Checked here for a clear
  // message; libpng's own user limit below only says "Invalid IHDR data".
  if (bytes.size() >= 24 && bytes.compare(12, 4, "IHDR") == 0) {
    auto be32 = [&](size_t o) {
      uint32_t v = 0;
      for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[o + i]);
      return v;
    };
    const uint32_t width = be32(16), height = be32(20);
    if (width > static_cast<uint32_t>(kMaxLabelPngSide) || height > static_cast<uint32_t>(kMaxLabelPngSide))
      throw file_error(name, "label PNG is " + std::to_string(width) + "x" + std::to_string(height) +
                                 ", over the limit of " + std::to_string(kMaxLabelPngSide) + " px per side");
  }
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_to_exception, png_warning_ignore);
  png_infop info = png_create_info_struct(png);
  ReadCursor cursor{&bytes, 0};
  cv::Mat ids;
  try {
    png_set_read_fn(png, &cursor, read_bytes);
    // libpng checks IHDR against these in png_read_info ("Image width exceeds
    // user limit"), before we allocate anything.
    png_set_user_limits(png, kMaxLabelPngSide, kMaxLabelPngSide);
    png_read_info(png, info);
    const int color_type = png_get_color_type(png, info);
    const int bit_depth = png_get_bit_depth(png, info);
    if (color_type != PNG_COLOR_TYPE_PALETTE && color_type != PNG_COLOR_TYPE_GRAY)
      throw Error("label PNG must be a palette or grey image, not colour");
    if (bit_depth == 16) throw Error("16-bit label PNGs are not supported");
    // Palette/grey of 1, 2 or 4 bits: unpack to one byte per pixel, keeping the
    // index (no png_set_palette_to_rgb: we want ids, not colours).
    if (bit_depth < 8) png_set_packing(png);
    // Interlaced (Adam7) files: libpng assembles the passes into full rows.
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int w = static_cast<int>(png_get_image_width(png, info));
    const int h = static_cast<int>(png_get_image_height(png, info));
    // One byte per pixel is what the rows below hold; anything else would
    // overrun them.
    if (png_get_rowbytes(png, info) != static_cast<size_t>(w))
      throw Error("unexpected PNG row layout (" + std::to_string(png_get_rowbytes(png, info)) + " bytes for " +
                  std::to_string(w) + " pixels)");
    ids.create(h, w, CV_8UC1);
    std::vector<png_bytep> rows(h);
    for (int y = 0; y < h; ++y) rows[y] = ids.ptr<uint8_t>(y);
    png_read_image(png, rows.data());
    png_read_end(png, nullptr);
  } catch (const Error& e) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw file_error(name, e.what());
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return ids;
}

}  // namespace clipes

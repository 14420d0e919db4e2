#include "clipes/io/png_decode.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "clipes/util/error.h"

namespace clipes {
namespace {

struct PngSource {
  const std::vector<uchar>* bytes;
  size_t pos = 0;
  // Written by on_error just before it longjmps. A plain array rather than a
  // std::string, so that nothing can be half-assigned when the jump happens.
  char error[256] = "";
};

[[noreturn]] void on_error(png_structp png, png_const_charp message) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->error, sizeof src->error, "%s", message ? message : "unknown libpng error");
  png_longjmp(png, 1);  // libpng requires that an error handler does not return
}

// Warnings (bad iCCP profiles, CRC errors in ancillary chunks, ...) describe
// problems libpng recovered from; OpenCV decodes past them, and so do we.
void on_warning(png_structp, png_const_charp) {}

void read_from_memory(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->bytes->size() - src->pos) png_error(png, "file ends early");
  std::memcpy(out, src->bytes->data() + src->pos, n);
  src->pos += n;
}

// libpng reports errors by longjmp, and jumping over a live C++ destructor is
// undefined behaviour. So every libpng call that can fail runs inside `fn`,
// which must own no objects with destructors (it only calls libpng); all C++
// objects live in the caller, outside the jumped-over frames.
template <typename Fn>
bool guarded(png_structp png, Fn&& fn) {
  if (setjmp(png_jmpbuf(png))) return false;
  fn();
  return true;
}

struct PngReadStruct {
  png_structp png = nullptr;
  png_infop info = nullptr;
  png_infop end_info = nullptr;
  ~PngReadStruct() { png_destroy_read_struct(&png, info ? &info : nullptr, end_info ? &end_info : nullptr); }
};

}  // namespace

cv::Mat decode_png_like_opencv(const std::vector<uchar>& bytes, const std::string& name) {
  PngSource src{&bytes};
  PngReadStruct s;
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, on_error, on_warning);
  if (s.png) s.info = png_create_info_struct(s.png);
  if (s.png) s.end_info = png_create_info_struct(s.png);
  if (!s.png || !s.info || !s.end_info) throw file_error(name, "out of memory (cannot set up the PNG decoder)");
  auto failure = [&] { return file_error(name, std::string("cannot decode image (corrupt PNG: ") + src.error + ")"); };

  // Header: PngDecoder::readHeader.
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, num_trans = 0;
  if (!guarded(s.png, [&] {
        png_set_read_fn(s.png, &src, read_from_memory);
        png_read_info(s.png, s.info);
        png_get_IHDR(s.png, s.info, &width, &height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
        png_bytep trans = nullptr;
        png_color_16p trans_values = nullptr;
        png_get_tRNS(s.png, s.info, &trans, &num_trans, &trans_values);
      }))
    throw failure();

  // OpenCV's choice of output type: tRNS counts only for RGB and palette images.
  int channels = 1;
  switch (color_type) {
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_PALETTE: channels = num_trans > 0 ? 4 : 3; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    default: channels = 1;
  }
  cv::Mat img(static_cast<int>(height), static_cast<int>(width), CV_MAKETYPE(bit_depth == 16 ? CV_16U : CV_8U, channels));
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = img.ptr<uchar>(static_cast<int>(y));

  // Pixels: PngDecoder::readData, call for call (IMREAD_UNCHANGED keeps 16 bits).
  const bool color = channels > 1;
  if (!guarded(s.png, [&] {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        png_set_swap(s.png);  // 16-bit samples are big-endian in the file
#endif
        if (channels < 4) png_set_strip_alpha(s.png);
        else png_set_tRNS_to_alpha(s.png);
        if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s.png);
        if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(s.png);
        if ((color_type & PNG_COLOR_MASK_COLOR) && color) png_set_bgr(s.png);
        else if (color) png_set_gray_to_rgb(s.png);
        else png_set_rgb_to_gray(s.png, 1, 0.299, 0.587);  // a no-op on grey input, as in OpenCV
        png_set_interlace_handling(s.png);
        png_read_update_info(s.png, s.info);
        if (png_get_rowbytes(s.png, s.info) != img.cols * img.elemSize())  // never, unless the rules above are wrong
          png_error(s.png, "unexpected row size after transformations");
        png_read_image(s.png, rows.data());
        png_read_end(s.png, s.end_info);  // OpenCV fails on errors after the pixels too
      }))
    throw failure();
  return img;
}

}  // namespace clipes

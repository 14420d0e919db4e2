#include "clipes/io/gif_decode.h"

#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "clipes/util/error.h"

namespace clipes {
namespace {

struct Source {
  const std::vector<uchar>& bytes;
  size_t at = 0;
};

int read_bytes(GifFileType* gif, GifByteType* out, int wanted) {
  auto* src = static_cast<Source*>(gif->UserData);
  const size_t n = std::min(static_cast<size_t>(std::max(wanted, 0)), src->bytes.size() - src->at);
  std::memcpy(out, src->bytes.data() + src->at, n);
  src->at += n;
  return static_cast<int>(n);
}

struct Closer {
  void operator()(GifFileType* gif) const {
    int ignored = 0;
    DGifCloseFile(gif, &ignored);
  }
};

}  // namespace

cv::Mat decode_gif_first_frame_rgb(const std::vector<uchar>& bytes, const std::string& name) {
  Source source{bytes};
  int error = 0;
  std::unique_ptr<GifFileType, Closer> gif(DGifOpen(&source, read_bytes, &error));
  const auto fail = [&](int code) -> cv::Mat {
    const char* why = GifErrorString(code);
    throw file_error(name, std::string("cannot decode image (corrupt GIF: ") + (why ? why : "unknown error") + ")");
  };
  if (!gif) return fail(error);
  const int screen_w = gif->SWidth, screen_h = gif->SHeight;
  if (screen_w <= 0 || screen_h <= 0) throw file_error(name, "cannot decode image (GIF with an empty screen)");

  int transparent = -1;  // from the Graphic Control Extension before the first frame
  while (true) {
    GifRecordType type;
    if (DGifGetRecordType(gif.get(), &type) == GIF_ERROR) return fail(gif->Error);
    if (type == TERMINATE_RECORD_TYPE) throw file_error(name, "cannot decode image (GIF without a frame)");
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* block = nullptr;
      if (DGifGetExtension(gif.get(), &code, &block) == GIF_ERROR) return fail(gif->Error);
      if (code == GRAPHICS_EXT_FUNC_CODE && block && block[0] >= 4) {
        GraphicsControlBlock gcb;
        if (DGifExtensionToGCB(block[0], block + 1, &gcb) == GIF_OK) transparent = gcb.TransparentColor;
      }
      while (block) {
        if (DGifGetExtensionNext(gif.get(), &block) == GIF_ERROR) return fail(gif->Error);
      }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;
    if (DGifGetImageDesc(gif.get()) == GIF_ERROR) return fail(gif->Error);
    const GifImageDesc& desc = gif->Image;
    const ColorMapObject* colors = desc.ColorMap ? desc.ColorMap : gif->SColorMap;
    cv::Mat indices(screen_h, screen_w, CV_8UC1, cv::Scalar(transparent >= 0 ? transparent : 0));
    // Rows arrive in file order; interlaced frames send rows 0, 8, 16, ...,
    // then 4, 12, ..., then 2, 6, ..., then the odd ones (GIF89a appendix E).
    std::vector<int> rows;
    if (desc.Interlace) {
      for (const auto& [start, step] : {std::pair{0, 8}, std::pair{4, 8}, std::pair{2, 4}, std::pair{1, 2}})
        for (int y = start; y < desc.Height; y += step) rows.push_back(y);
    } else {
      for (int y = 0; y < desc.Height; ++y) rows.push_back(y);
    }
    std::vector<GifPixelType> line(static_cast<size_t>(std::max(desc.Width, 1)));
    for (const int y : rows) {
      if (DGifGetLine(gif.get(), line.data(), desc.Width) == GIF_ERROR) return fail(gif->Error);
      const int sy = desc.Top + y;
      if (sy < 0 || sy >= screen_h) continue;
      uchar* out = indices.ptr<uchar>(sy);
      for (int x = 0; x < desc.Width; ++x) {
        const int sx = desc.Left + x;
        if (sx >= 0 && sx < screen_w) out[sx] = line[static_cast<size_t>(x)];
      }
    }
    cv::Mat rgb(screen_h, screen_w, CV_8UC3);
    for (int y = 0; y < screen_h; ++y) {
      const uchar* in = indices.ptr<uchar>(y);
      cv::Vec3b* out = rgb.ptr<cv::Vec3b>(y);
      for (int x = 0; x < screen_w; ++x) {
        const int i = in[x];
        if (colors && i < colors->ColorCount) {
          const GifColorType& c = colors->Colors[i];
          out[x] = cv::Vec3b(c.Red, c.Green, c.Blue);
        } else if (colors) {
          out[x] = cv::Vec3b(0, 0, 0);
        } else {  // no colour table at all: Pillow reads the indices as grey
          out[x] = cv::Vec3b(static_cast<uchar>(i), static_cast<uchar>(i), static_cast<uchar>(i));
        }
      }
    }
    return rgb;
  }
}

}  // namespace clipes

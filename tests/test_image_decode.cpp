// Decoding hardening: header probing and the pixel limit (decompression bombs),
// the silent PNG decoder (bit-identical to OpenCV's), file-open messages, and
// decoder failures as clipes::Error. The pixel-level behaviour of decoding
// (grey, palette, 16-bit, EXIF, ...) is covered in test_preprocess.cpp.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <gif_lib.h>
#include <png.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "clipes/io/image_decode.h"
#include "clipes/io/image_header.h"
#include "clipes/io/png_decode.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;
using Bytes = std::vector<uchar>;

namespace {

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void put_be(Bytes& v, uint64_t x, int len) {
  for (int s = 8 * (len - 1); s >= 0; s -= 8) v.push_back(static_cast<uchar>(x >> s));
}
void put_le(Bytes& v, uint64_t x, int len) {
  for (int s = 0; s < 8 * len; s += 8) v.push_back(static_cast<uchar>(x >> s));
}
void append(Bytes& v, const std::string& s) { v.insert(v.end(), s.begin(), s.end()); }

Bytes png_chunk(const char* type, const Bytes& data) {
  Bytes c;
  put_be(c, data.size(), 4);
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  c.insert(c.end(), body.begin(), body.end());
  put_be(c, crc32(0L, body.data(), static_cast<uInt>(body.size())), 4);
  return c;
}

// `chunk` inserted right after IHDR (signature 8 + IHDR chunk 25 bytes).
Bytes with_chunk_after_ihdr(Bytes png, const Bytes& chunk) {
  png.insert(png.begin() + 33, chunk.begin(), chunk.end());
  return png;
}

// Offset of the first chunk of `type`.
size_t find_chunk(const Bytes& png, const char* type) {
  for (size_t i = 8; i + 8 <= png.size();) {
    const size_t len = (size_t{png[i]} << 24) | (size_t{png[i + 1]} << 16) | (size_t{png[i + 2]} << 8) | png[i + 3];
    if (std::memcmp(&png[i + 4], type, 4) == 0) return i;
    i += 12 + len;
  }
  return std::string::npos;
}

// Asserts that `fn` throws clipes::Error whose one-line message contains `needle`.
void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected clipes::Error containing: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

// Everything written to file descriptor 2 while alive (libpng's default
// handlers write there with fprintf(stderr, ...)).
class StderrCapture {
 public:
  StderrCapture() : file_(std::tmpfile()) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(::fileno(file_), 2);
  }
  ~StderrCapture() {
    restore();
    std::fclose(file_);
  }
  std::string text() {
    restore();
    std::rewind(file_);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) out.append(buf, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  FILE* file_;
  int saved_ = -1;
};

long max_rss_kb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;  // kilobytes on Linux
}

cv::Mat test_pattern(int w, int h, int type) {
  cv::Mat m(h, w, type);
  cv::randu(m, cv::Scalar::all(0), cv::Scalar::all(255));
  return m;
}

Bytes encode(const std::string& ext, const cv::Mat& m, const std::vector<int>& params = {}) {
  Bytes out;
  EXPECT_TRUE(cv::imencode(ext, m, out, params)) << ext;
  return out;
}

// ---- a PNG writer for every colour type / bit depth libpng can store -------------

struct PngVariant {
  int color_type;
  int bit_depth;
  bool trns;
  bool interlaced;
};

std::string describe(const PngVariant& v) {
  return "colour type " + std::to_string(v.color_type) + ", " + std::to_string(v.bit_depth) + "-bit" +
         (v.trns ? ", tRNS" : "") + (v.interlaced ? ", interlaced" : "");
}

void append_to_vector(png_structp png, png_bytep data, size_t n) {
  auto* out = static_cast<Bytes*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}

// Random pixels; palette images use fewer entries than indices can address
// when 8-bit (out-of-range indices are an error), a short tRNS table, and a
// strong gAMA chunk so that any gamma correction would show.
Bytes write_png_variant(const PngVariant& v, int w, int h, std::mt19937& rng) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng could not write " << describe(v);
    return {};
  }
  png_set_write_fn(png, &out, append_to_vector, nullptr);
  png_set_IHDR(png, info, w, h, v.bit_depth, v.color_type, v.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_gAMA(png, info, 0.3);
  const int max_sample = (1 << v.bit_depth) - 1;
  const int palette_size = v.bit_depth == 8 ? 200 : 1 << v.bit_depth;
  std::vector<png_color> palette(palette_size);
  std::vector<png_byte> trans_alpha(palette_size / 2 + 1);
  png_color_16 trans_color{};
  if (v.color_type == PNG_COLOR_TYPE_PALETTE) {
    for (auto& c : palette)
      c = png_color{static_cast<png_byte>(rng()), static_cast<png_byte>(rng()), static_cast<png_byte>(rng())};
    png_set_PLTE(png, info, palette.data(), palette_size);
  }
  if (v.trns) {
    if (v.color_type == PNG_COLOR_TYPE_PALETTE) {
      for (auto& a : trans_alpha) a = static_cast<png_byte>(rng());
      png_set_tRNS(png, info, trans_alpha.data(), static_cast<int>(trans_alpha.size()), nullptr);
    } else {
      trans_color.gray = static_cast<png_uint_16>(rng() % (max_sample + 1));
      trans_color.red = trans_color.green = trans_color.blue = trans_color.gray;
      png_set_tRNS(png, info, nullptr, 1, &trans_color);
    }
  }
  png_write_info(png, info);
  const int channels = png_get_channels(png, info);
  const size_t row_bytes = (static_cast<size_t>(w) * channels * v.bit_depth + 7) / 8;
  std::vector<Bytes> rows(h, Bytes(row_bytes));
  std::vector<png_bytep> row_ptrs;
  for (auto& r : rows) {
    for (auto& b : r) b = static_cast<uchar>(rng());
    if (v.color_type == PNG_COLOR_TYPE_PALETTE && v.bit_depth == 8)
      for (auto& b : r) b = static_cast<uchar>(b % palette_size);
    row_ptrs.push_back(r.data());
  }
  png_write_image(png, row_ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// A valid 1-bit grey PNG of zeros, streamed through deflate row by row, so that
// neither building nor writing it needs memory in proportion to its pixels.
// 30000×30000 is 112 MB of filtered rows and deflates to well under 1 MB.
void write_zero_png(const std::string& path, uint32_t width, uint32_t height) {
  std::ofstream out(path, std::ios::binary);
  Bytes head = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Bytes ihdr;
  put_be(ihdr, width, 4);
  put_be(ihdr, height, 4);
  ihdr.insert(ihdr.end(), {1, 0, 0, 0, 0});  // 1-bit grey, deflate, no filter, no interlace
  const Bytes ihdr_chunk = png_chunk("IHDR", ihdr);
  head.insert(head.end(), ihdr_chunk.begin(), ihdr_chunk.end());
  out.write(reinterpret_cast<const char*>(head.data()), static_cast<std::streamsize>(head.size()));

  z_stream z{};
  ASSERT_EQ(deflateInit(&z, Z_BEST_COMPRESSION), Z_OK);
  Bytes row((width + 7) / 8 + 1, 0);  // filter byte 0 + packed zero samples
  Bytes buf(1 << 20);
  auto flush_idat = [&](size_t n) {
    if (n == 0) return;
    const Bytes c = png_chunk("IDAT", Bytes(buf.begin(), buf.begin() + static_cast<long>(n)));
    out.write(reinterpret_cast<const char*>(c.data()), static_cast<std::streamsize>(c.size()));
  };
  for (uint32_t y = 0; y <= height; ++y) {
    const bool last = y == height;
    z.next_in = row.data();
    z.avail_in = last ? 0 : static_cast<uInt>(row.size());
    int rc;
    do {
      z.next_out = buf.data();
      z.avail_out = static_cast<uInt>(buf.size());
      rc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
      flush_idat(buf.size() - z.avail_out);
    } while (z.avail_out == 0 || (last && rc != Z_STREAM_END));
  }
  deflateEnd(&z);
  const Bytes iend = png_chunk("IEND", {});
  out.write(reinterpret_cast<const char*>(iend.data()), static_cast<std::streamsize>(iend.size()));
}

// ---- headers declaring a huge image, one per format ------------------------------

Bytes jpeg_header(uint32_t w, uint32_t h) {
  Bytes b = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16};  // SOI, APP0 (JFIF) of 14 payload bytes
  append(b, std::string("JFIF\0\1\1\0\0\1\0\1\0\0", 14));
  b.insert(b.end(), {0xFF, 0xC2, 0, 17, 8});  // progressive SOF2, 3 components
  put_be(b, h, 2);
  put_be(b, w, 2);
  b.insert(b.end(), {3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9});
  return b;
}
Bytes bmp_header(int32_t w, int32_t h) {
  Bytes b = {'B', 'M'};
  put_le(b, 54, 4);
  put_le(b, 0, 4);
  put_le(b, 54, 4);
  put_le(b, 40, 4);  // BITMAPINFOHEADER
  put_le(b, static_cast<uint32_t>(w), 4);
  put_le(b, static_cast<uint32_t>(h), 4);
  put_le(b, 1, 2);
  put_le(b, 24, 2);
  b.resize(54, 0);
  return b;
}
Bytes webp_vp8x_header(uint32_t w, uint32_t h) {
  Bytes b;
  append(b, "RIFF");
  put_le(b, 22, 4);
  append(b, "WEBPVP8X");
  put_le(b, 10, 4);
  put_le(b, 0, 4);
  put_le(b, w - 1, 3);
  put_le(b, h - 1, 3);
  return b;
}
Bytes tiff_header(bool little, bool big_tiff, uint64_t w, uint64_t h, int type) {
  auto put = [&](Bytes& b, uint64_t x, int len) { little ? put_le(b, x, len) : put_be(b, x, len); };
  Bytes b;
  append(b, little ? "II" : "MM");
  const int value_size = big_tiff ? 8 : 4;
  if (big_tiff) {
    put(b, 43, 2);
    put(b, 8, 2);
    put(b, 0, 2);
    put(b, 16, 8);
    put(b, 3, 8);
  } else {
    put(b, 42, 2);
    put(b, 8, 4);
    put(b, 3, 2);
  }
  const int type_size = type == 3 ? 2 : type == 4 ? 4 : 8;
  for (const auto& [tag, v] : {std::pair<int, uint64_t>{256, w}, {257, h}, {258, 8}}) {
    put(b, tag, 2);
    put(b, tag == 258 ? 3 : type, 2);
    put(b, 1, big_tiff ? 8 : 4);
    put(b, v, tag == 258 ? 2 : type_size);  // the value sits left-justified in its field
    for (int k = tag == 258 ? 2 : type_size; k < value_size; ++k) b.push_back(0);
  }
  put(b, 0, value_size);  // no next IFD
  return b;
}
// The bytes of a string literal, embedded NULs included.
template <size_t N>
Bytes text(const char (&s)[N]) {
  return Bytes(s, s + N - 1);
}
Bytes sun_raster_header(uint32_t w, uint32_t h) {
  Bytes b = {0x59, 0xA6, 0x6A, 0x95};
  for (uint32_t v : {w, h, 24u, 0u, 1u, 0u, 0u}) put_be(b, v, 4);
  return b;
}
Bytes jp2_header(uint32_t w, uint32_t h) {
  Bytes b = {0, 0, 0, 12, 'j', 'P', ' ', ' ', '\r', '\n', 0x87, '\n'};
  put_be(b, 20, 4);
  append(b, "ftypjp2 ");
  put_be(b, 0, 4);
  append(b, "jp2 ");
  put_be(b, 8 + 22, 4);
  append(b, "jp2h");
  put_be(b, 22, 4);
  append(b, "ihdr");
  put_be(b, h, 4);
  put_be(b, w, 4);
  b.insert(b.end(), {0, 3, 7, 7, 0, 0});
  return b;
}
Bytes j2k_header(uint32_t w, uint32_t h, uint32_t x0, uint32_t y0) {
  Bytes b = {0xFF, 0x4F, 0xFF, 0x51, 0, 47, 0, 0};
  for (uint32_t v : {w + x0, h + y0, x0, y0, w, h, 0u, 0u}) put_be(b, v, 4);
  return b;
}

}  // namespace

// ---- probing ---------------------------------------------------------------------

// OpenJPEG's encoder needs at least 32 pixels a side for its default 6 levels.
constexpr int kW = 70, kH = 45;

TEST(ProbeImageSize, AgreesWithOpenCvOnEveryFormatItWrites) {
  const cv::Mat colour = test_pattern(kW, kH, CV_8UC3);
  const cv::Mat grey = test_pattern(kW, kH, CV_8UC1);
  struct Case {
    std::string what;
    Bytes bytes;
  };
  std::vector<Case> cases = {
      {"png", encode(".png", colour)},
      {"jpeg", encode(".jpg", colour)},
      {"progressive jpeg", encode(".jpg", colour, {cv::IMWRITE_JPEG_PROGRESSIVE, 1})},
      {"bmp", encode(".bmp", colour)},
      {"webp lossy (VP8)", encode(".webp", colour, {cv::IMWRITE_WEBP_QUALITY, 80})},
      {"webp lossless (VP8L)", encode(".webp", colour, {cv::IMWRITE_WEBP_QUALITY, 101})},
      {"tiff", encode(".tiff", colour)},
      {"pbm", encode(".pbm", grey)},
      {"pgm", encode(".pgm", grey)},
      {"ppm", encode(".ppm", colour)},
      {"pgm ascii", encode(".pgm", grey, {cv::IMWRITE_PXM_BINARY, 0})},
      {"pam", encode(".pam", colour)},
      {"sun raster", encode(".ras", colour)},
      {"jpeg 2000", encode(".jp2", colour)},
  };
  // Forms OpenCV does not write: top-down BMP, PNM with comments, big-endian TIFF.
  Bytes top_down = encode(".bmp", grey);
  {
    const Bytes neg = bmp_header(kW, -kH);
    std::copy(neg.begin() + 22, neg.begin() + 26, top_down.begin() + 22);
  }
  cases.push_back({"top-down bmp", top_down});
  Bytes commented = text("P5\n# made by hand\n70 # width\n\t45\n255\n");
  commented.insert(commented.end(), grey.datastart, grey.dataend);
  cases.push_back({"pgm with comments", commented});

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_FALSE(c.bytes.empty());
    const auto size = probe_image_size(c.bytes);
    ASSERT_TRUE(size.has_value());
    EXPECT_EQ(*size, cv::Size(kW, kH));
    EXPECT_EQ(cv::imdecode(c.bytes, cv::IMREAD_UNCHANGED).size(), cv::Size(kW, kH));
    EXPECT_EQ(decode_image_rgb_bytes(c.bytes, "x").size(), cv::Size(kW, kH));
  }

  EXPECT_EQ(probe_image_size(tiff_header(false, false, kW, kH, 3)), cv::Size(kW, kH));
  EXPECT_EQ(probe_image_size(tiff_header(true, false, kW, kH, 4)), cv::Size(kW, kH));
  EXPECT_EQ(probe_image_size(tiff_header(false, true, kW, kH, 16)), cv::Size(kW, kH));
  EXPECT_EQ(probe_image_size(webp_vp8x_header(kW, kH)), cv::Size(kW, kH));
  EXPECT_EQ(probe_image_size(j2k_header(kW, kH, 5, 9)), cv::Size(kW, kH));
  EXPECT_EQ(probe_image_size(text("P7\nWIDTH 70\nHEIGHT 45\nDEPTH 1\nMAXVAL 255\nENDHDR\n")), cv::Size(kW, kH));
}

TEST(ProbeImageSize, CutOrGarbledHeadersNeverReadOutOfBounds) {
  const cv::Mat colour = test_pattern(kW, kH, CV_8UC3);
  std::vector<Bytes> files = {encode(".png", colour), encode(".jpg", colour), encode(".bmp", colour),
                              encode(".webp", colour), encode(".tiff", colour), encode(".ppm", colour),
                              encode(".pam", colour), encode(".ras", colour), encode(".jp2", colour),
                              tiff_header(false, true, kW, kH, 16), j2k_header(kW, kH, 0, 0)};
  std::mt19937 rng(7);
  for (const Bytes& f : files) {
    // Every prefix: either no size, or the right one (never a made-up one).
    for (size_t n = 0; n <= std::min<size_t>(f.size(), 400); ++n) {
      const auto size = probe_image_size(Bytes(f.begin(), f.begin() + static_cast<long>(n)));
      if (size) {
        EXPECT_EQ(*size, cv::Size(kW, kH)) << "prefix of " << n << " bytes";
      }
    }
    // Random corruption of the header: must simply not crash.
    for (int k = 0; k < 300; ++k) {
      Bytes g(f.begin(), f.begin() + static_cast<long>(std::min<size_t>(f.size(), 120)));
      for (int m = 0; m < 4; ++m) g[4 + rng() % (g.size() - 4)] = static_cast<uchar>(rng());
      (void)probe_image_size(g);
    }
  }
  EXPECT_FALSE(probe_image_size({}).has_value());
  EXPECT_FALSE(probe_image_size(text("hello world")).has_value());
  EXPECT_FALSE(probe_image_size(text("RIFF\0\0\0\0WAVEfmt ")).has_value());
  EXPECT_FALSE(probe_image_size(jpeg_header(100, 0)).has_value());  // height in a DNL marker
  EXPECT_FALSE(probe_image_size(bmp_header(0, 5)).has_value());
  EXPECT_FALSE(probe_image_size(text("P7\nWIDTH 5\n")).has_value());  // no ENDHDR
  // Recognised but unreadable: the format is still named, for the message.
  const auto cut = probe_image_header(Bytes(files[1].begin(), files[1].begin() + 20));
  ASSERT_TRUE(cut.has_value());
  EXPECT_STREQ(cut->format, "JPEG");
  EXPECT_EQ(cut->width, 0);
}

TEST(ProbeImageSize, HugeDimensionsDoNotOverflow) {
  const auto big = probe_image_header(tiff_header(true, true, uint64_t{1} << 62, uint64_t{1} << 62, 16));
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->width, int64_t{1} << 62);
  EXPECT_EQ(probe_image_size(tiff_header(true, true, uint64_t{1} << 62, 5, 16)), cv::Size(INT_MAX, 5));
  const auto bmp = probe_image_header(bmp_header(INT32_MAX, INT32_MIN));
  ASSERT_TRUE(bmp.has_value());
  EXPECT_EQ(bmp->height, int64_t{1} << 31);
  EXPECT_EQ(probe_image_size(text("P6 99999999999999999999999 3 255\n"))->width, INT_MAX);
}

// ---- the pixel limit -------------------------------------------------------------

TEST(DecodeLimits, RefusesAPngBombBeforeDecoding) {
  const std::string dir = test::make_temp_dir("decode-bomb");
  const std::string path = dir + "/bomb.png";
  write_zero_png(path, 30000, 30000);
  ASSERT_LT(std::filesystem::file_size(path), 4u << 20);

  // Decoding it would take 900 MB for the samples and 2.7 GB for RGB.
  const long before_kb = max_rss_kb();
  const std::string msg = test::error_of([&] { decode_image_rgb(path); });
  EXPECT_EQ(msg, path + ": image is 30000×30000 (900 MP), over the pixel limit of 40 MP (--max-pixels)");
  DecodeLimits tight;
  tight.max_pixels = 12'500'000;
  EXPECT_NE(test::error_of([&] { decode_image_rgb(path, tight); }).find("over the pixel limit of 12.5 MP"),
            std::string::npos);
  EXPECT_LT(max_rss_kb() - before_kb, 200 * 1024) << "peak RSS grew by " << (max_rss_kb() - before_kb) << " kB";
}

TEST(DecodeLimits, RefusesHugeHeadersOfEveryFormat) {
  const std::string over = "over the pixel limit of 40 MP (--max-pixels)";
  Bytes png_ihdr = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  {
    Bytes ihdr;
    put_be(ihdr, 60000, 4);
    put_be(ihdr, 60000, 4);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
    const Bytes c = png_chunk("IHDR", ihdr);
    png_ihdr.insert(png_ihdr.end(), c.begin(), c.end());
  }
  const std::vector<std::pair<std::string, Bytes>> bombs = {
      {"png", png_ihdr},
      {"jpeg", jpeg_header(60000, 60000)},
      {"bmp", bmp_header(60000, -60000)},
      {"webp", webp_vp8x_header(1u << 24, 1u << 24)},
      {"tiff le", tiff_header(true, false, 60000, 60000, 4)},
      {"tiff be", tiff_header(false, false, 60000, 60000, 3)},
      {"bigtiff", tiff_header(false, true, uint64_t{1} << 62, uint64_t{1} << 62, 16)},
      {"pgm", text("P5\n# c\n60000 60000\n255\n")},
      {"pam", text("P7\nWIDTH 60000\nHEIGHT 60000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n")},
      {"sun raster", sun_raster_header(60000, 60000)},
      {"jp2", jp2_header(60000, 60000)},
      {"j2k", j2k_header(60000, 60000, 0, 0)},
  };
  for (const auto& [name, bytes] : bombs) {
    SCOPED_TRACE(name);
    expect_error([&] { decode_image_rgb_bytes(bytes, name); }, name + ": image is ");
    expect_error([&] { decode_image_rgb_bytes(bytes, name); }, over);
  }
  EXPECT_EQ(test::error_of([&] { decode_image_rgb_bytes(jpeg_header(60000, 60000), "a.jpg"); }),
            "a.jpg: image is 60000×60000 (3600 MP), over the pixel limit of 40 MP (--max-pixels)");
  expect_error([&] { decode_image_rgb_bytes(bombs[6].second, "b.tif"); },
               "b.tif: image is 4611686018427387904×4611686018427387904 (");
}

TEST(DecodeLimits, TheLimitIsInclusiveAndCanBeDisabled) {
  const Bytes png = encode(".png", test_pattern(37, 23, CV_8UC3));
  DecodeLimits exact;
  exact.max_pixels = 37 * 23;
  EXPECT_EQ(decode_image_rgb_bytes(png, "x.png", exact).size(), cv::Size(37, 23));
  DecodeLimits below;
  below.max_pixels = 37 * 23 - 1;
  expect_error([&] { decode_image_rgb_bytes(png, "x.png", below); }, "x.png: image is 37×23 (0.000851 MP), over the pixel limit of 0.00085 MP");
  DecodeLimits off;
  off.max_pixels = 0;
  EXPECT_EQ(decode_image_rgb_bytes(png, "x.png", off).size(), cv::Size(37, 23));
  static_assert(kDefaultMaxPixels == 40'000'000);
  EXPECT_EQ(DecodeLimits{}.max_pixels, kDefaultMaxPixels);
}

TEST(DecodeLimits, UnrecognisedFormatsAreRefusedNotHandedToOpenCv) {
  // Radiance HDR decodes in OpenCV, but its size is not probed (float data,
  // refused after decoding before): now it is refused up front.
  const Bytes hdr = encode(".hdr", cv::Mat(4, 4, CV_32FC3, cv::Scalar(0.5, 0.5, 0.5)));
  expect_error([&] { decode_image_rgb_bytes(hdr, "x.hdr"); }, "x.hdr: cannot decode image (not a PNG, JPEG");
  // A recognised format with a cut header names the format.
  const Bytes jpg = encode(".jpg", test_pattern(37, 23, CV_8UC3));
  expect_error([&] { decode_image_rgb_bytes(Bytes(jpg.begin(), jpg.begin() + 30), "y.jpg"); },
               "y.jpg: cannot decode image (truncated or corrupt JPEG header)");
}

// ---- the PNG decoder -------------------------------------------------------------

TEST(PngDecode, BitIdenticalToOpenCvForEveryVariant) {
  std::vector<PngVariant> variants;
  for (bool interlaced : {false, true}) {
    for (int d : {1, 2, 4, 8, 16}) {
      variants.push_back({PNG_COLOR_TYPE_GRAY, d, false, interlaced});
      variants.push_back({PNG_COLOR_TYPE_GRAY, d, true, interlaced});
    }
    for (int d : {1, 2, 4, 8}) {
      variants.push_back({PNG_COLOR_TYPE_PALETTE, d, false, interlaced});
      variants.push_back({PNG_COLOR_TYPE_PALETTE, d, true, interlaced});
    }
    for (int d : {8, 16}) {
      variants.push_back({PNG_COLOR_TYPE_GRAY_ALPHA, d, false, interlaced});
      variants.push_back({PNG_COLOR_TYPE_RGB, d, false, interlaced});
      variants.push_back({PNG_COLOR_TYPE_RGB, d, true, interlaced});
      variants.push_back({PNG_COLOR_TYPE_RGB_ALPHA, d, false, interlaced});
    }
  }
  std::mt19937 rng(2024);
  for (const PngVariant& v : variants) {
    SCOPED_TRACE(describe(v));
    for (const cv::Size size : {cv::Size(13, 7), cv::Size(1, 1), cv::Size(64, 3)}) {
      const Bytes png = write_png_variant(v, size.width, size.height, rng);
      const cv::Mat want = cv::imdecode(png, cv::IMREAD_UNCHANGED);
      ASSERT_FALSE(want.empty());
      const cv::Mat got = decode_png_like_opencv(png, "v.png");
      ASSERT_EQ(got.type(), want.type());
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(cv::norm(got, want, cv::NORM_INF), 0);
    }
  }
}

TEST(PngDecode, NothingReachesStderr) {
  const Bytes good = encode(".png", test_pattern(37, 23, CV_8UC3));
  // An iCCP chunk whose "profile" is not one: libpng warns and ignores it.
  Bytes iccp = text("bad profile");
  iccp.insert(iccp.end(), {0, 0});  // name terminator, compression method
  {
    const Bytes junk = text("this is not an ICC profile at all, just some text");
    uLongf zlen = compressBound(static_cast<uLong>(junk.size()));
    Bytes z(zlen);
    ASSERT_EQ(compress(z.data(), &zlen, junk.data(), static_cast<uLong>(junk.size())), Z_OK);
    iccp.insert(iccp.end(), z.begin(), z.begin() + static_cast<long>(zlen));
  }
  const Bytes bad_iccp = with_chunk_after_ihdr(good, png_chunk("iCCP", iccp));
  // A CRC error in an ancillary chunk (warning, chunk skipped) ...
  Bytes bad_text_crc = with_chunk_after_ihdr(good, png_chunk("tEXt", text("Comment\0hello")));
  bad_text_crc[33 + 8] ^= 0x20;
  // ... and in the image data (an error).
  Bytes bad_idat_crc = good;
  {
    const size_t at = find_chunk(good, "IDAT");
    const size_t len = (size_t{good[at]} << 24) | (size_t{good[at + 1]} << 16) | (size_t{good[at + 2]} << 8) | good[at + 3];
    bad_idat_crc[at + 8 + len] ^= 0x01;  // the CRC itself, so the data still inflates
  }
  const Bytes truncated(good.begin(), good.begin() + static_cast<long>(good.size() / 2));

  {  // Sanity: OpenCV's decoder does print for these, so the check below means something.
    StderrCapture cap;
    (void)cv::imdecode(bad_iccp, cv::IMREAD_UNCHANGED);
    (void)cv::imdecode(bad_idat_crc, cv::IMREAD_UNCHANGED);
    EXPECT_NE(cap.text().find("libpng"), std::string::npos);
  }
  StderrCapture cap;
  const cv::Mat want = decode_image_rgb_bytes(good, "good.png");
  const cv::Mat a = decode_image_rgb_bytes(bad_iccp, "iccp.png");
  const cv::Mat b = decode_image_rgb_bytes(bad_text_crc, "text.png");
  const std::string idat = test::error_of([&] { decode_image_rgb_bytes(bad_idat_crc, "idat.png"); });
  const std::string cut = test::error_of([&] { decode_image_rgb_bytes(truncated, "cut.png"); });
  const std::string err = cap.text();
  EXPECT_EQ(err, "");
  EXPECT_EQ(cv::norm(a, want, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(b, want, cv::NORM_INF), 0);
  EXPECT_EQ(idat, "idat.png: cannot decode image (corrupt PNG: IDAT: CRC error)");
  EXPECT_EQ(cut.rfind("cut.png: cannot decode image (corrupt PNG: ", 0), 0u) << cut;
}

// ---- opening files ---------------------------------------------------------------

TEST(ImageDecode, SaysWhyAFileCannotBeOpened) {
  const std::string dir = test::make_temp_dir("decode-open");
  ASSERT_EQ(::symlink("loop-b.png", (dir + "/loop-a.png").c_str()), 0);
  ASSERT_EQ(::symlink("loop-a.png", (dir + "/loop-b.png").c_str()), 0);
  EXPECT_EQ(test::error_of([&] { decode_image_rgb(dir + "/loop-a.png"); }),
            dir + "/loop-a.png: too many levels of symbolic links (symlink loop)");
  EXPECT_EQ(test::error_of([&] { decode_image_rgb(dir); }), dir + ": is a directory, not an image file");
  EXPECT_EQ(test::error_of([&] { decode_image_rgb(dir + "/missing.png"); }), dir + "/missing.png: file not found");
  ASSERT_EQ(::symlink("nowhere.png", (dir + "/dangling.png").c_str()), 0);
  EXPECT_EQ(test::error_of([&] { decode_image_rgb(dir + "/dangling.png"); }), dir + "/dangling.png: file not found");
  ASSERT_EQ(::mkfifo((dir + "/fifo.png").c_str(), 0600), 0);
  EXPECT_EQ(test::error_of([&] { decode_image_rgb(dir + "/fifo.png"); }), dir + "/fifo.png: not a regular file");

  write_bytes(dir + "/locked.png", encode(".png", test_pattern(4, 4, CV_8UC3)));
  ::chmod((dir + "/locked.png").c_str(), 0);
  if (::geteuid() != 0) {  // root reads it anyway
    EXPECT_EQ(test::error_of([&] { decode_image_rgb(dir + "/locked.png"); }), dir + "/locked.png: permission denied");
  }
  ::chmod((dir + "/locked.png").c_str(), 0600);
  EXPECT_EQ(decode_image_rgb(dir + "/locked.png").size(), cv::Size(4, 4));
}

// ---- decoder failures ------------------------------------------------------------

// With the address space capped just above what decoding itself needs, the
// RGB conversion's allocation fails inside OpenCV. That must come out as a
// clipes::Error naming the file, not escape as cv::Exception (terminate).
// Runs in a fresh process (a death test), since the cap cannot be undone.
TEST(ImageDecode, OutOfMemoryBecomesAnErrorNamingTheFile) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space; RLIMIT_AS cannot be used";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string dir = test::make_temp_dir("decode-oom");
  const std::string path = dir + "/big.jpg";
  write_bytes(path, encode(".jpg", cv::Mat(4000, 4000, CV_8UC3, cv::Scalar(10, 20, 30))));
  EXPECT_EXIT(
      {
        cv::setNumThreads(0);  // no worker threads: their stacks would eat the margin
        const Bytes bytes = [&] {
          std::ifstream in(path, std::ios::binary);
          return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }();
        // VmSize now + the 48 MB the decoded image needs + a little: the second
        // 48 MB (RGB conversion) cannot fit.
        long vm_kb = 0;
        std::ifstream status("/proc/self/status");
        for (std::string line; std::getline(status, line);)
          if (line.rfind("VmSize:", 0) == 0) vm_kb = std::stol(line.substr(7));
        rlimit cap{};
        cap.rlim_cur = cap.rlim_max = static_cast<rlim_t>(vm_kb + 64 * 1024) * 1024;
        ::setrlimit(RLIMIT_AS, &cap);
        try {
          (void)decode_image_rgb_bytes(bytes, "big.jpg");
          std::fprintf(stderr, "decoded without running out of memory\n");
          std::_Exit(3);
        } catch (const Error& e) {
          std::fprintf(stderr, "%s\n", e.what());
          std::_Exit(0);
        }
      },
      ::testing::ExitedWithCode(0), "big\\.jpg: out of memory while decoding \\(OpenCV: Failed to allocate 48000000 bytes\\)");
}

namespace {

int append_to_vector(GifFileType* gif, const GifByteType* bytes, int n) {
  auto* out = static_cast<std::vector<uchar>*>(gif->UserData);
  out->insert(out->end(), bytes, bytes + n);
  return n;
}

// A 6×5 GIF whose first frame (4×3 at offset 1,1, its own 4-colour table,
// transparent index 2) is followed by a second frame that must be ignored.
std::vector<uchar> two_frame_gif(bool interlaced) {
  std::vector<uchar> out;
  int error = 0;
  GifFileType* gif = EGifOpen(&out, append_to_vector, &error);
  EXPECT_NE(gif, nullptr);
  EGifSetGifVersion(gif, true);
  const GifColorType global_colors[2] = {{9, 9, 9}, {200, 200, 200}};
  const GifColorType local_colors[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}};
  ColorMapObject* global = GifMakeMapObject(2, global_colors);
  ColorMapObject* local = GifMakeMapObject(4, local_colors);
  EXPECT_EQ(EGifPutScreenDesc(gif, 6, 5, 2, 0, global), GIF_OK);
  GraphicsControlBlock gcb{DISPOSAL_UNSPECIFIED, false, 0, 2};
  GifByteType extension[4];
  const size_t n = EGifGCBToExtension(&gcb, extension);
  EXPECT_EQ(EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(n), extension), GIF_OK);
  EXPECT_EQ(EGifPutImageDesc(gif, 1, 1, 4, 3, interlaced, local), GIF_OK);
  GifPixelType rows[3][4] = {{0, 1, 3, 0}, {1, 1, 1, 1}, {3, 2, 0, 1}};
  // Interlaced rows are sent 0, then (step 8 from 4: none), 2, then 1.
  for (const int y : interlaced ? std::vector<int>{0, 2, 1} : std::vector<int>{0, 1, 2})
    EXPECT_EQ(EGifPutLine(gif, rows[y], 4), GIF_OK);
  EXPECT_EQ(EGifPutImageDesc(gif, 0, 0, 6, 5, false, nullptr), GIF_OK);  // frame 2: all global colour 1
  GifPixelType ones[6] = {1, 1, 1, 1, 1, 1};
  for (int y = 0; y < 5; ++y) EXPECT_EQ(EGifPutLine(gif, ones, 6), GIF_OK);
  EXPECT_EQ(EGifCloseFile(gif, &error), GIF_OK);
  GifFreeMapObject(global);
  GifFreeMapObject(local);
  return out;
}

}  // namespace

TEST(ImageDecode, AGifIsItsFirstFrameAsPilConvertsIt) {
  // Issue 26 friction: GIFs were refused; PIL (the official code's reader)
  // decodes the first frame.
  for (const bool interlaced : {false, true}) {
    const std::vector<uchar> bytes = two_frame_gif(interlaced);
    const auto header = probe_image_header(bytes);
    ASSERT_TRUE(header);
    EXPECT_STREQ(header->format, "GIF");
    EXPECT_EQ(header->width, 6);
    EXPECT_EQ(header->height, 5);
    const cv::Mat rgb = decode_image_rgb_bytes(bytes, "two.gif");
    ASSERT_EQ(rgb.type(), CV_8UC3);
    ASSERT_EQ(rgb.size(), cv::Size(6, 5));
    const cv::Vec3b red(255, 0, 0), green(0, 255, 0), blue(0, 0, 255), yellow(255, 255, 0);
    // Outside the frame: the transparent index (2) through the frame's table.
    EXPECT_EQ(rgb.at<cv::Vec3b>(0, 0), blue) << interlaced;
    EXPECT_EQ(rgb.at<cv::Vec3b>(4, 5), blue) << interlaced;
    // Inside: the frame's indices, row by row, in its own colours.
    const cv::Vec3b want[3][4] = {{red, green, yellow, red}, {green, green, green, green}, {yellow, blue, red, green}};
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x) EXPECT_EQ(rgb.at<cv::Vec3b>(1 + y, 1 + x), want[y][x]) << interlaced << " " << y << x;
  }
  // Cut short: one line naming the file.
  std::vector<uchar> cut = two_frame_gif(false);
  cut.resize(40);
  try {
    decode_image_rgb_bytes(cut, "cut.gif");
    FAIL() << "a truncated GIF decoded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cut.gif: cannot decode image", 0), 0u) << e.what();
  }
}

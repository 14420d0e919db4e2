// Image decoding, Pillow-exact bicubic resize and CLIP / CLIP-ES preprocessing
// (spec §3), checked against the reference tensors in ../shared.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "clipes/io/image_decode.h"
#include "clipes/io/npy.h"
#include "clipes/io/pil_resize.h"
#include "clipes/io/preprocess.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {

const char* const kStems[] = {"000000005001", "000000020992"};

std::string coco_image(const std::string& stem) {
  return test::shared("data/coco-tiny/val2017/" + stem + ".jpg");
}
std::string reference(const std::string& name) {
  return test::shared("fixtures/tiny-clip/reference/" + name);
}

void write_bytes(const std::string& path, const std::vector<uchar>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
std::vector<uchar> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put_be32(std::vector<uchar>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uchar>(x >> s));
}
void png_chunk(std::vector<uchar>& png, const char* type, const std::vector<uchar>& data) {
  put_be32(png, static_cast<uint32_t>(data.size()));
  std::vector<uchar> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put_be32(png, static_cast<uint32_t>(crc32(0L, body.data(), static_cast<uInt>(body.size()))));
}

// A minimal 8-bit PNG written by hand, for the colour types cv::imwrite cannot
// produce (grey+alpha = 4, palette = 3). `rows` hold the raw samples per row.
std::vector<uchar> make_png(int width, int height, uchar color_type, const std::vector<std::vector<uchar>>& rows,
                            const std::vector<uchar>& plte = {}, const std::vector<uchar>& trns = {}) {
  std::vector<uchar> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uchar> ihdr;
  put_be32(ihdr, static_cast<uint32_t>(width));
  put_be32(ihdr, static_cast<uint32_t>(height));
  ihdr.insert(ihdr.end(), {8, color_type, 0, 0, 0});
  png_chunk(png, "IHDR", ihdr);
  if (!plte.empty()) png_chunk(png, "PLTE", plte);
  if (!trns.empty()) png_chunk(png, "tRNS", trns);
  std::vector<uchar> raw;
  for (const auto& r : rows) {
    raw.push_back(0);  // filter type None
    raw.insert(raw.end(), r.begin(), r.end());
  }
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uchar> z(zlen);
  EXPECT_EQ(compress(z.data(), &zlen, raw.data(), static_cast<uLong>(raw.size())), Z_OK);
  z.resize(zlen);
  png_chunk(png, "IDAT", z);
  png_chunk(png, "IEND", {});
  return png;
}

cv::Vec3b px(const cv::Mat& m, int y, int x) { return m.at<cv::Vec3b>(y, x); }

// Asserts that `fn` throws clipes::Error whose message mentions `needle`.
template <typename F>
void expect_error_naming(F fn, const std::string& needle) {
  try {
    fn();
    FAIL() << "expected clipes::Error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
}

}  // namespace

// ---- parity with the reference preprocessing ---------------------------------

TEST(Preprocess, Ceil16MatchesReference) {
  for (const char* stem : kStems) {
    const cv::Mat rgb = decode_image_rgb(coco_image(stem));
    const at::Tensor got = preprocess_to_patch_multiple(rgb, 16);
    const at::Tensor want = read_npy(reference(std::string("input_ceil16_") + stem + ".npy")).to(at::kFloat);
    ASSERT_EQ(got.sizes(), want.sizes()) << stem;
    EXPECT_EQ(got.size(1) % 16, 0);
    EXPECT_EQ(got.size(2) % 16, 0);
    const double max_diff = (got - want).abs().max().item<double>();
    std::printf("[ log ] ceil16 %s %dx%d -> %lldx%lld: max |diff| = %.3g\n", stem, rgb.cols, rgb.rows,
                static_cast<long long>(got.size(2)), static_cast<long long>(got.size(1)), max_diff);
    EXPECT_LE(max_diff, 1e-5) << stem;
  }
}

TEST(Preprocess, Standard224MatchesReference) {
  for (const char* stem : kStems) {
    const at::Tensor got = preprocess_224(decode_image_rgb(coco_image(stem)));
    const at::Tensor want = read_npy(reference(std::string("input_224_") + stem + ".npy")).to(at::kFloat);
    ASSERT_EQ(got.sizes(), want.sizes()) << stem;
    const double max_diff = (got - want).abs().max().item<double>();
    std::printf("[ log ] 224 %s: max |diff| = %.3g\n", stem, max_diff);
    EXPECT_LE(max_diff, 1e-5) << stem;
  }
}

TEST(Preprocess, NormalizeClipValuesAndLayout) {
  cv::Mat m(1, 2, CV_8UC3, cv::Scalar(0, 128, 255));
  m.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 0, 10);
  const at::Tensor t = normalize_clip(m);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 1, 2}));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(t[0][0][0].item<float>(), (0.0f - 0.48145466f) / 0.26862954f);
  EXPECT_FLOAT_EQ(t[1][0][0].item<float>(), (128.0f / 255.0f - 0.4578275f) / 0.26130258f);
  EXPECT_FLOAT_EQ(t[2][0][0].item<float>(), (1.0f - 0.40821073f) / 0.27577711f);
  EXPECT_FLOAT_EQ(t[0][0][1].item<float>(), (1.0f - 0.48145466f) / 0.26862954f);
  EXPECT_FLOAT_EQ(t[2][0][1].item<float>(), (10.0f / 255.0f - 0.40821073f) / 0.27577711f);
}

TEST(Preprocess, Standard224CropsTheCentre) {
  // 300×200 → 336×224 (long side int(224·300/200)), left = round(56) = 56.
  cv::Mat wide(200, 300, CV_8UC3, cv::Scalar(10, 20, 30));
  EXPECT_EQ(preprocess_224(wide).sizes(), (std::vector<int64_t>{3, 224, 224}));
  // 224×301 needs no resize; top = round(77 / 2 = 38.5) = 38, half to even
  // like Python's round (spec §3 step 6). Row y holds the value y.
  cv::Mat tall(301, 224, CV_8UC3);
  for (int y = 0; y < tall.rows; ++y) tall.row(y).setTo(cv::Scalar::all(y));
  const at::Tensor t = preprocess_224(tall);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_FLOAT_EQ(t[0][0][0].item<float>(), (38.0f / 255.0f - 0.48145466f) / 0.26862954f);
  // 224×303: top = round(39.5) = 40.
  cv::Mat taller(303, 224, CV_8UC3);
  for (int y = 0; y < taller.rows; ++y) taller.row(y).setTo(cv::Scalar::all(y));
  EXPECT_FLOAT_EQ(preprocess_224(taller)[0][0][0].item<float>(), (40.0f / 255.0f - 0.48145466f) / 0.26862954f);
}

TEST(Preprocess, Ceil16Size) {
  PatchMultipleSize s = patch_multiple_size(375, 500, 16);
  EXPECT_EQ(s.height, 384);
  EXPECT_EQ(s.width, 512);
  s = patch_multiple_size(32, 48, 16);
  EXPECT_EQ(s.height, 32);
  EXPECT_EQ(s.width, 48);
  s = patch_multiple_size(1, 17, 16);
  EXPECT_EQ(s.height, 16);
  EXPECT_EQ(s.width, 32);
  // Under the cap: unchanged.
  s = patch_multiple_size(375, 500, 16, 768);
  EXPECT_EQ(s.height, 384);
  EXPECT_EQ(s.width, 512);
  // Over the cap: 24×32 = 768 patches > 300. Scaling so the height spans 15
  // patches gives 15 × ceil(500·15/375 = 20) = 300; 16 rows would need 22 columns.
  s = patch_multiple_size(375, 500, 16, 300);
  EXPECT_EQ(s.height, 15 * 16);
  EXPECT_EQ(s.width, 20 * 16);
  // A 2000×3000 image capped at 1000 patches.
  s = patch_multiple_size(2000, 3000, 16, 1000);
  EXPECT_LE((s.height / 16) * (s.width / 16), 1000);
  EXPECT_GE((s.height / 16) * (s.width / 16), 900);
  EXPECT_NEAR(static_cast<double>(s.width) / s.height, 1.5, 0.1);
  // Extreme aspect ratio and a tiny cap still give a valid grid.
  s = patch_multiple_size(16, 1600, 16, 50);
  EXPECT_EQ(s.height, 16);
  EXPECT_EQ(s.width, 50 * 16);
  s = patch_multiple_size(100, 100, 16, 1);
  EXPECT_EQ(s.height, 16);
  EXPECT_EQ(s.width, 16);
  EXPECT_THROW(patch_multiple_size(0, 10, 16), Error);
  EXPECT_THROW(patch_multiple_size(10, 10, 0), Error);
  // Other patches round the same way (issue 26 item 7: /32 and /14 models).
  s = patch_multiple_size(375, 500, 32);
  EXPECT_EQ(s.height, 384);
  EXPECT_EQ(s.width, 512);
  s = patch_multiple_size(375, 500, 14);
  EXPECT_EQ(s.height, 27 * 14);
  EXPECT_EQ(s.width, 36 * 14);
  s = patch_multiple_size(375, 500, 14, 300);  // cap: 15 × 20 patches of 14 px
  EXPECT_EQ(s.height, 15 * 14);
  EXPECT_EQ(s.width, 20 * 14);
}

// ---- Pillow bicubic -------------------------------------------------------------

TEST(PilResize, IdentitySizeKeepsPixels) {
  cv::Mat m(7, 5, CV_8UC3);
  cv::randu(m, 0, 256);
  const cv::Mat r = pil_bicubic_resize(m, 5, 7);
  ASSERT_EQ(r.size(), m.size());
  EXPECT_EQ(cv::norm(r, m, cv::NORM_INF), 0.0);
}

TEST(PilResize, ConstantImageStaysConstant) {
  for (const cv::Size out : {cv::Size(37, 23), cv::Size(3, 2), cv::Size(11, 5), cv::Size(1, 1), cv::Size(64, 5)}) {
    cv::Mat m(5, 11, CV_8UC3, cv::Scalar(0, 137, 255));
    const cv::Mat r = pil_bicubic_resize(m, out.width, out.height);
    ASSERT_EQ(r.size(), out);
    cv::Mat want(out, CV_8UC3, cv::Scalar(0, 137, 255));
    EXPECT_EQ(cv::norm(r, want, cv::NORM_INF), 0.0) << out;
  }
}

TEST(PilResize, HandCheckedUpscale) {
  // 2 → 4 px wide (height unchanged: horizontal pass only). Centres 0.25,
  // 0.75, 1.25, 1.75; kernel taps (a = −0.5), normalised per pixel:
  //   0.25: b(0.25)=0.8671875, b(1.25)=−0.0703125 → 1.0882, −0.0882 → 91.18
  //   0.75: b(0.25)=0.8671875, b(0.75)= 0.2265625 → 0.7929,  0.2071 → 120.71
  // and mirrored for the right half (179.29, 208.82).
  cv::Mat m(1, 2, CV_8UC1);
  m.at<uchar>(0, 0) = 100;
  m.at<uchar>(0, 1) = 200;
  const cv::Mat r = pil_bicubic_resize(m, 4, 1);
  ASSERT_EQ(r.cols, 4);
  EXPECT_EQ(r.at<uchar>(0, 0), 91);
  EXPECT_EQ(r.at<uchar>(0, 1), 121);
  EXPECT_EQ(r.at<uchar>(0, 2), 179);
  EXPECT_EQ(r.at<uchar>(0, 3), 209);
  // The same along the vertical axis (vertical pass only).
  const cv::Mat t = pil_bicubic_resize(m.t(), 1, 4);
  ASSERT_EQ(t.rows, 4);
  EXPECT_EQ(t.at<uchar>(0, 0), 91);
  EXPECT_EQ(t.at<uchar>(3, 0), 209);
}

TEST(PilResize, HandCheckedDownscaleIsAntialiased) {
  // 4 → 1: scale 4 widens the support to 8; taps at (x − 1.5)/4 give
  // 0.7275, 0.9639, 0.9639, 0.7275 (sum 3.3828) → (10,20,30,50) ↦ 27.15.
  cv::Mat m = (cv::Mat_<uchar>(1, 4) << 10, 20, 30, 50);
  const cv::Mat r = pil_bicubic_resize(m, 1, 1);
  EXPECT_EQ(r.at<uchar>(0, 0), 27);
  // Overshoot is clipped: a step edge upscaled rings below 0 and above 255.
  cv::Mat step = (cv::Mat_<uchar>(1, 4) << 0, 0, 255, 255);
  const cv::Mat up = pil_bicubic_resize(step, 16, 1);
  EXPECT_EQ(up.at<uchar>(0, 0), 0);
  EXPECT_EQ(up.at<uchar>(0, 15), 255);
}

TEST(PilResize, RejectsBadInput) {
  EXPECT_THROW(pil_bicubic_resize(cv::Mat(), 4, 4), Error);
  EXPECT_THROW(pil_bicubic_resize(cv::Mat(2, 2, CV_8UC3), 0, 4), Error);
  EXPECT_THROW(pil_bicubic_resize(cv::Mat(2, 2, CV_32FC3), 4, 4), Error);
}

// ---- decoding -----------------------------------------------------------------------

TEST(ImageDecode, ReadsJpegAsRgb) {
  const cv::Mat rgb = decode_image_rgb(coco_image(kStems[0]));
  EXPECT_EQ(rgb.type(), CV_8UC3);
  const cv::Mat bgr = cv::imread(coco_image(kStems[0]), cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  ASSERT_EQ(rgb.size(), bgr.size());
  EXPECT_EQ(px(rgb, 10, 20)[0], bgr.at<cv::Vec3b>(10, 20)[2]);  // R first
  EXPECT_EQ(px(rgb, 10, 20)[2], bgr.at<cv::Vec3b>(10, 20)[0]);
}

TEST(ImageDecode, GreyAndGreyAlphaBecomeRgb) {
  const std::string dir = test::make_temp_dir("decode-grey");
  cv::Mat grey = (cv::Mat_<uchar>(1, 3) << 0, 77, 255);
  ASSERT_TRUE(cv::imwrite(dir + "/grey.png", grey));
  cv::Mat rgb = decode_image_rgb(dir + "/grey.png");
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(px(rgb, 0, 1), cv::Vec3b(77, 77, 77));
  EXPECT_EQ(px(rgb, 0, 2), cv::Vec3b(255, 255, 255));

  // Grey + alpha (PNG colour type 4): alpha dropped, not blended.
  write_bytes(dir + "/la.png", make_png(2, 1, 4, {{90, 0, 200, 128}}));
  rgb = decode_image_rgb(dir + "/la.png");
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(px(rgb, 0, 0), cv::Vec3b(90, 90, 90));
  EXPECT_EQ(px(rgb, 0, 1), cv::Vec3b(200, 200, 200));
}

TEST(ImageDecode, RgbaDropsAlpha) {
  const std::string dir = test::make_temp_dir("decode-rgba");
  cv::Mat bgra(2, 2, CV_8UC4, cv::Scalar(10, 20, 30, 0));  // fully transparent
  bgra.at<cv::Vec4b>(1, 1) = cv::Vec4b(200, 100, 50, 255);
  ASSERT_TRUE(cv::imwrite(dir + "/rgba.png", bgra));
  const cv::Mat rgb = decode_image_rgb(dir + "/rgba.png");
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(px(rgb, 0, 0), cv::Vec3b(30, 20, 10));
  EXPECT_EQ(px(rgb, 1, 1), cv::Vec3b(50, 100, 200));
}

TEST(ImageDecode, SixteenBitIsScaled) {
  const std::string dir = test::make_temp_dir("decode-16");
  // round(v / 257): 257·100 → 100, 65535 → 255, 257·5 + 128 → 5, 257·5 + 129 → 6.
  cv::Mat g16 = (cv::Mat_<uint16_t>(1, 5) << 0, 25700, 65535, 1413, 1414);
  ASSERT_TRUE(cv::imwrite(dir + "/g16.png", g16));
  cv::Mat rgb = decode_image_rgb(dir + "/g16.png");
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(px(rgb, 0, 0), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(px(rgb, 0, 1), cv::Vec3b(100, 100, 100));
  EXPECT_EQ(px(rgb, 0, 2), cv::Vec3b(255, 255, 255));
  EXPECT_EQ(px(rgb, 0, 3), cv::Vec3b(5, 5, 5));
  EXPECT_EQ(px(rgb, 0, 4), cv::Vec3b(6, 6, 6));

  cv::Mat c16(1, 1, CV_16UC3, cv::Scalar(257 * 3, 257 * 2, 65535));  // B, G, R
  ASSERT_TRUE(cv::imwrite(dir + "/c16.png", c16));
  rgb = decode_image_rgb(dir + "/c16.png");
  EXPECT_EQ(px(rgb, 0, 0), cv::Vec3b(255, 2, 3));
}

TEST(ImageDecode, PaletteIsExpanded) {
  const std::string dir = test::make_temp_dir("decode-palette");
  const std::vector<uchar> plte = {255, 0, 0, 0, 128, 0, 1, 2, 3};  // red, green, (1,2,3)
  write_bytes(dir + "/p.png", make_png(3, 1, 3, {{2, 0, 1}}, plte));
  cv::Mat rgb = decode_image_rgb(dir + "/p.png");
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(px(rgb, 0, 0), cv::Vec3b(1, 2, 3));
  EXPECT_EQ(px(rgb, 0, 1), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(px(rgb, 0, 2), cv::Vec3b(0, 128, 0));
  // With a transparency table OpenCV yields 4 channels; alpha is dropped.
  write_bytes(dir + "/pt.png", make_png(3, 1, 3, {{2, 0, 1}}, plte, {0, 255, 7}));
  rgb = decode_image_rgb(dir + "/pt.png");
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(px(rgb, 0, 1), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(px(rgb, 0, 0), cv::Vec3b(1, 2, 3));
}

TEST(ImageDecode, IgnoresExifOrientation) {
  const std::string dir = test::make_temp_dir("decode-exif");
  cv::Mat bgr(24, 40, CV_8UC3, cv::Scalar(0, 0, 0));
  bgr(cv::Rect(0, 0, 10, 24)).setTo(cv::Scalar(255, 255, 255));  // bright left band
  std::vector<uchar> jpg;
  ASSERT_TRUE(cv::imencode(".jpg", bgr, jpg));
  // APP1 "Exif\0\0" + little-endian TIFF header + one IFD entry:
  // tag 0x0112 (Orientation), type SHORT, count 1, value 6 (rotate 90° CW).
  const std::vector<uchar> tiff = {'I', 'I', 42, 0, 8, 0, 0, 0,          // header, IFD at 8
                                   1, 0,                                  // one entry
                                   0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0,
                                   0, 0, 0, 0};                           // no next IFD
  std::vector<uchar> app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), tiff.begin(), tiff.end());
  const size_t len = app1.size() - 2;
  app1[2] = static_cast<uchar>(len >> 8);
  app1[3] = static_cast<uchar>(len & 0xFF);
  jpg.insert(jpg.begin() + 2, app1.begin(), app1.end());  // right after SOI
  const std::string path = dir + "/rotated.jpg";
  write_bytes(path, jpg);

  // Sanity: the tag is valid, OpenCV's default decoding does rotate it.
  const cv::Mat rotated = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_EQ(rotated.size(), cv::Size(24, 40));
  // Ours must not (spec §3 step 1).
  const cv::Mat rgb = decode_image_rgb(path);
  EXPECT_EQ(rgb.size(), cv::Size(40, 24));
  EXPECT_GT(px(rgb, 12, 2)[0], 200);   // bright band still on the left
  EXPECT_LT(px(rgb, 12, 35)[0], 50);
  EXPECT_EQ(decode_image_rgb_bytes(jpg, "mem.jpg").size(), cv::Size(40, 24));
}

TEST(ImageDecode, BadFilesThrowNamingTheFile) {
  const std::string dir = test::make_temp_dir("decode-bad");
  expect_error_naming([&] { decode_image_rgb(dir + "/missing.jpg"); }, "missing.jpg");

  const std::vector<uchar> jpg = read_bytes(coco_image(kStems[0]));
  ASSERT_GT(jpg.size(), 1000u);
  // Cut in the middle of the entropy-coded data (libjpeg would pad with grey).
  write_bytes(dir + "/half.jpg", std::vector<uchar>(jpg.begin(), jpg.begin() + jpg.size() / 2));
  expect_error_naming([&] { decode_image_rgb(dir + "/half.jpg"); }, "half.jpg");
  // Cut inside the header.
  write_bytes(dir + "/head.jpg", std::vector<uchar>(jpg.begin(), jpg.begin() + 60));
  expect_error_naming([&] { decode_image_rgb(dir + "/head.jpg"); }, "head.jpg");
  // Not an image at all.
  write_bytes(dir + "/garbage.jpg", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  expect_error_naming([&] { decode_image_rgb(dir + "/garbage.jpg"); }, "garbage.jpg: cannot decode image");
  // Corrupt body behind a valid JPEG signature.
  std::vector<uchar> corrupt = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02};
  corrupt.resize(500, 0x5A);
  write_bytes(dir + "/corrupt.jpg", corrupt);
  expect_error_naming([&] { decode_image_rgb(dir + "/corrupt.jpg"); }, "corrupt.jpg");
  // Empty file, and bytes given directly.
  write_bytes(dir + "/empty.png", {});
  expect_error_naming([&] { decode_image_rgb(dir + "/empty.png"); }, "empty.png: empty file");
  expect_error_naming([&] { decode_image_rgb_bytes({1, 2, 3}, "blob.bin"); }, "blob.bin");
}

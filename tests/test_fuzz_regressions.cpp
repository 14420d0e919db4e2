// Inputs the fuzz harnesses (fuzz/, scripts/fuzz.sh, docs/fuzzing.md) found,
// embedded as the bytes the harness was given, plus the header-parser cases
// found while writing the harnesses. Each once crashed, tripped a sanitizer
// or let a non-clipes exception escape; each must now be a clipes::Error (or a
// correct result).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "clipes/data/coco_mask.h"
#include "clipes/data/dataset.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/text/bpe_tokenizer.h"
#include "test_support.h"
#include "clipes/model/safetensors_header.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// What fuzz/fuzz_coco_mask.cpp does with one input (kept in step with it):
// byte 0 mode, bytes 1-4 height/width (LE16 % 257), then the payload.
// Returns the RLE counts decoded or rasterised.
std::vector<uint32_t> replay_coco_mask(const std::string& input) {
  const auto* d = reinterpret_cast<const uint8_t*>(input.data());
  const int mode = d[0] % 4;
  const int h = (d[1] | (d[2] << 8)) % 257, w = (d[3] | (d[4] << 8)) % 257;
  const std::string payload = input.substr(5);
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  if (mode == 0) {
    const std::vector<uint32_t> counts = decode_rle_string(payload);
    decode_rle(counts, h, w);
    return counts;
  }
  if (mode == 1) {
    std::vector<uint32_t> counts(payload.size() / 4);
    if (!counts.empty()) std::memcpy(counts.data(), p, counts.size() * 4);
    decode_rle(counts, h, w);
    return counts;
  }
  std::vector<double> xy;
  if (mode == 2) {
    for (size_t i = 0; i + 1 < payload.size(); i += 2) xy.push_back(static_cast<int16_t>(p[i] | (p[i + 1] << 8)) / 8.0);
  } else {
    for (size_t i = 0; i + 8 <= payload.size(); i += 8) {
      double v;
      std::memcpy(&v, p + i, 8);
      xy.push_back(v);
    }
  }
  if (xy.size() % 2) xy.pop_back();
  rasterize_polygon(xy, h, w);
  return rle_from_polygon(xy, h, w);
}

// fuzz_coco_mask, first seconds: a one-point polygon (5x7 mask, point (1, 1)).
// Its only edge has length 0; frPoly's slope 0/0 = NaN was cast to int
// (UBSan: "-nan is outside the range of representable values of type 'int'").
// The same zero-length edge occurs in real COCO polygons that repeat a point.
TEST(FuzzRegressions, CocoOnePointPolygon) {
  const std::vector<uint32_t> counts = replay_coco_mask(bytes({0x02, 0x05, 0x00, 0x07, 0x00, 0x08, 0x00, 0x08, 0x00}));
  EXPECT_EQ(counts, (std::vector<uint32_t>{35}));  // nothing inside, as pycocotools draws it
  // A repeated vertex changes nothing.
  EXPECT_EQ(rle_from_polygon({1, 1, 1, 1, 5, 1, 5, 5, 1, 5}, 8, 8), rle_from_polygon({1, 1, 5, 1, 5, 5, 1, 5}, 8, 8));
}

TEST(FuzzRegressions, CocoPolygonCoordinatesMustBeFiniteAndNear) {
  const double nan = std::nan("");
  for (const std::vector<double>& xy : std::vector<std::vector<double>>{
           {nan, 1, 2, 2, 3, 1}, {1, 1, 1e300, 2, 3, 1}, {1, 1, -INFINITY, 2, 3, 1}, {1, 1, 2e6, 2, 3, 1}}) {
    EXPECT_THROW(rle_from_polygon(xy, 10, 10), Error);
  }
  // Long zig-zags between far (but allowed) coordinates: refused, not gigabytes.
  std::vector<double> zigzag;
  for (int i = 0; i < 20; ++i) zigzag.insert(zigzag.end(), {-9e5, 0, 9e5, 1});
  EXPECT_THROW(rle_from_polygon(zigzag, 10, 10), Error);
  EXPECT_THROW(rle_from_polygon({1, 1, 2, 2, 3, 1}, -1, 10), Error);
  EXPECT_THROW(decode_rle({1}, 10, -3), Error);
  EXPECT_THROW(decode_rle({1}, 70000, 70000), Error);  // more pixels than 32-bit counts address
  EXPECT_EQ(rle_from_polygon({1, 1, 2, 2, 3, 1}, 0, 10), (std::vector<uint32_t>{0}));
}

// fuzz_coco_mask: a 554x0 mask (found when sizes were taken % 641: width
// 5128 % 641 = 0; replayed % 257 it is 195x0). decode_rle returned a 0x0
// cv::Mat (cv::transpose of an empty matrix), not 554x0.
TEST(FuzzRegressions, CocoEmptyMaskKeepsItsShape) {
  replay_coco_mask(bytes({0x02, 0x6e, 0xac, 0x08, 0x14, 0x08, 0x3d, 0x0d, 0x8a, 0x08, 0x6a, 0xb8, 0x43, 0x08}));
  const cv::Mat mask = rasterize_polygon({1, 1, 2, 2, 3, 1}, 554, 0);
  EXPECT_EQ(mask.rows, 554);
  EXPECT_EQ(mask.cols, 0);
  EXPECT_EQ(decode_rle({0}, 0, 7).cols, 7);
}

// A compressed RLE value of 12 continuation characters and a 13th: the
// decoder shifted 31 << 60 in int64 (UBSan: "left shift of 31 by 60 places
// cannot be represented") and sign-extended with a shift by 65. Written by
// hand from reading decode_rle_string, confirmed with the fuzz_coco_mask
// binary (mode 0, 4x4).
TEST(FuzzRegressions, CocoRleStringOverlongValue) {
  EXPECT_THROW(replay_coco_mask(bytes({0x00, 0x04, 0x00, 0x04, 0x00}) + "ooooooooooooO"), Error);
  EXPECT_THROW(decode_rle_string("oooooooO"), Error);  // 8 characters: more than any uint32 difference needs
  // The extremes still round-trip: 0 → 2^32-1 → 0 differences need 7 characters.
  const std::vector<uint32_t> extremes = {0, 4294967295u, 0, 4294967295u, 0, 1};
  EXPECT_EQ(decode_rle_string(encode_rle_string(extremes)), extremes);
  EXPECT_THROW(decode_rle_string("O"), Error);  // -1: a negative run
}

// fuzz_labels (~5 min): {"b1": ""} — a JSON string value was added as a
// label even when empty, so the image got the label "".
TEST(FuzzRegressions, LabelsJsonEmptyStringIsNoLabel) {
  const std::string input = "\x01{\".jp\": [\"cat\", \"dog\"], \"1\": \"bird\", \"b1\": \"\", \"c\": []}";
  const auto entries = parse_labels_text(input.substr(1), "labels.json");  // byte 0: the harness's mode
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[2].image, "b1");
  EXPECT_TRUE(entries[2].labels.empty());
  EXPECT_TRUE(parse_labels_text("{\"x\": \"  \"}", "l.json")[0].labels.empty());
}

// ---- found while writing fuzz_npy: the old regex-based read_npy ----------------

std::string npy(const std::string& dict, size_t data_bytes = 0, int major = 1) {
  std::string header = dict;
  header.append((64 - (header.size() + 11) % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  if (major == 1) {
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
  } else {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  }
  return out + header + std::string(data_bytes, '\0');
}

TEST(FuzzRegressions, NpyHeaderShapes) {
  const std::string file = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
  const NpyHeader ok = parse_npy_header(file, "a.npy");
  EXPECT_EQ(ok.descr, "<f4");
  EXPECT_EQ(ok.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ok.data_bytes, 24u);
  EXPECT_EQ(ok.data_offset, 128u);  // 10-byte preamble + header padded to 64
  EXPECT_EQ(ok.data_offset + ok.data_bytes, file.size());
  EXPECT_EQ(parse_npy_header(npy("{'descr': '|u1', 'fortran_order': False, 'shape': (), }", 1, 2), "b.npy").shape,
            std::vector<int64_t>{});
  EXPECT_EQ(parse_npy_header(npy("{\"shape\": (3L,), \"descr\": \"<i8\"}", 24, 3), "c.npy").shape,
            std::vector<int64_t>{3});
  for (const std::string& dict : {
           // A minus sign was skipped by the \d+ scan: (3, -4) read as (3, 4).
           std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }"),
           // std::stoll threw std::out_of_range, not clipes::Error.
           std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"),
           // Product overflows 64 bits: torch::empty was asked for it.
           std::string("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }"),
           // Zero elements but strides that overflow.
           std::string("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4), }"),
           std::string("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }"),
           std::string("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }"),
           std::string("{'descr': '<f4', 'shape': (1,), 'shape': (1,)}"),
           std::string("{'descr': '<f4', 'fortran_order': False}"),
           std::string("{'descr': '<f4', 'shape': (1,), 'extra': 1}"),
           std::string("{'descr': '<f4', 'shape': (1,)} trailing"),
           std::string("{'descr': '") + std::string(60000, 'x') + "', 'shape': (1,)}",
       }) {
    EXPECT_THROW(parse_npy_header(npy(dict, 64), "bad.npy"), Error) << dict.substr(0, 80);
  }
  EXPECT_THROW(parse_npy_header(npy("{'descr': '<f4', 'shape': (2, 3)}", 23), "short.npy"), Error);
  std::string truncated = npy("{'descr': '<f4', 'shape': (1,)}", 4, 2);
  truncated[8] = '\xff';  // header length beyond the file
  EXPECT_THROW(parse_npy_header(truncated, "t.npy"), Error);
}

// ---- found while writing fuzz_safetensors --------------------------------------

std::string safetensors(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + std::string(data_bytes, '\0');
}

TEST(FuzzRegressions, SafetensorsHeaderEntries) {
  const auto entries = parse_safetensors_header(
      safetensors(R"({"b":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"x":"y"},)"
                  R"("a":{"dtype":"BOOL","shape":[0,3],"data_offsets":[16,16]}})", 16),
      "m.safetensors");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "a");
  EXPECT_EQ(entries[1].name, "b");
  EXPECT_EQ(entries[1].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(entries[1].end, 16u);
  for (const std::string& json : {
           // torch::empty threw c10::Error (not clipes::Error) for a negative size.
           std::string(R"({"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})"),
           // 2^61 * 8 bytes wraps to 0 in 64 bits; offsets [0, 0] matched the wrapped size.
           std::string(R"({"t":{"dtype":"U8","shape":[2305843009213693952,8],"data_offsets":[0,0]}})"),
           std::string(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})"),  // was truncated to 2
           std::string(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})"),
           std::string(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"),   // outside the data
           std::string(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})"),
           std::string(R"({"t":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})"),
           std::string(R"({"t":[1,2]})"),
           std::string(R"({"t":{"dtype":"F32","shape":[1]}})"),
       }) {
    EXPECT_THROW(parse_safetensors_header(safetensors(json, 8), "bad.safetensors"), Error) << json;
  }
  EXPECT_THROW(parse_safetensors_header(safetensors("{\"a\":", 0), "j.safetensors"), Error);
  EXPECT_FALSE(looks_like_safetensors(safetensors("[]", 0)));
}

// ---- read_label_png_bytes: the side limit (fuzz_label_png skips big IHDRs) ----

TEST(FuzzRegressions, LabelPngSideLimit) {
  cv::Mat ids(1, 1, CV_8UC1, cv::Scalar(3));
  std::string png = encode_indexed_png(ids, voc_palette());
  EXPECT_EQ(read_label_png_bytes(png, "ok.png").at<uint8_t>(0, 0), 3);
  // IHDR data is bytes 16..28, its CRC 29..32: claim 40000 x 1 and fix the CRC.
  const uint32_t width = 40000;
  for (int i = 0; i < 4; ++i) png[16 + i] = static_cast<char>((width >> (24 - 8 * i)) & 0xff);
  const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17));
  for (int i = 0; i < 4; ++i) png[29 + i] = static_cast<char>((crc >> (24 - 8 * i)) & 0xff);
  try {
    read_label_png_bytes(png, "wide.png");
    FAIL() << "a 40000 px wide label PNG was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wide.png: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace clipes

namespace clipes {
namespace {

// Found by the fuzz_bpe harness's author while reading: a byte that is not
// UTF-8 swallowed what followed it ("caf\xe9 au lait" → "caf頡u lait"), and a
// surrogate made the whole text encode to no tokens, silently.
TEST(FuzzRegressions, TokenizerTreatsBytesThatAreNotUtf8AsReplacementCharacters) {
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(test::vocab_path());
  EXPECT_EQ(tokenizer.encode("caf\xe9 au lait"), tokenizer.encode("caf\xef\xbf\xbd au lait"));
  EXPECT_EQ(tokenizer.encode("caf\xe9 au lait").size() >= 3, true);
  const std::string with_surrogate = "a dog \xed\xa0\x80 on grass";
  EXPECT_FALSE(tokenizer.encode(with_surrogate).empty());
  EXPECT_EQ(tokenizer.encode(with_surrogate), tokenizer.encode("a dog \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd on grass"));
}

}  // namespace
}  // namespace clipes

// COCO rasterisation against hand-computed masks, and the real coco-tiny annotations.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <map>

#include "clipes/data/coco_mask.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

std::string coco_tiny_json() { return test::shared("data/coco-tiny/annotations/instances_val2017.json"); }

cv::Mat from_rows(const std::vector<std::vector<int>>& rows) {
  cv::Mat m(static_cast<int>(rows.size()), static_cast<int>(rows[0].size()), CV_8UC1);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) m.at<uint8_t>(r, c) = static_cast<uint8_t>(rows[r][c]);
  return m;
}

bool same(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::countNonZero(a != b) == 0;
}

TEST(CocoMask, SquarePolygonCoversTheHalfOpenSquare) {
  // Worked by hand through frPoly: the ×5 boundary of the square (1,1)-(5,5)
  // crosses the centre lines of columns 1..4 at rows 1 (top) and 5 (bottom),
  // so rows 1..4 of columns 1..4 are inside.
  const cv::Mat mask = rasterize_polygon({1, 1, 5, 1, 5, 5, 1, 5}, 8, 8);
  cv::Mat expected(8, 8, CV_8UC1, cv::Scalar(0));
  expected(cv::Rect(1, 1, 4, 4)).setTo(1);
  EXPECT_TRUE(same(mask, expected)) << mask;
  // The same square walked the other way round gives the same pixels.
  EXPECT_TRUE(same(rasterize_polygon({1, 1, 1, 5, 5, 5, 5, 1}, 8, 8), expected));
  // Column-major counts: 9 zeros (column 0 and row 0 of column 1), then 4 ones, 4 zeros, ...
  const std::vector<uint32_t> counts = rle_from_polygon({1, 1, 5, 1, 5, 5, 1, 5}, 8, 8);
  EXPECT_EQ(counts, (std::vector<uint32_t>{9, 4, 4, 4, 4, 4, 4, 4, 27}));
}

TEST(CocoMask, PolygonClippedAtTheImageBorder) {
  // A square reaching past the right/bottom edges: only columns 2..3 exist
  // (x ≤ w−1) and rows are clamped to the image.
  const cv::Mat mask = rasterize_polygon({2, 2, 9, 2, 9, 9, 2, 9}, 4, 4);
  EXPECT_TRUE(same(mask, from_rows({{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 1, 1}, {0, 0, 1, 1}}))) << mask;
}

TEST(CocoMask, UncompressedRleIsColumnMajor) {
  EXPECT_TRUE(same(decode_rle({1, 2, 1}, 2, 2), from_rows({{0, 1}, {1, 0}})));
  // 2 rows × 3 columns: 0 zeros, then the first column, a zero, then a one.
  EXPECT_TRUE(same(decode_rle({0, 2, 1, 1, 2}, 2, 3), from_rows({{1, 0, 0}, {1, 1, 0}})));
  // Short counts leave the rest 0; long counts are an error.
  EXPECT_TRUE(same(decode_rle({1, 1}, 2, 2), from_rows({{0, 0}, {1, 0}})));
  EXPECT_THROW(decode_rle({3, 3}, 2, 2), Error);
}

TEST(CocoMask, CompressedRleStringsEncodedByHand) {
  // "3521": 3, 5, 2, then 6 stored as 6 − 5 = 1 (deltas start at the 4th count).
  EXPECT_EQ(decode_rle_string("3521"), (std::vector<uint32_t>{3, 5, 2, 6}));
  // 40 = 8 + 1·32 → 'X' (8 | 0x20, +48) then '1'; the 4th count 2 is stored as
  // 2 − 40 = −38 → 'j' (26 | 0x20) then 'N' (30: sign bit set, value −1).
  EXPECT_EQ(decode_rle_string("0X13jN"), (std::vector<uint32_t>{0, 40, 3, 2}));
  EXPECT_EQ(encode_rle_string({0, 40, 3, 2}), "0X13jN");
  EXPECT_EQ(encode_rle_string({3, 5, 2, 6}), "3521");
  const cv::Mat mask = decode_rle(decode_rle_string("0X13jN"), 5, 9);
  EXPECT_EQ(cv::countNonZero(mask), 42);
  EXPECT_EQ(mask.at<uint8_t>(4, 7), 1);  // position 39 = column 7, row 4: last of the 40
  EXPECT_EQ(mask.at<uint8_t>(0, 8), 0);  // positions 40..42 are zeros
  EXPECT_EQ(mask.at<uint8_t>(3, 8), 1);
  EXPECT_THROW(decode_rle_string("0X"), Error);   // ends inside a value
  EXPECT_THROW(decode_rle_string("3~"), Error);   // '~' is outside 48..111
}

TEST(CocoMask, EncodeDecodeRoundTrip) {
  cv::Mat mask(7, 5, CV_8UC1);
  cv::randu(mask, 0, 2);
  const auto counts = encode_rle(mask);
  EXPECT_TRUE(same(decode_rle(counts, 7, 5), mask));
  EXPECT_EQ(decode_rle_string(encode_rle_string(counts)), counts);
}

TEST(CocoGroundTruth, LoadsCocoTiny) {
  const CocoGroundTruth gt = CocoGroundTruth::load(coco_tiny_json());
  EXPECT_EQ(gt.images().size(), 80u);
  EXPECT_EQ(gt.annotations().size(), 815u);
  ASSERT_EQ(gt.categories().size(), 80u);
  EXPECT_EQ(gt.categories().front().name, "person");
  EXPECT_EQ(gt.categories().back().id, 90);
  EXPECT_EQ(gt.category_index(90), 79);
  int crowd = 0;
  for (const auto& a : gt.annotations()) crowd += a.crowd;
  EXPECT_EQ(crowd, 11);
}

TEST(CocoGroundTruth, CrowdRleMasksMatchTheirRecordedBoxes) {
  // COCO's crowd "bbox" was computed from the RLE by the original toolbox as
  // (first column, first row, last − first, last − first): the decoded mask's
  // tight box starts there and is one pixel wider and taller. ("area" of crowd
  // regions is not their pixel count in COCO 2017, so it cannot be used.)
  const auto root = nlohmann::json::parse(read_file(coco_tiny_json()));
  std::map<int64_t, nlohmann::json> by_id;
  for (const auto& a : root["annotations"]) by_id[a["id"].get<int64_t>()] = a;
  const CocoGroundTruth gt = CocoGroundTruth::load(coco_tiny_json());
  double polygon_pixels = 0, polygon_area = 0;
  int rle = 0;
  for (const auto& a : gt.annotations()) {
    const cv::Mat mask = gt.annotation_mask(a);
    const auto& json = by_id[a.id];
    if (a.is_rle) {
      ++rle;
      const auto counts = json["segmentation"]["counts"].get<std::vector<int>>();
      int ones = 0;
      for (size_t i = 1; i < counts.size(); i += 2) ones += counts[i];
      EXPECT_EQ(cv::countNonZero(mask), ones) << "annotation " << a.id;
      const cv::Rect box = cv::boundingRect(mask);
      const auto bbox = json["bbox"].get<std::vector<double>>();
      EXPECT_EQ(box, cv::Rect(static_cast<int>(bbox[0]), static_cast<int>(bbox[1]), static_cast<int>(bbox[2]) + 1,
                              static_cast<int>(bbox[3]) + 1))
          << "annotation " << a.id;
    } else {
      polygon_pixels += cv::countNonZero(mask);
      polygon_area += json["area"].get<double>();
      // A polygon's pixels stay within its (float) box, widened to whole pixels.
      const auto bbox = json["bbox"].get<std::vector<double>>();
      const cv::Rect box = cv::boundingRect(mask);
      if (box.area() == 0) continue;
      EXPECT_GE(box.x, std::floor(bbox[0]) - 1) << a.id;
      EXPECT_GE(box.y, std::floor(bbox[1]) - 1) << a.id;
      EXPECT_LE(box.x + box.width, std::ceil(bbox[0] + bbox[2]) + 1) << a.id;
      EXPECT_LE(box.y + box.height, std::ceil(bbox[1] + bbox[3]) + 1) << a.id;
    }
  }
  EXPECT_EQ(rle, 11);
  // Polygon "area" is geometric (shoelace), so pixels only agree in total.
  EXPECT_NEAR(polygon_pixels / polygon_area, 1.0, 0.03);
}

TEST(CocoGroundTruth, CrowdRegionsAre255AndPaintedLast) {
  const CocoGroundTruth gt = CocoGroundTruth::load(coco_tiny_json());
  const CocoAnnotation* crowd = nullptr;
  for (const auto& a : gt.annotations())
    if (a.crowd) { crowd = &a; break; }
  ASSERT_NE(crowd, nullptr);
  const cv::Mat semantic = gt.semantic_mask(crowd->image_id);
  cv::Mat crowd_union(semantic.size(), CV_8UC1, cv::Scalar(0));
  for (size_t i : gt.annotations_of(crowd->image_id))
    if (gt.annotations()[i].crowd) crowd_union |= gt.annotation_mask(gt.annotations()[i]);
  EXPECT_GT(cv::countNonZero(crowd_union), 0);
  EXPECT_EQ(cv::countNonZero(semantic == 255), cv::countNonZero(crowd_union));
  // Outside crowd regions, every value is background or a consecutive class id (1..80).
  double max_value = 0;
  cv::minMaxLoc(semantic, nullptr, &max_value, nullptr, nullptr, semantic != 255);
  EXPECT_LE(max_value, 80);
  EXPECT_GT(max_value, 0);

  // With dataset ids a non-crowd annotation's pixels hold its category id.
  const cv::Mat with_ids = gt.semantic_mask(crowd->image_id, true);
  EXPECT_EQ(cv::countNonZero(with_ids == 255), cv::countNonZero(crowd_union));
  const auto& indices = gt.annotations_of(crowd->image_id);
  for (auto it = indices.rbegin(); it != indices.rend(); ++it) {
    const auto& a = gt.annotations()[*it];
    if (a.crowd) continue;
    // The last painted annotation keeps all its pixels outside crowd regions.
    const cv::Mat own = (gt.annotation_mask(a) > 0) & (crowd_union == 0);
    EXPECT_GT(cv::countNonZero(own), 0);
    EXPECT_EQ(cv::countNonZero((with_ids != static_cast<double>(a.category_id)) & own), 0);
    break;
  }
}

TEST(CocoGroundTruth, BadFilesNameTheFile) {
  const std::string dir = test::make_temp_dir("coco-bad");
  const std::string path = dir + "/instances_x.json";
  write_file_atomic(path, R"({"images":[{"id":1,"file_name":"a.jpg","height":2,"width":2}],"categories":[{"id":1,"name":"cat"}],
    "annotations":[{"id":5,"image_id":1,"category_id":1,"iscrowd":1,"segmentation":{"size":[2,2],"counts":[3,3]}}]})");
  try {
    CocoGroundTruth::load(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("annotation 5"), std::string::npos) << e.what();
  }
  write_file_atomic(path, "{\"images\": [");
  EXPECT_THROW(CocoGroundTruth::load(path), Error);
}

}  // namespace
}  // namespace clipes

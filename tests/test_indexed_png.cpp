#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <fstream>

#include "clipes/io/indexed_png.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

TEST(IndexedPng, VocPaletteMatchesDevkit) {
  const auto& p = voc_palette();
  ASSERT_EQ(p.size(), 256u);
  EXPECT_EQ(p[0], (Rgb{0, 0, 0}));
  EXPECT_EQ(p[1], (Rgb{128, 0, 0}));
  EXPECT_EQ(p[15], (Rgb{192, 128, 128}));  // person
  EXPECT_EQ(p[255], (Rgb{224, 224, 192}));  // ignore
}

TEST(IndexedPng, RoundTripKeepsIdsAndViewersSeeColours) {
  const std::string dir = test::make_temp_dir("ipng");
  cv::Mat ids(7, 9, CV_8UC1);
  for (int y = 0; y < ids.rows; ++y)
    for (int x = 0; x < ids.cols; ++x) ids.at<uint8_t>(y, x) = static_cast<uint8_t>((y * 9 + x) % 21);
  ids.at<uint8_t>(3, 3) = 255;
  write_indexed_png(dir + "/m.png", ids);
  const cv::Mat back = read_label_png(dir + "/m.png");
  EXPECT_EQ(cv::countNonZero(back != ids), 0);
  // A viewer (OpenCV expands palettes to BGR) sees the VOC colour.
  const cv::Mat bgr = cv::imread(dir + "/m.png", cv::IMREAD_COLOR);
  const cv::Vec3b c = bgr.at<cv::Vec3b>(0, 1);  // id 1 -> (128,0,0) RGB
  EXPECT_EQ(c[2], 128);
  EXPECT_EQ(c[1], 0);
}

TEST(IndexedPng, ReadsGreyLabelPngs) {
  const std::string dir = test::make_temp_dir("ipng-grey");
  cv::Mat ids(4, 4, CV_8UC1, cv::Scalar(7));
  cv::imwrite(dir + "/g.png", ids);
  EXPECT_EQ(cv::countNonZero(read_label_png(dir + "/g.png") != ids), 0);
}

TEST(IndexedPng, BadFilesNameTheFile) {
  const std::string dir = test::make_temp_dir("ipng-bad");
  cv::Mat rgb(4, 4, CV_8UC3, cv::Scalar(1, 2, 3));
  cv::imwrite(dir + "/rgb.png", rgb);
  EXPECT_THROW(read_label_png(dir + "/rgb.png"), Error);
  cv::Mat ids(50, 50, CV_8UC1, cv::Scalar(3));
  const std::string bytes = encode_indexed_png(ids, voc_palette());
  write_file_atomic(dir + "/cut.png", bytes.substr(0, bytes.size() / 2));
  try {
    read_label_png(dir + "/cut.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_label_png(dir + "/missing.png"), Error);
}

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/io/contact_sheet.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {

cv::Mat gradient_rgb(int h, int w) {
  cv::Mat rgb(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 255 / w, y * 255 / h, 128);
  return rgb;
}

// A blob per label, peaking at different places.
at::Tensor blob_cams(int64_t k, int64_t h, int64_t w) {
  const at::Tensor ys = torch::arange(h, torch::kFloat).view({h, 1}) / h;
  const at::Tensor xs = torch::arange(w, torch::kFloat).view({1, w}) / w;
  std::vector<at::Tensor> cams;
  for (int64_t i = 0; i < k; ++i) {
    const double cx = (i + 1.0) / (k + 1.0);
    cams.push_back(torch::exp(-((xs - cx).pow(2) + (ys - 0.5).pow(2)) / 0.02));
  }
  return torch::stack(cams);
}

}  // namespace

TEST(ContactSheet, SizeFollowsTheGeometry) {
  const int h = 300, w = 400;
  cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(50, 50, 100, 100)) = 12;
  mask(cv::Rect(250, 50, 100, 100)) = 8;
  mask(cv::Rect(0, 290, 400, 10)) = 255;
  std::vector<std::string> names(21, "");
  names[0] = "background", names[8] = "cat", names[12] = "dog";
  const at::Tensor cams = blob_cams(2, h, w);

  const cv::Mat sheet = make_contact_sheet(gradient_rgb(h, w), {"dog", "cat"}, cams, cams.sqrt(), mask, names,
                                           voc_palette());
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 2, 4);  // ids 0, 8, 12, 255
  EXPECT_EQ(sheet.type(), CV_8UC3);
  EXPECT_EQ(sheet.cols, g.width);
  EXPECT_EQ(sheet.rows, g.height);
  // Small images are not scaled: two tiles side by side, three rows of tiles.
  EXPECT_EQ(g.tile_width, w);
  EXPECT_EQ(g.tile_height, h);
  EXPECT_GT(sheet.cols, 2 * w);
  EXPECT_GT(sheet.rows, 3 * h);
  // One more label adds exactly one row of tiles.
  const cv::Mat sheet3 = make_contact_sheet(gradient_rgb(h, w), {"dog", "cat", "x"}, blob_cams(3, h, w),
                                            blob_cams(3, h, w), mask, names, voc_palette());
  EXPECT_EQ(sheet3.cols, sheet.cols);
  EXPECT_GT(sheet3.rows - sheet.rows, h);
  EXPECT_LT(sheet3.rows - sheet.rows, h + 50);
  // The sheet is not blank: the tiles carry the image.
  EXPECT_GT(cv::mean(sheet)[0] + cv::mean(sheet)[1] + cv::mean(sheet)[2], 100);
}

TEST(ContactSheet, WideImagesAreScaledToStayUnder2000Pixels) {
  const int h = 500, w = 3000;
  const cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  const cv::Mat sheet = make_contact_sheet(gradient_rgb(h, w), {"a"}, blob_cams(1, h, w), blob_cams(1, h, w), mask,
                                           {"background"}, voc_palette());
  EXPECT_LE(sheet.cols, 2000);
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 1, 1);
  EXPECT_EQ(sheet.cols, g.width);
  EXPECT_EQ(sheet.rows, g.height);
  EXPECT_NEAR(static_cast<double>(g.tile_height) / g.tile_width, static_cast<double>(h) / w, 0.01);
}

TEST(ContactSheet, CamsOfAnotherSizeAreResizedButTheLabelCountMustMatch) {
  const cv::Mat mask(60, 80, CV_8UC1, cv::Scalar(0));
  EXPECT_NO_THROW(make_contact_sheet(gradient_rgb(120, 160), {"a"}, blob_cams(1, 30, 40), blob_cams(1, 30, 40), mask,
                                     {"background"}, voc_palette()));
  EXPECT_THROW(make_contact_sheet(gradient_rgb(120, 160), {"a", "b"}, blob_cams(1, 120, 160), blob_cams(2, 120, 160),
                                  mask, {"background"}, voc_palette()),
               Error);
}

TEST(VisualizeCommand, WritesASheetPerImageFromAGenerateFolder) {
  namespace fs = std::filesystem;
  const std::string dir = test::make_temp_dir("visualize");
  const std::string images = dir + "/images", out = dir + "/out";
  fs::create_directories(images);
  // Two real images, copied under their stems (the test never writes into ../shared).
  const std::vector<std::string> stems = {"000000005001", "000000020992"};
  std::vector<cv::Size> sizes;
  for (const auto& stem : stems) {
    const std::string src = test::shared("data/coco-tiny/val2017/" + stem + ".jpg");
    write_file_atomic(images + "/" + stem + ".jpg", read_file(src));
    const cv::Mat rgb = decode_image_rgb(src);
    sizes.push_back(rgb.size());
    cv::Mat mask(rgb.size(), CV_8UC1, cv::Scalar(0));
    mask(cv::Rect(10, 10, rgb.cols / 3, rgb.rows / 3)) = 15;  // person
    mask(cv::Rect(rgb.cols / 2, rgb.rows / 2, rgb.cols / 4, rgb.rows / 4)) = 255;
    write_indexed_png(out + "/masks/" + stem + ".png", mask);
    const at::Tensor cams = blob_cams(2, rgb.rows, rgb.cols);
    write_npy(out + "/cams/" + stem + "_cam.npy", cams.to(torch::kHalf));
    write_npy(out + "/cams/" + stem + "_refined.npy", cams.pow(2).to(torch::kHalf));
    write_npy(out + "/cams/" + stem + "_keys.npy", torch::tensor({14, 11}, torch::kLong));  // person, dog
  }
  // A class file in the prompts/<name>.json shape.
  write_file_atomic(dir + "/voc-lite.json", R"({"name": "voc-lite", "classes": [)"
                                            R"({"name": "aeroplane", "id": 1}, {"name": "bicycle", "id": 2},)"
                                            R"({"name": "bird", "id": 3}, {"name": "boat", "id": 4},)"
                                            R"({"name": "bottle", "id": 5}, {"name": "bus", "id": 6},)"
                                            R"({"name": "car", "id": 7}, {"name": "cat", "id": 8},)"
                                            R"({"name": "chair", "id": 9}, {"name": "cow", "id": 10},)"
                                            R"({"name": "diningtable", "id": 11}, {"name": "dog", "id": 12},)"
                                            R"({"name": "horse", "id": 13}, {"name": "motorbike", "id": 14},)"
                                            R"({"name": "person", "id": 15}]})");
  std::string output;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " visualize --out '" + out + "' --images '" + images +
                                  "' --classes '" + dir + "/voc-lite.json'",
                              &output),
            0)
      << output;
  for (size_t i = 0; i < stems.size(); ++i) {
    const std::string sheet_path = out + "/vis/" + stems[i] + ".jpg";
    EXPECT_NE(output.find(sheet_path), std::string::npos) << output;
    const cv::Mat sheet = cv::imread(sheet_path, cv::IMREAD_COLOR);
    ASSERT_FALSE(sheet.empty()) << sheet_path;
    // ids present: 0, 15, 255 → three legend entries; two labels.
    const ContactSheetGeometry g = contact_sheet_geometry(sizes[i].height, sizes[i].width, 2, 3);
    EXPECT_EQ(sheet.cols, g.width);
    EXPECT_EQ(sheet.rows, g.height);
    EXPECT_LE(sheet.cols, 2000);
  }

  // --ids and --limit select; a missing image is one error and exit code 2 when nothing worked.
  fs::remove_all(out + "/vis");
  ASSERT_EQ(test::run_command(test::clipes_binary() + " visualize --out '" + out + "' --images '" + images +
                                  "' --limit 1",
                              &output),
            0)
      << output;
  EXPECT_TRUE(fs::exists(out + "/vis/" + stems[0] + ".jpg"));
  EXPECT_FALSE(fs::exists(out + "/vis/" + stems[1] + ".jpg"));
  EXPECT_EQ(test::run_command(test::clipes_binary() + " visualize --out '" + out + "' --images '" + images +
                                  "' --ids 000000009999",
                              &output),
            2);
  EXPECT_NE(output.find("000000009999"), std::string::npos) << output;
}

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
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

ContactSheetInput sheet_input(const cv::Mat& rgb, const std::vector<std::string>& labels, const at::Tensor& cams,
                              const at::Tensor& refined, const cv::Mat& mask, const std::vector<std::string>& names) {
  ContactSheetInput in;
  in.rgb = rgb;
  in.label_names = labels;
  in.cams = cams;
  in.refined = refined;
  in.mask_ids = mask;
  in.class_name_by_id = names;
  in.palette = voc_palette();
  return in;
}

// The panel rectangle of tile (row, column), as make_contact_sheet lays them out.
cv::Rect tile_rect(const ContactSheetGeometry& g, int row, int column) {
  return {8 + column * (g.tile_width + 8), 8 + row * (26 + g.tile_height + 8) + 26, g.tile_width, g.tile_height};
}

TEST(ContactSheet, SizeFollowsTheGeometry) {
  const int h = 300, w = 400;
  cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(50, 50, 100, 100)) = 12;
  mask(cv::Rect(250, 50, 100, 100)) = 8;
  mask(cv::Rect(0, 290, 400, 10)) = 255;
  std::vector<std::string> names(21, "");
  names[0] = "background", names[8] = "cat", names[12] = "dog";
  const at::Tensor cams = blob_cams(2, h, w);

  const cv::Mat sheet = make_contact_sheet(sheet_input(gradient_rgb(h, w), {"dog", "cat"}, cams, cams.sqrt(), mask, names));
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 2, false, 4);  // ids 0, 8, 12, 255
  EXPECT_EQ(sheet.type(), CV_8UC3);
  EXPECT_EQ(sheet.cols, g.width);
  EXPECT_EQ(sheet.rows, g.height);
  // Small images are not scaled: two tiles side by side, three rows of tiles.
  EXPECT_EQ(g.tile_width, w);
  EXPECT_EQ(g.tile_height, h);
  EXPECT_EQ(g.rows, 3);
  EXPECT_TRUE(g.legend_beside);  // 3 tile rows of 300 px are taller than 2 tiles of 400 are wide
  EXPECT_GT(sheet.cols, 2 * w);
  EXPECT_GT(sheet.rows, 3 * h);
  // One more label adds exactly one row of tiles.
  const cv::Mat sheet3 = make_contact_sheet(
      sheet_input(gradient_rgb(h, w), {"dog", "cat", "x"}, blob_cams(3, h, w), blob_cams(3, h, w), mask, names));
  EXPECT_EQ(sheet3.cols, sheet.cols);
  EXPECT_EQ(sheet3.rows - sheet.rows, 26 + h + 8);
  // The sheet is not blank: the tiles carry the image.
  EXPECT_GT(cv::mean(sheet)[0] + cv::mean(sheet)[1] + cv::mean(sheet)[2], 100);
}

TEST(ContactSheet, WideImagesAreScaledToStayUnder2000Pixels) {
  const int h = 500, w = 3000;
  const cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  const cv::Mat sheet = make_contact_sheet(
      sheet_input(gradient_rgb(h, w), {"a"}, blob_cams(1, h, w), blob_cams(1, h, w), mask, {"background"}));
  EXPECT_LE(sheet.cols, 2000);
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 1, false, 1);
  EXPECT_EQ(sheet.cols, g.width);
  EXPECT_EQ(sheet.rows, g.height);
  EXPECT_NEAR(static_cast<double>(g.tile_height) / g.tile_width, static_cast<double>(h) / w, 0.01);
}

TEST(ContactSheet, CamsOfAnotherSizeAreResizedButTheLabelCountMustMatch) {
  const cv::Mat mask(60, 80, CV_8UC1, cv::Scalar(0));
  EXPECT_NO_THROW(make_contact_sheet(
      sheet_input(gradient_rgb(120, 160), {"a"}, blob_cams(1, 30, 40), blob_cams(1, 30, 40), mask, {"background"})));
  EXPECT_THROW(make_contact_sheet(sheet_input(gradient_rgb(120, 160), {"a", "b"}, blob_cams(1, 120, 160),
                                              blob_cams(2, 120, 160), mask, {"background"})),
               Error);
}

TEST(ContactSheet, MaskOnlySheetsHaveNoHeatRowsAndNoColourBar) {
  const int h = 120, w = 160;
  const cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  const cv::Mat sheet = make_contact_sheet(sheet_input(gradient_rgb(h, w), {}, {}, {}, mask, {"background"}));
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 0, false, 1);
  EXPECT_EQ(g.rows, 1);
  EXPECT_EQ(g.colour_bar_height, 0);
  EXPECT_EQ(sheet.rows, g.height);
  EXPECT_EQ(sheet.cols, g.width);
  // Only refined CAMs (the official dict has no 'highres'): heat rows, left column empty.
  const cv::Mat refined_only =
      make_contact_sheet(sheet_input(gradient_rgb(h, w), {"a"}, {}, blob_cams(1, h, w), mask, {"background"}));
  const ContactSheetGeometry g1 = contact_sheet_geometry(h, w, 1, false, 1);
  EXPECT_EQ(refined_only.rows, g1.height);
  EXPECT_EQ(cv::countNonZero(refined_only(tile_rect(g1, 1, 0)).reshape(1) != 40), 0) << "empty tile = background";
  EXPECT_GT(cv::countNonZero(refined_only(tile_rect(g1, 1, 1)).reshape(1) != 40), 0);
}

TEST(ContactSheet, GroundTruthRowShowsErrorsInRed) {
  const int h = 64, w = 96;
  cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0)), truth(h, w, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(0, 0, 48, 64)) = 8;   // predicted cat on the left half
  truth(cv::Rect(0, 0, 24, 64)) = 8;  // the cat is only the left quarter
  ContactSheetInput in = sheet_input(gradient_rgb(h, w), {}, {}, {}, mask, {"background"});
  in.ground_truth = truth;
  in.ground_truth_title = image_iou_title(mask, truth);
  const cv::Mat sheet = make_contact_sheet(in);
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 0, true, 2);
  EXPECT_EQ(g.rows, 2);
  EXPECT_EQ(sheet.rows, g.height);
  const cv::Mat errors = sheet(tile_rect(g, 1, 1));
  // Wrong pixels (x in [24, 48)) are pure red (BGR 0,0,255); right ones are dimmed image.
  EXPECT_EQ(errors.at<cv::Vec3b>(30, 30), cv::Vec3b(0, 0, 255));
  EXPECT_NE(errors.at<cv::Vec3b>(30, 10), cv::Vec3b(0, 0, 255));
  EXPECT_NE(errors.at<cv::Vec3b>(30, 70), cv::Vec3b(0, 0, 255));
}

TEST(ContactSheet, RegionsAreOutlinedSoDarkClassesShowOnDarkImages) {
  // Issue 27: VOC class 8 (64,0,0) blended over a dark image was nearly invisible.
  const int h = 64, w = 96;
  const cv::Mat rgb(h, w, CV_8UC3, cv::Scalar(20, 20, 20));
  cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(20, 16, 40, 32)) = 8;
  const cv::Mat sheet = make_contact_sheet(sheet_input(rgb, {}, {}, {}, mask, {"background"}));
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 0, false, 2);
  const cv::Mat tile = sheet(tile_rect(g, 0, 1));
  ASSERT_EQ(tile.size(), mask.size());  // no scaling at this size: pixels line up
  const cv::Vec3b white(255, 255, 255);
  EXPECT_EQ(tile.at<cv::Vec3b>(30, 19), white);  // background pixel left of the cat
  EXPECT_EQ(tile.at<cv::Vec3b>(15, 40), white);  // above it
  EXPECT_EQ(tile.at<cv::Vec3b>(30, 59), white);  // the cat's last column
  EXPECT_NE(tile.at<cv::Vec3b>(30, 40), white);  // inside: the blended colour
  EXPECT_NE(tile.at<cv::Vec3b>(5, 5), white);    // far outside
}

TEST(ContactSheet, ImageIouIsTheMeanOverClassesInTruthOrPrediction) {
  // 4×4: truth = 8 pixels class 1 (left half), 8 background; the prediction
  // puts class 1 on the left 3 columns and class 2 on one pixel of the 4th.
  cv::Mat truth(4, 4, CV_8UC1, cv::Scalar(0)), pred(4, 4, CV_8UC1, cv::Scalar(0));
  truth(cv::Rect(0, 0, 2, 4)) = 1;
  pred(cv::Rect(0, 0, 3, 4)) = 1;
  pred.at<uint8_t>(0, 3) = 2;
  truth.at<uint8_t>(3, 3) = 255;  // ignored whatever is predicted there
  // bg: GT 7 (16 − 8 − the ignored pixel), predicted 2 ((1,3), (2,3)), TP 2 → 2/7;
  // class 1: TP 8, GT 8, predicted 12 → 8/12; class 2: predicted once, never true → 0.
  const double expected = (2.0 / 7 + 8.0 / 12 + 0.0) / 3;
  char want[96];
  std::snprintf(want, sizeof want, "GT, IoU %.3f", expected);
  EXPECT_EQ(image_iou_title(pred, truth), want);
  EXPECT_EQ(image_iou_title(truth, truth), "GT, IoU 1.000");
  EXPECT_THROW(image_iou_title(pred, truth(cv::Rect(0, 0, 2, 2))), Error);
}

TEST(ContactSheet, IgnoreIsHatchedAndNeverLooksLikeThePalettesGrey) {
  const int h = 64, w = 96;
  const cv::Mat rgb(h, w, CV_8UC3, cv::Scalar(128, 128, 128));
  cv::Mat mask(h, w, CV_8UC1, cv::Scalar(7));  // VOC 7 "car" is grey (128,128,128)
  mask(cv::Rect(48, 0, 48, 64)) = 255;
  const cv::Mat sheet = make_contact_sheet(sheet_input(rgb, {}, {}, {}, mask, {"background"}));
  const ContactSheetGeometry g = contact_sheet_geometry(h, w, 0, false, 2);
  const cv::Mat tile = sheet(tile_rect(g, 0, 1));
  cv::Scalar mean_grey, sd_grey, mean_ignore, sd_ignore;
  cv::meanStdDev(tile(cv::Rect(0, 0, 48, 64)), mean_grey, sd_grey);
  cv::meanStdDev(tile(cv::Rect(48, 0, 48, 64)), mean_ignore, sd_ignore);
  EXPECT_LT(sd_grey[0], 1.0);     // uniform grey
  EXPECT_GT(sd_ignore[0], 50.0);  // black/white stripes
}

TEST(ContactSheet, TallSheetsPutTheLegendBesideThePanelsAndShowAColourBar) {
  const int h = 300, w = 400;
  const cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  const ContactSheetGeometry short_sheet = contact_sheet_geometry(h, w, 1, false, 1);
  EXPECT_FALSE(short_sheet.legend_beside);
  const ContactSheetGeometry tall = contact_sheet_geometry(h, w, 6, false, 1);
  EXPECT_TRUE(tall.legend_beside);
  EXPECT_EQ(tall.width, 2 * w + 3 * 8 + 240 + 8);
  const cv::Mat sheet = make_contact_sheet(
      sheet_input(gradient_rgb(h, w), {"a", "b", "c", "d", "e", "f"}, blob_cams(6, h, w), blob_cams(6, h, w), mask,
                  {"background"}));
  EXPECT_EQ(sheet.cols, tall.width);
  EXPECT_EQ(sheet.rows, tall.height);
  // The legend swatch (black for background) sits at the top of the right column.
  EXPECT_EQ(sheet.at<cv::Vec3b>(8 + 12, 2 * w + 3 * 8 + 9), cv::Vec3b(0, 0, 0));
  // The colour bar under the heat maps runs from JET's blue to its red.
  const int y = 8 + tall.rows * (26 + h + 8) + 10, x0 = 8 + 44, bar = w + 8 - 44 - 12;
  const cv::Vec3b left = sheet.at<cv::Vec3b>(y, x0 + 1), right = sheet.at<cv::Vec3b>(y, x0 + bar - 2);
  EXPECT_GT(left[0], 100);   // blue
  EXPECT_LT(left[2], 30);
  EXPECT_GT(right[2], 100);  // red
  EXPECT_LT(right[0], 30);
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
    const ContactSheetGeometry g = contact_sheet_geometry(sizes[i].height, sizes[i].width, 2, false, 3);
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

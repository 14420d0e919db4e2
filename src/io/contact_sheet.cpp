#include "clipes/io/contact_sheet.h"

#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

constexpr int kMaxTileWidth = 960;  // two columns + gaps stay under ~2000 px
constexpr int kGap = 8;
constexpr int kTitleHeight = 26;
constexpr int kLegendCellWidth = 240;
constexpr int kLegendRowHeight = 26;
constexpr double kFontScale = 0.55;
const cv::Scalar kBackground(40, 40, 40);
const cv::Scalar kTextColour(235, 235, 235);

std::string shape_str(const at::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

// Text clipped to `max_width` pixels (titles must not spill into the next tile).
std::string fit_text(std::string text, int max_width) {
  int baseline = 0;
  while (!text.empty() && cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline).width > max_width)
    text.pop_back();
  return text;
}

void draw_text(cv::Mat& sheet, const std::string& text, int x, int y_bottom, int max_width) {
  cv::putText(sheet, fit_text(text, max_width), {x, y_bottom}, cv::FONT_HERSHEY_SIMPLEX, kFontScale, kTextColour, 1,
              cv::LINE_AA);
}

// A [H,W] CAM as a JET heat map blended half-and-half over the (BGR, tile-sized) image.
cv::Mat heat_overlay(const cv::Mat& image_bgr, const at::Tensor& cam) {
  const at::Tensor c = cam.to(at::kFloat).clamp(0, 1).mul(255).round().to(at::kByte).contiguous();
  cv::Mat cam_u8(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_8UC1, c.data_ptr<uint8_t>());
  cv::Mat resized;
  cv::resize(cam_u8, resized, image_bgr.size(), 0, 0, cv::INTER_LINEAR);
  cv::Mat heat, out;
  cv::applyColorMap(resized, heat, cv::COLORMAP_JET);
  cv::addWeighted(image_bgr, 0.5, heat, 0.5, 0, out);
  return out;
}

std::string class_name(int id, const std::vector<std::string>& names) {
  if (id < static_cast<int>(names.size()) && !names[static_cast<size_t>(id)].empty())
    return names[static_cast<size_t>(id)];
  if (id == 255) return "ignore";
  return "class " + std::to_string(id);
}

cv::Scalar bgr(const Rgb& c) { return cv::Scalar(c[2], c[1], c[0]); }

Rgb palette_colour(int id, const std::vector<Rgb>& palette) {
  return id < static_cast<int>(palette.size()) ? palette[static_cast<size_t>(id)] : Rgb{255, 255, 255};
}

}  // namespace

ContactSheetGeometry contact_sheet_geometry(int image_height, int image_width, int num_labels,
                                            int num_legend_entries) {
  if (image_height <= 0 || image_width <= 0) throw Error("contact sheet: empty image");
  ContactSheetGeometry g;
  const double scale = std::min(1.0, static_cast<double>(kMaxTileWidth) / image_width);
  g.tile_width = std::max(1, static_cast<int>(std::lround(image_width * scale)));
  g.tile_height = std::max(1, static_cast<int>(std::lround(image_height * scale)));
  g.width = 2 * g.tile_width + 3 * kGap;
  g.legend_columns = std::max(1, (g.width - 2 * kGap) / kLegendCellWidth);
  g.legend_rows = (num_legend_entries + g.legend_columns - 1) / g.legend_columns;
  const int rows = 1 + num_labels;
  g.height = kGap + rows * (kTitleHeight + g.tile_height + kGap) + g.legend_rows * kLegendRowHeight +
             (g.legend_rows > 0 ? kGap : 0);
  return g;
}

cv::Mat make_contact_sheet(const cv::Mat& rgb, const std::vector<std::string>& label_names, const at::Tensor& cams,
                           const at::Tensor& refined, const cv::Mat& mask_ids,
                           const std::vector<std::string>& class_name_by_id, const std::vector<Rgb>& palette) {
  if (rgb.empty() || rgb.type() != CV_8UC3) throw Error("contact sheet: the image must be 8-bit RGB");
  if (mask_ids.empty() || mask_ids.type() != CV_8UC1) throw Error("contact sheet: the mask must be 8-bit ids");
  const int64_t k = static_cast<int64_t>(label_names.size());
  for (const at::Tensor* t : {&cams, &refined})
    if (t->dim() != 3 || t->size(0) != k)
      throw Error("contact sheet: CAMs have shape " + shape_str(*t) + ", expected [" + std::to_string(k) +
                  ", H, W] for labels in order");

  cv::Mat mask = mask_ids;
  if (mask.size() != rgb.size()) cv::resize(mask_ids, mask, rgb.size(), 0, 0, cv::INTER_NEAREST);
  std::vector<int> present;
  {
    int histogram[256] = {0};
    for (int y = 0; y < mask.rows; ++y)
      for (int x = 0; x < mask.cols; ++x) ++histogram[mask.at<uint8_t>(y, x)];
    for (int id = 0; id < 256; ++id)
      if (histogram[id]) present.push_back(id);
  }

  const ContactSheetGeometry g =
      contact_sheet_geometry(rgb.rows, rgb.cols, static_cast<int>(k), static_cast<int>(present.size()));
  cv::Mat sheet(g.height, g.width, CV_8UC3, kBackground);
  const cv::Size tile_size(g.tile_width, g.tile_height);

  cv::Mat image_bgr, tile_bgr;
  cv::cvtColor(rgb, image_bgr, cv::COLOR_RGB2BGR);
  cv::resize(image_bgr, tile_bgr, tile_size, 0, 0, cv::INTER_AREA);

  auto place = [&](const cv::Mat& tile, int row, int column, const std::string& title) {
    const int x = kGap + column * (g.tile_width + kGap);
    const int y = kGap + row * (kTitleHeight + g.tile_height + kGap);
    draw_text(sheet, title, x + 2, y + kTitleHeight - 8, g.tile_width - 4);
    tile.copyTo(sheet(cv::Rect(x, y + kTitleHeight, g.tile_width, g.tile_height)));
  };

  // Row 0: the original and the final mask blended over it.
  place(tile_bgr, 0, 0, "image");
  cv::Mat mask_tile, colours(tile_size, CV_8UC3), blended;
  cv::resize(mask, mask_tile, tile_size, 0, 0, cv::INTER_NEAREST);
  for (int y = 0; y < mask_tile.rows; ++y)
    for (int x = 0; x < mask_tile.cols; ++x) {
      const Rgb c = palette_colour(mask_tile.at<uint8_t>(y, x), palette);
      colours.at<cv::Vec3b>(y, x) = cv::Vec3b(c[2], c[1], c[0]);
    }
  cv::addWeighted(tile_bgr, 0.4, colours, 0.6, 0, blended);
  place(blended, 0, 1, "pseudo mask");

  // One row per label: unrefined and refined CAM.
  const at::Tensor cams_cpu = cams.detach().to(at::kCPU), refined_cpu = refined.detach().to(at::kCPU);
  for (int64_t i = 0; i < k; ++i) {
    const std::string& name = label_names[static_cast<size_t>(i)];
    place(heat_overlay(tile_bgr, cams_cpu[i]), static_cast<int>(i) + 1, 0, name + ": CAM");
    place(heat_overlay(tile_bgr, refined_cpu[i]), static_cast<int>(i) + 1, 1, name + ": refined");
  }

  // Legend: swatch + name per id present in the mask.
  const int legend_top = kGap + (1 + static_cast<int>(k)) * (kTitleHeight + g.tile_height + kGap);
  for (size_t e = 0; e < present.size(); ++e) {
    const int column = static_cast<int>(e) % g.legend_columns, row = static_cast<int>(e) / g.legend_columns;
    const int x = kGap + column * kLegendCellWidth, y = legend_top + row * kLegendRowHeight;
    const int id = present[e];
    cv::rectangle(sheet, cv::Rect(x, y + 4, 18, 18), bgr(palette_colour(id, palette)), cv::FILLED);
    cv::rectangle(sheet, cv::Rect(x, y + 4, 18, 18), kTextColour, 1);
    draw_text(sheet, std::to_string(id) + " " + class_name(id, class_name_by_id), x + 24, y + 19,
              kLegendCellWidth - 30);
  }
  return sheet;
}

void write_contact_sheet(const std::string& path, const cv::Mat& rgb, const std::vector<std::string>& label_names,
                         const at::Tensor& cams, const at::Tensor& refined, const cv::Mat& mask_ids,
                         const std::vector<std::string>& class_name_by_id, const std::vector<Rgb>& palette,
                         int jpeg_quality) {
  const cv::Mat sheet = make_contact_sheet(rgb, label_names, cams, refined, mask_ids, class_name_by_id, palette);
  std::vector<uchar> jpeg;
  if (!cv::imencode(".jpg", sheet, jpeg, {cv::IMWRITE_JPEG_QUALITY, jpeg_quality}))
    throw file_error(path, "JPEG encoding of the contact sheet failed");
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
}

}  // namespace clipes

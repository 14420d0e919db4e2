#include "clipes/io/contact_sheet.h"

#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/shape_text.h"

namespace clipes {
namespace {

constexpr int kMaxTileWidth = 960;  // two columns + gaps stay under ~2000 px
constexpr int kGap = 8;
constexpr int kTitleHeight = 26;
constexpr int kLegendCellWidth = 240;
constexpr int kLegendRowHeight = 26;
constexpr int kColourBarHeight = 40;
constexpr int kIgnore = 255;
constexpr double kFontScale = 0.55;
const cv::Scalar kBackground(40, 40, 40);
const cv::Scalar kTextColour(235, 235, 235);

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

Rgb palette_colour(int id, const std::vector<Rgb>& palette) {
  return id < static_cast<int>(palette.size()) ? palette[static_cast<size_t>(id)] : Rgb{255, 255, 255};
}

// Black/white diagonal hatching for the ignore value: no palette has it.
cv::Vec3b hatch(int x, int y) { return ((x + y) / 4) % 2 ? cv::Vec3b(255, 255, 255) : cv::Vec3b(0, 0, 0); }

// Ids as colours (BGR), ignore hatched.
cv::Mat colour_ids(const cv::Mat& ids, const std::vector<Rgb>& palette) {
  cv::Mat out(ids.size(), CV_8UC3);
  for (int y = 0; y < ids.rows; ++y)
    for (int x = 0; x < ids.cols; ++x) {
      const int id = ids.at<uint8_t>(y, x);
      if (id == kIgnore) {
        out.at<cv::Vec3b>(y, x) = hatch(x, y);
        continue;
      }
      const Rgb c = palette_colour(id, palette);
      out.at<cv::Vec3b>(y, x) = cv::Vec3b(c[2], c[1], c[0]);
    }
  return out;
}

void histogram_ids(const cv::Mat& ids, bool present[256]) {
  for (int y = 0; y < ids.rows; ++y)
    for (int x = 0; x < ids.cols; ++x) present[ids.at<uint8_t>(y, x)] = true;
}

// A white line where two classes meet: dark palette colours (VOC 8 "cat" is
// (64,0,0)) blended over a dark image were nearly invisible (issue 27). Not
// along ignore regions, which the hatching already shows.
void outline_regions(cv::Mat& bgr, const cv::Mat& ids) {
  for (int y = 0; y < ids.rows; ++y)
    for (int x = 0; x < ids.cols; ++x) {
      const int id = ids.at<uint8_t>(y, x);
      if (id == kIgnore) continue;
      const bool right = x + 1 < ids.cols && ids.at<uint8_t>(y, x + 1) != id && ids.at<uint8_t>(y, x + 1) != kIgnore;
      const bool below = y + 1 < ids.rows && ids.at<uint8_t>(y + 1, x) != id && ids.at<uint8_t>(y + 1, x) != kIgnore;
      if (right || below) bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(255, 255, 255);
    }
}

cv::Mat resized_ids(const cv::Mat& ids, const cv::Size& size) {
  if (ids.size() == size) return ids;
  cv::Mat out;
  cv::resize(ids, out, size, 0, 0, cv::INTER_NEAREST);
  return out;
}

void check_heat(const at::Tensor& t, int64_t k, const char* what) {
  if (!t.defined()) return;
  if (t.dim() != 3 || t.size(0) != k)
    throw Error(std::string("contact sheet: ") + what + " have shape " + shape_text(t.sizes().vec()) + ", expected [" +
                std::to_string(k) + ", H, W] for labels in order");
}

}  // namespace

ContactSheetGeometry contact_sheet_geometry(int image_height, int image_width, int num_heat_rows,
                                            bool ground_truth_row, int num_legend_entries) {
  if (image_height <= 0 || image_width <= 0) throw Error("contact sheet: empty image");
  ContactSheetGeometry g;
  const double scale = std::min(1.0, static_cast<double>(kMaxTileWidth) / image_width);
  g.tile_width = std::max(1, static_cast<int>(std::lround(image_width * scale)));
  g.tile_height = std::max(1, static_cast<int>(std::lround(image_height * scale)));
  g.rows = 1 + (ground_truth_row ? 1 : 0) + num_heat_rows;
  g.colour_bar_height = num_heat_rows > 0 ? kColourBarHeight : 0;
  const int panels_width = 2 * g.tile_width + 3 * kGap;
  const int panels_height = kGap + g.rows * (kTitleHeight + g.tile_height + kGap) + g.colour_bar_height;
  // Tall sheets (many labels): the legend goes in a column beside the
  // panels, where it is seen without scrolling past every heat map.
  g.legend_beside = num_legend_entries > 0 && panels_height > panels_width;
  if (g.legend_beside) {
    g.legend_columns = 1;
    g.legend_rows = num_legend_entries;
    g.width = panels_width + kLegendCellWidth + kGap;
    g.height = std::max(panels_height, kGap + g.legend_rows * kLegendRowHeight + kGap);
  } else {
    g.width = panels_width;
    g.legend_columns = std::max(1, (g.width - 2 * kGap) / kLegendCellWidth);
    g.legend_rows = (num_legend_entries + g.legend_columns - 1) / g.legend_columns;
    g.height = panels_height + g.legend_rows * kLegendRowHeight + (g.legend_rows > 0 ? kGap : 0);
  }
  return g;
}

cv::Mat make_contact_sheet(const ContactSheetInput& in) {
  if (in.rgb.empty() || in.rgb.type() != CV_8UC3) throw Error("contact sheet: the image must be 8-bit RGB");
  if (in.mask_ids.empty() || in.mask_ids.type() != CV_8UC1) throw Error("contact sheet: the mask must be 8-bit ids");
  const bool with_gt = !in.ground_truth.empty();
  if (with_gt && in.ground_truth.type() != CV_8UC1) throw Error("contact sheet: the ground truth must be 8-bit ids");
  const bool heat = in.cams.defined() || in.refined.defined();
  const int64_t k = heat ? static_cast<int64_t>(in.label_names.size()) : 0;
  check_heat(in.cams, k, "CAMs");
  check_heat(in.refined, k, "refined CAMs");

  const cv::Mat mask = resized_ids(in.mask_ids, in.rgb.size());
  const cv::Mat truth = with_gt ? resized_ids(in.ground_truth, in.rgb.size()) : cv::Mat();
  bool seen[256] = {false};
  histogram_ids(mask, seen);
  if (with_gt) histogram_ids(truth, seen);
  std::vector<int> present;
  for (int id = 0; id < 256; ++id)
    if (seen[id]) present.push_back(id);

  const ContactSheetGeometry g = contact_sheet_geometry(in.rgb.rows, in.rgb.cols, static_cast<int>(k), with_gt,
                                                        static_cast<int>(present.size()));
  cv::Mat sheet(g.height, g.width, CV_8UC3, kBackground);
  const cv::Size tile_size(g.tile_width, g.tile_height);

  cv::Mat image_bgr, tile_bgr;
  cv::cvtColor(in.rgb, image_bgr, cv::COLOR_RGB2BGR);
  cv::resize(image_bgr, tile_bgr, tile_size, 0, 0, cv::INTER_AREA);

  auto row_top = [&](int row) { return kGap + row * (kTitleHeight + g.tile_height + kGap); };
  auto place = [&](const cv::Mat& tile, int row, int column, const std::string& title) {
    const int x = kGap + column * (g.tile_width + kGap);
    const int y = row_top(row);
    draw_text(sheet, title, x + 2, y + kTitleHeight - 8, g.tile_width - 4);
    tile.copyTo(sheet(cv::Rect(x, y + kTitleHeight, g.tile_width, g.tile_height)));
  };
  auto blend_ids = [&](const cv::Mat& ids) {
    const cv::Mat tile_ids = resized_ids(ids, tile_size);
    cv::Mat blended;
    cv::addWeighted(tile_bgr, 0.4, colour_ids(tile_ids, in.palette), 0.6, 0, blended);
    outline_regions(blended, tile_ids);
    return blended;
  };

  // Row 0: the original and the final mask blended over it.
  int row = 0;
  place(tile_bgr, row, 0, "image");
  place(blend_ids(mask), row, 1, "pseudo mask");
  ++row;

  // The ground truth and where the prediction disagrees with it.
  if (with_gt) {
    place(blend_ids(truth), row, 0, in.ground_truth_title);
    const cv::Mat m = resized_ids(mask, tile_size), t = resized_ids(truth, tile_size);
    cv::Mat errors;
    cv::addWeighted(tile_bgr, 0.35, cv::Mat(tile_size, CV_8UC3, cv::Scalar(0, 0, 0)), 0.65, 0, errors);
    for (int y = 0; y < errors.rows; ++y)
      for (int x = 0; x < errors.cols; ++x) {
        const int gt = t.at<uint8_t>(y, x);
        if (gt == kIgnore) errors.at<cv::Vec3b>(y, x) = hatch(x, y);
        else if (m.at<uint8_t>(y, x) != gt) errors.at<cv::Vec3b>(y, x) = cv::Vec3b(0, 0, 255);
      }
    place(errors, row, 1, "errors (red)");
    ++row;
  }

  // One row per label: unrefined and refined CAM.
  const at::Tensor cams = in.cams.defined() ? in.cams.detach().to(at::kCPU) : at::Tensor();
  const at::Tensor refined = in.refined.defined() ? in.refined.detach().to(at::kCPU) : at::Tensor();
  for (int64_t i = 0; i < k; ++i, ++row) {
    const std::string& name = in.label_names[static_cast<size_t>(i)];
    if (cams.defined()) place(heat_overlay(tile_bgr, cams[i]), row, 0, name + ": " + in.cam_title);
    if (refined.defined()) place(heat_overlay(tile_bgr, refined[i]), row, 1, name + ": " + in.refined_title);
  }

  // The colour bar: JET from 0 to 1, as heat_overlay maps CAM values.
  int panels_bottom = row_top(row);
  if (g.colour_bar_height > 0) {
    const int label_width = 44;
    const int x0 = kGap + label_width, bar_width = std::max(16, g.tile_width + kGap - label_width - 12);
    const int y0 = panels_bottom;
    draw_text(sheet, "CAM", kGap + 2, y0 + 17, label_width - 4);
    cv::Mat ramp(1, bar_width, CV_8UC1);
    for (int x = 0; x < bar_width; ++x) ramp.at<uint8_t>(0, x) = static_cast<uint8_t>(x * 255 / std::max(1, bar_width - 1));
    cv::Mat colours, strip;
    cv::applyColorMap(ramp, colours, cv::COLORMAP_JET);
    cv::resize(colours, strip, {bar_width, 14}, 0, 0, cv::INTER_NEAREST);
    strip.copyTo(sheet(cv::Rect(x0, y0 + 4, bar_width, 14)));
    for (const char* tick : {"0", "0.5", "1"}) {
      const double at = tick[0] == '0' && tick[1] == '\0' ? 0.0 : tick[0] == '1' ? 1.0 : 0.5;
      const int x = x0 + static_cast<int>(std::lround(at * (bar_width - 1)));
      cv::line(sheet, {x, y0 + 18}, {x, y0 + 22}, kTextColour, 1);
      int baseline = 0;
      const int text_width = cv::getTextSize(tick, cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline).width;
      draw_text(sheet, tick, std::min(x - text_width / 2, g.width - text_width - 2), y0 + 36, text_width + 2);
    }
    panels_bottom += g.colour_bar_height;
  }

  // Legend: swatch + id + name for every id in the mask or the ground truth.
  const int legend_left = g.legend_beside ? 2 * g.tile_width + 3 * kGap : kGap;
  const int legend_top = g.legend_beside ? kGap : panels_bottom;
  for (size_t e = 0; e < present.size(); ++e) {
    const int column = static_cast<int>(e) % g.legend_columns, r = static_cast<int>(e) / g.legend_columns;
    const int x = legend_left + column * kLegendCellWidth, y = legend_top + r * kLegendRowHeight;
    const int id = present[e];
    const cv::Rect swatch(x, y + 4, 18, 18);
    if (id == kIgnore) {
      for (int yy = 0; yy < swatch.height; ++yy)
        for (int xx = 0; xx < swatch.width; ++xx) sheet.at<cv::Vec3b>(swatch.y + yy, swatch.x + xx) = hatch(xx, yy);
    } else {
      const Rgb c = palette_colour(id, in.palette);
      cv::rectangle(sheet, swatch, cv::Scalar(c[2], c[1], c[0]), cv::FILLED);
    }
    cv::rectangle(sheet, swatch, kTextColour, 1);
    draw_text(sheet, std::to_string(id) + " " + class_name(id, in.class_name_by_id), x + 24, y + 19,
              kLegendCellWidth - 30);
  }
  return sheet;
}

void write_contact_sheet(const std::string& path, const ContactSheetInput& input, int jpeg_quality) {
  const cv::Mat sheet = make_contact_sheet(input);
  std::vector<uchar> jpeg;
  if (!cv::imencode(".jpg", sheet, jpeg, {cv::IMWRITE_JPEG_QUALITY, jpeg_quality}))
    throw file_error(path, "JPEG encoding of the contact sheet failed");
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
}

std::string image_iou_title(const cv::Mat& prediction, const cv::Mat& ground_truth) {
  if (prediction.size() != ground_truth.size() || prediction.type() != CV_8UC1 || ground_truth.type() != CV_8UC1)
    throw Error("image IoU: prediction and ground truth must be 8-bit id maps of the same size");
  std::vector<uint64_t> inter(256, 0), pred(256, 0), truth(256, 0);
  for (int y = 0; y < prediction.rows; ++y)
    for (int x = 0; x < prediction.cols; ++x) {
      const int t = ground_truth.at<uint8_t>(y, x), p = prediction.at<uint8_t>(y, x);
      if (t == kIgnore) continue;
      ++truth[t];
      if (p != kIgnore) ++pred[p];
      if (p == t) ++inter[t];
    }
  double sum = 0;
  int classes = 0;
  for (int c = 0; c < 255; ++c) {
    const uint64_t uni = truth[c] + pred[c] - inter[c];
    if (uni == 0) continue;
    sum += static_cast<double>(inter[c]) / static_cast<double>(uni);
    ++classes;
  }
  if (classes == 0) return "GT, no classes";
  char text[48];
  std::snprintf(text, sizeof text, "GT, IoU %.3f", sum / classes);  // short: tiles may be 180 px wide
  return text;
}

}  // namespace clipes

#include "clipes/data/coco_mask.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

// Sizes come from json files: a negative one would wrap to a huge size_t.
void check_mask_size(int height, int width) {
  if (height < 0 || width < 0 ||
      static_cast<uint64_t>(height) * static_cast<uint64_t>(width) > UINT32_MAX)
    throw Error("mask size " + std::to_string(height) + "x" + std::to_string(width) +
                " is negative or too large for 32-bit RLE counts");
}

}  // namespace

std::vector<uint32_t> rle_from_polygon(const std::vector<double>& xy, int height, int width) {
  // The arithmetic below follows pycocotools' rleFrPoly step by step (int
  // truncation, +.5 rounding, the double divisions) because a different but
  // "equivalent" scan conversion disagrees on boundary pixels, and COCO masks
  // are defined by what pycocotools draws. Compiled with -ffp-contract=off.
  check_mask_size(height, width);
  const size_t h = static_cast<size_t>(height), w = static_cast<size_t>(width);
  const size_t k = xy.size() / 2;
  if (k == 0 || h == 0 || w == 0) return {static_cast<uint32_t>(h * w)};
  const double scale = 5;
  // pycocotools casts scaled doubles to int unchecked (undefined for NaN,
  // inf or beyond ±2^31); refuse those instead. Real coordinates lie within
  // a pixel or so of the image, so ±kMaxPolygonCoordinate loses nothing.
  for (double value : xy) {
    if (!std::isfinite(value) || std::abs(value) > kMaxPolygonCoordinate)
      throw Error("polygon coordinate " + std::to_string(value) + " is not a finite number within ±" +
                  std::to_string(static_cast<int>(kMaxPolygonCoordinate)));
  }
  std::vector<int> x(k + 1), y(k + 1);
  for (size_t j = 0; j < k; ++j) x[j] = static_cast<int>(scale * xy[j * 2 + 0] + .5);
  for (size_t j = 0; j < k; ++j) y[j] = static_cast<int>(scale * xy[j * 2 + 1] + .5);
  x[k] = x[0];
  y[k] = y[0];
  // Every edge becomes max(dx, dy) + 1 points below; bound their total so a
  // hostile polygon (long zig-zags between far coordinates) cannot take
  // gigabytes and minutes. Real outlines are a few image perimeters long at most.
  const uint64_t max_points = uint64_t{5} * kMaxPolygonPerimeters * 2 * (h + w) + (uint64_t{1} << 16);
  uint64_t points = 0;
  for (size_t j = 0; j < k; ++j)
    points += static_cast<uint64_t>(std::max(std::abs(x[j + 1] - x[j]), std::abs(y[j + 1] - y[j]))) + 1;
  if (points > max_points)
    throw Error("polygon outline is too long to rasterise (" + std::to_string(points / 5) +
                " px, more than " + std::to_string(kMaxPolygonPerimeters) + " image perimeters)");

  // Dense integer points along every edge of the upsampled polygon.
  std::vector<int> u, v;
  u.reserve(static_cast<size_t>(points));
  v.reserve(static_cast<size_t>(points));
  for (size_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    // Each edge is walked from its lower end so both directions give the same points.
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    // A zero-length edge (repeated point, one-point polygon) is the single
    // point (xs, ys). pycocotools divides 0/0 there and casts the NaN to int
    // (undefined; INT_MIN on x86) for a v that no toggle ever reads: s = 0
    // gives the same masks without the undefined cast.
    const double s = dx == 0 && dy == 0 ? 0.0
                     : dx >= dy         ? static_cast<double>(ye - ys) / dx
                                        : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      for (int d = 0; d <= dx; ++d) {
        const int t = flip ? dx - d : d;
        u.push_back(t + xs);
        v.push_back(static_cast<int>(ys + s * t + .5));
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        const int t = flip ? dy - d : d;
        v.push_back(t + ys);
        u.push_back(static_cast<int>(xs + s * t + .5));
      }
    }
  }

  // Where the boundary crosses a pixel column's centre line (back at the
  // original scale), the row from which pixels of that column toggle.
  std::vector<uint32_t> toggles;
  for (size_t j = 1; j < u.size(); ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = static_cast<double>(u[j] < u[j - 1] ? u[j] : u[j] - 1);
    xd = (xd + .5) / scale - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w - 1)) continue;
    double yd = static_cast<double>(v[j] < v[j - 1] ? v[j] : v[j - 1]);
    yd = (yd + .5) / scale - .5;
    if (yd < 0) yd = 0;
    else if (yd > static_cast<double>(h)) yd = static_cast<double>(h);
    yd = std::ceil(yd);
    // In 64 bits: xd * h exceeds INT_MAX for masks over 2^31 pixels (pycocotools'
    // int arithmetic overflows there; the unsigned result is the same).
    toggles.push_back(static_cast<uint32_t>(static_cast<uint64_t>(xd) * h + static_cast<uint64_t>(yd)));
  }
  toggles.push_back(static_cast<uint32_t>(h * w));
  std::sort(toggles.begin(), toggles.end());

  // Sorted toggle positions → run lengths. Two toggles at the same position
  // cancel: the zero-length run is dropped and its neighbours merged.
  uint32_t previous = 0;
  for (auto& t : toggles) {
    const uint32_t position = t;
    t -= previous;
    previous = position;
  }
  std::vector<uint32_t> counts;
  size_t j = 0;
  counts.push_back(toggles[j++]);
  while (j < toggles.size()) {
    if (toggles[j] > 0) {
      counts.push_back(toggles[j++]);
    } else {
      ++j;
      if (j < toggles.size()) counts.back() += toggles[j++];
    }
  }
  return counts;
}

cv::Mat decode_rle(const std::vector<uint32_t>& counts, int height, int width) {
  check_mask_size(height, width);
  const uint64_t area = static_cast<uint64_t>(height) * static_cast<uint64_t>(width);
  uint64_t total = 0;
  for (uint32_t c : counts) total += c;
  if (total > area) {
    throw Error("RLE counts cover " + std::to_string(total) + " pixels, more than " +
                std::to_string(height) + "x" + std::to_string(width));
  }
  // An empty image keeps its shape (cv::transpose would make it 0x0).
  if (area == 0) return cv::Mat(height, width, CV_8UC1);
  // Column-major: fill the transposed image row by row, then transpose.
  cv::Mat transposed(width, height, CV_8UC1, cv::Scalar(0));
  uint8_t* data = transposed.ptr<uint8_t>();
  uint64_t position = 0;
  uint8_t value = 0;
  for (uint32_t c : counts) {
    if (value) std::fill(data + position, data + position + c, uint8_t{1});
    position += c;
    value = !value;
  }
  cv::Mat mask;
  cv::transpose(transposed, mask);
  return mask;
}

cv::Mat rasterize_polygon(const std::vector<double>& xy, int height, int width) {
  return decode_rle(rle_from_polygon(xy, height, width), height, width);
}

std::vector<uint32_t> encode_rle(const cv::Mat& mask) {
  CV_Assert(mask.type() == CV_8UC1);
  cv::Mat transposed;
  cv::transpose(mask, transposed);
  std::vector<uint32_t> counts;
  uint8_t value = 0;
  uint32_t run = 0;
  for (int r = 0; r < transposed.rows; ++r) {
    const uint8_t* row = transposed.ptr<uint8_t>(r);
    for (int c = 0; c < transposed.cols; ++c) {
      const uint8_t bit = row[c] ? 1 : 0;
      if (bit != value) {
        counts.push_back(run);
        run = 0;
        value = bit;
      }
      ++run;
    }
  }
  counts.push_back(run);
  return counts;
}

constexpr int kMaxRleChars = 7;

std::vector<uint32_t> decode_rle_string(const std::string& compressed) {
  std::vector<uint32_t> counts;
  size_t p = 0;
  while (p < compressed.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= compressed.size()) throw Error("compressed RLE string ends inside a value");
      const int c = static_cast<unsigned char>(compressed[p]) - 48;
      if (c < 0 || c > 63) throw Error("compressed RLE string has an invalid character");
      // 7 characters carry 35 bits: every difference of two uint32 counts
      // (what pycocotools writes never needs more). Allowing 13, as before,
      // shifted 31 << 60 out of int64 and sign-extended by << 65 (undefined).
      if (k >= kMaxRleChars) throw Error("compressed RLE string has an over-long value (more than 7 characters)");
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= static_cast<int64_t>(~uint64_t{0} << (5 * k));  // sign-extend
    }
    if (counts.size() > 2) x += static_cast<int64_t>(counts[counts.size() - 2]);
    if (x < 0 || x > static_cast<int64_t>(UINT32_MAX))
      throw Error("compressed RLE string decodes to a run of " + std::to_string(x) + " (outside 0..2^32-1)");
    counts.push_back(static_cast<uint32_t>(x));
  }
  return counts;
}

std::string encode_rle_string(const std::vector<uint32_t>& counts) {
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i];
    if (i > 2) x -= static_cast<int64_t>(counts[i - 2]);
    bool more = true;
    while (more) {
      int c = static_cast<int>(x & 0x1f);
      x >>= 5;  // arithmetic shift keeps the sign
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

// ---------------------------------------------------------------------------

namespace {

using nlohmann::json;

const json& member(const json& object, const char* key, const std::string& path, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) throw file_error(path, where + " has no '" + key + "'");
  return *it;
}

int64_t int_member(const json& object, const char* key, const std::string& path, const std::string& where) {
  const json& value = member(object, key, path, where);
  if (!value.is_number_integer()) throw file_error(path, where + ": '" + key + "' is not an integer");
  return value.get<int64_t>();
}

}  // namespace

CocoGroundTruth CocoGroundTruth::load(const std::string& json_path) {
  CocoGroundTruth gt;
  gt.path_ = json_path;
  json root;
  try {
    root = json::parse(read_file(json_path));
  } catch (const json::exception& e) {
    throw file_error(json_path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!root.is_object() || !root.contains("images") || !root["images"].is_array())
    throw file_error(json_path, "not a COCO instances file (no \"images\" array)");
  if (!root.contains("categories") || !root["categories"].is_array())
    throw file_error(json_path, "not a COCO instances file (no \"categories\" array)");

  for (const auto& im : root["images"]) {
    CocoImageInfo info;
    info.id = int_member(im, "id", json_path, "an image");
    const std::string where = "image " + std::to_string(info.id);
    const json& name = member(im, "file_name", json_path, where);
    if (!name.is_string()) throw file_error(json_path, where + ": file_name is not a string");
    info.file_name = name.get<std::string>();
    info.stem = std::filesystem::path(info.file_name).stem().string();
    info.height = static_cast<int>(int_member(im, "height", json_path, where));
    info.width = static_cast<int>(int_member(im, "width", json_path, where));
    if (info.height <= 0 || info.width <= 0) throw file_error(json_path, where + " has a non-positive size");
    if (!gt.image_index_.emplace(info.id, gt.images_.size()).second)
      throw file_error(json_path, "image id " + std::to_string(info.id) + " appears twice");
    if (!gt.stem_index_.emplace(info.stem, gt.images_.size()).second)
      throw file_error(json_path, "two images share the file stem '" + info.stem + "'");
    gt.images_.push_back(std::move(info));
  }

  for (const auto& cat : root["categories"]) {
    CocoCategoryInfo info;
    info.id = int_member(cat, "id", json_path, "a category");
    const json& name = member(cat, "name", json_path, "category " + std::to_string(info.id));
    if (!name.is_string()) throw file_error(json_path, "category " + std::to_string(info.id) + ": name is not a string");
    info.name = name.get<std::string>();
    gt.categories_.push_back(std::move(info));
  }
  std::sort(gt.categories_.begin(), gt.categories_.end(),
            [](const CocoCategoryInfo& a, const CocoCategoryInfo& b) { return a.id < b.id; });
  for (size_t i = 0; i < gt.categories_.size(); ++i) {
    if (!gt.category_index_.emplace(gt.categories_[i].id, static_cast<int>(i)).second)
      throw file_error(json_path, "category id " + std::to_string(gt.categories_[i].id) + " appears twice");
  }

  if (root.contains("annotations")) {
    if (!root["annotations"].is_array()) throw file_error(json_path, "\"annotations\" is not an array");
    for (const auto& an : root["annotations"]) {
      CocoAnnotation a;
      a.id = int_member(an, "id", json_path, "an annotation");
      const std::string where = "annotation " + std::to_string(a.id);
      a.image_id = int_member(an, "image_id", json_path, where);
      a.category_id = int_member(an, "category_id", json_path, where);
      if (an.contains("iscrowd")) a.crowd = int_member(an, "iscrowd", json_path, where) != 0;
      const CocoImageInfo* image = gt.find_image(a.image_id);
      if (!image) throw file_error(json_path, where + " refers to unknown image " + std::to_string(a.image_id));
      if (gt.category_index(a.category_id) < 0)
        throw file_error(json_path, where + " refers to unknown category " + std::to_string(a.category_id));
      auto seg = an.find("segmentation");
      if (seg != an.end() && seg->is_array()) {
        for (const auto& poly : *seg) {
          if (!poly.is_array()) throw file_error(json_path, where + ": a polygon is not an array of numbers");
          std::vector<double> xy;
          xy.reserve(poly.size());
          for (const auto& value : poly) {
            if (!value.is_number()) throw file_error(json_path, where + ": a polygon is not an array of numbers");
            xy.push_back(value.get<double>());
            if (!std::isfinite(xy.back()) || std::abs(xy.back()) > kMaxPolygonCoordinate)
              throw file_error(json_path, where + ": polygon coordinate " + std::to_string(xy.back()) +
                                              " is far outside any image");
          }
          if (xy.size() % 2) throw file_error(json_path, where + ": a polygon has an odd number of coordinates");
          a.polygons.push_back(std::move(xy));
        }
        // pycocotools.frPyObjects only takes polygon lists whose first entry
        // has more than 4 numbers (exactly 4 means boxes, handled in annotation_mask).
        if (!a.polygons.empty() && a.polygons.front().size() < 4)
          throw file_error(json_path, where + ": a polygon has fewer than two points");
      } else if (seg != an.end() && seg->is_object()) {
        a.is_rle = true;
        const json& size = member(*seg, "size", json_path, where);
        if (!size.is_array() || size.size() != 2 || !size[0].is_number_integer() || !size[1].is_number_integer())
          throw file_error(json_path, where + ": RLE size is not [height, width]");
        a.rle_height = size[0].get<int>();
        a.rle_width = size[1].get<int>();
        if (a.rle_height != image->height || a.rle_width != image->width)
          throw file_error(json_path, where + ": RLE size " + std::to_string(a.rle_height) + "x" +
                                          std::to_string(a.rle_width) + " differs from the image's " +
                                          std::to_string(image->height) + "x" + std::to_string(image->width));
        const json& counts = member(*seg, "counts", json_path, where);
        try {
          if (counts.is_string()) {
            a.rle_counts = decode_rle_string(counts.get<std::string>());
          } else if (counts.is_array()) {
            for (const auto& c : counts) {
              if (!c.is_number_integer() || c.get<int64_t>() < 0 || c.get<int64_t>() > UINT32_MAX)
                throw Error("RLE counts are not non-negative integers");
              a.rle_counts.push_back(c.get<uint32_t>());
            }
          } else {
            throw Error("RLE counts are neither a string nor a list");
          }
        } catch (const Error& e) {
          throw file_error(json_path, where + ": " + e.what());
        }
        uint64_t total = 0;
        for (uint32_t c : a.rle_counts) total += c;
        if (total > static_cast<uint64_t>(a.rle_height) * static_cast<uint64_t>(a.rle_width))
          throw file_error(json_path, where + ": RLE counts run past the end of the image");
      } else if (seg != an.end() && !seg->is_null()) {
        throw file_error(json_path, where + ": segmentation is neither polygons nor RLE");
      }
      gt.annotations_by_image_[a.image_id].push_back(gt.annotations_.size());
      gt.annotations_.push_back(std::move(a));
    }
  }
  return gt;
}

std::vector<std::string> CocoGroundTruth::category_names() const {
  std::vector<std::string> names;
  for (const auto& c : categories_) names.push_back(c.name);
  return names;
}

const CocoImageInfo* CocoGroundTruth::find_image(int64_t image_id) const {
  auto it = image_index_.find(image_id);
  return it == image_index_.end() ? nullptr : &images_[it->second];
}

const CocoImageInfo* CocoGroundTruth::find_image_by_stem(const std::string& stem) const {
  auto it = stem_index_.find(stem);
  return it == stem_index_.end() ? nullptr : &images_[it->second];
}

int CocoGroundTruth::category_index(int64_t category_id) const {
  auto it = category_index_.find(category_id);
  return it == category_index_.end() ? -1 : it->second;
}

const std::vector<size_t>& CocoGroundTruth::annotations_of(int64_t image_id) const {
  static const std::vector<size_t> none;
  auto it = annotations_by_image_.find(image_id);
  return it == annotations_by_image_.end() ? none : it->second;
}

std::vector<std::string> CocoGroundTruth::image_labels(int64_t image_id) const {
  std::vector<int> indices;
  for (size_t a : annotations_of(image_id)) indices.push_back(category_index(annotations_[a].category_id));
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  std::vector<std::string> labels;
  for (int i : indices) labels.push_back(categories_[i].name);
  return labels;
}

cv::Mat CocoGroundTruth::annotation_mask(const CocoAnnotation& annotation) const {
  const CocoImageInfo* image = find_image(annotation.image_id);
  if (!image) throw file_error(path_, "unknown image " + std::to_string(annotation.image_id));
  const int h = image->height, w = image->width;
  try {
    return annotation_mask_unchecked(annotation, h, w);
  } catch (const Error& e) {  // the decoders' messages do not know the file
    throw file_error(path_, "annotation " + std::to_string(annotation.id) + ": " + e.what());
  }
}

cv::Mat CocoGroundTruth::annotation_mask_unchecked(const CocoAnnotation& annotation, int h, int w) const {
  if (annotation.is_rle) return decode_rle(annotation.rle_counts, h, w);
  cv::Mat mask(h, w, CV_8UC1, cv::Scalar(0));
  // pycocotools' quirk: a list whose first entry has exactly 4 numbers is a
  // list of [x, y, width, height] boxes, not polygons.
  const bool boxes = !annotation.polygons.empty() && annotation.polygons.front().size() == 4;
  for (const auto& poly : annotation.polygons) {
    if (boxes) {
      if (poly.size() != 4) throw Error("mixed boxes and polygons");
      const double xs = poly[0], ys = poly[1], xe = xs + poly[2], ye = ys + poly[3];
      mask |= rasterize_polygon({xs, ys, xs, ye, xe, ye, xe, ys}, h, w);
    } else {
      mask |= rasterize_polygon(poly, h, w);
    }
  }
  return mask;
}

cv::Mat CocoGroundTruth::semantic_mask(int64_t image_id, bool dataset_ids) const {
  std::unordered_map<int64_t, int> values;
  for (size_t i = 0; i < categories_.size(); ++i) {
    const int64_t value = dataset_ids ? categories_[i].id : static_cast<int64_t>(i) + 1;
    // Out-of-range values are reported only when an annotation uses them.
    values[categories_[i].id] = value <= 0 || value >= 255 ? -1 : static_cast<int>(value);
  }
  return semantic_mask(image_id, values);
}

cv::Mat CocoGroundTruth::semantic_mask(int64_t image_id, const std::unordered_map<int64_t, int>& values) const {
  const CocoImageInfo* image = find_image(image_id);
  if (!image) throw file_error(path_, "no image with id " + std::to_string(image_id));
  cv::Mat semantic(image->height, image->width, CV_8UC1, cv::Scalar(0));
  const auto& indices = annotations_of(image_id);
  for (size_t i : indices) {
    const CocoAnnotation& a = annotations_[i];
    if (a.crowd) continue;
    const auto value = values.find(a.category_id);
    if (value == values.end())
      throw file_error(path_, "category " + std::to_string(a.category_id) + " has no class value");
    if (value->second <= 0 || value->second >= 255)
      throw file_error(path_, "category id " + std::to_string(a.category_id) + " does not fit an 8-bit mask");
    semantic.setTo(cv::Scalar(static_cast<double>(value->second)), annotation_mask(a));
  }
  for (size_t i : indices) {
    if (annotations_[i].crowd) semantic.setTo(cv::Scalar(255), annotation_mask(annotations_[i]));
  }
  return semantic;
}

}  // namespace clipes

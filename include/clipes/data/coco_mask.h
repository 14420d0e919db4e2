// COCO instance annotations → binary and semantic masks, pixel-exact with
// pycocotools (the tool every COCO ground truth and evaluation goes through).
//
// Three segmentation encodings occur in instances_*.json:
//  - polygons [[x0,y0,x1,y1,...], ...] (an object may have several parts; their union),
//  - uncompressed RLE {"size":[h,w],"counts":[n0,n1,...]} (crowd regions),
//  - compressed RLE {"size":[h,w],"counts":"<string>"} (results files, LVIS, ...).
// RLE runs are column-major (down each column, then the next column) and start
// with a run of zeros.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace clipes {

// pycocotools' frPoly: the polygon is upsampled ×5 onto an integer grid, its
// edges walked, and a pixel is inside when its centre is below a crossing of
// the (downsampled) boundary in its column. Returns the RLE counts.
// Throws clipes::Error for a negative size or one over 2^32 pixels, a
// coordinate that is not finite or beyond ±kMaxPolygonCoordinate, and an
// outline longer than kMaxPolygonPerimeters times the image's perimeter.
std::vector<uint32_t> rle_from_polygon(const std::vector<double>& xy, int height, int width);
constexpr double kMaxPolygonCoordinate = 1e6;
constexpr uint64_t kMaxPolygonPerimeters = 128;

// CV_8UC1 0/1 mask of one polygon (x,y pairs; fewer than one pair → empty mask).
cv::Mat rasterize_polygon(const std::vector<double>& xy, int height, int width);

// CV_8UC1 0/1 mask from column-major counts. Counts that run past h·w, and
// sizes rle_from_polygon refuses, throw clipes::Error; counts that stop short
// leave the rest 0 (as pycocotools does).
cv::Mat decode_rle(const std::vector<uint32_t>& counts, int height, int width);

// Column-major counts of a 0/1 (any non-zero = 1) CV_8UC1 mask.
std::vector<uint32_t> encode_rle(const cv::Mat& mask);

// COCO's compressed counts: 6 bits per character (ASCII 48..111), 5 data
// bits + a continuation bit, sign-extended; from the 4th count on (index > 2,
// as pycocotools does it) each value is stored as the difference to the count
// two places earlier.
std::vector<uint32_t> decode_rle_string(const std::string& compressed);
std::string encode_rle_string(const std::vector<uint32_t>& counts);

struct CocoImageInfo {
  int64_t id = 0;
  std::string file_name;  // as in the json, e.g. "000000532481.jpg"
  std::string stem;       // file name without folder and extension: the output id
  int height = 0, width = 0;
};

struct CocoCategoryInfo {
  int64_t id = 0;
  std::string name;
};

struct CocoAnnotation {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  bool crowd = false;
  std::vector<std::vector<double>> polygons;  // when the segmentation is polygons
  std::vector<uint32_t> rle_counts;           // when it is an RLE (decompressed)
  int rle_height = 0, rle_width = 0;
  bool is_rle = false;
};

// instances_*.json → semantic label maps. Everything is parsed and checked
// when loading, so a bad file fails before any work starts.
class CocoGroundTruth {
 public:
  // Throws clipes::Error "<json_path>: <problem>" for unreadable or malformed files.
  static CocoGroundTruth load(const std::string& json_path);

  const std::string& path() const { return path_; }
  const std::vector<CocoImageInfo>& images() const { return images_; }          // file order
  const std::vector<CocoCategoryInfo>& categories() const { return categories_; }  // id order
  const std::vector<CocoAnnotation>& annotations() const { return annotations_; }  // file order
  std::vector<std::string> category_names() const;                               // id order

  const CocoImageInfo* find_image(int64_t image_id) const;           // nullptr if unknown
  const CocoImageInfo* find_image_by_stem(const std::string& stem) const;
  int category_index(int64_t category_id) const;                      // -1 if unknown
  // Indices into annotations() of one image, in file order.
  const std::vector<size_t>& annotations_of(int64_t image_id) const;

  // Category names of the image's annotations (crowd ones included: a crowd of
  // people still shows people), in category-id order as the reference's
  // one-hot label files have them, no duplicates.
  std::vector<std::string> image_labels(int64_t image_id) const;

  // The 0/1 mask of one annotation at its image's size (pycocotools annToMask).
  cv::Mat annotation_mask(const CocoAnnotation& annotation) const;

  // CV_8UC1 semantic map: 0 background; class value = index of the category
  // in id order + 1 (consecutive), or the original category id when
  // `dataset_ids`; crowd regions 255. Non-crowd annotations are painted in file
  // order (later ones over earlier ones); crowd regions are painted last.
  cv::Mat semantic_mask(int64_t image_id, bool dataset_ids = false) const;
  // The same with each category's value given (category id → 1..254); a
  // category missing from `values` throws clipes::Error naming the json.
  cv::Mat semantic_mask(int64_t image_id, const std::unordered_map<int64_t, int>& values) const;

 private:
  cv::Mat annotation_mask_unchecked(const CocoAnnotation& annotation, int h, int w) const;

  std::string path_;
  std::vector<CocoImageInfo> images_;
  std::vector<CocoCategoryInfo> categories_;
  std::vector<CocoAnnotation> annotations_;
  std::unordered_map<int64_t, size_t> image_index_;
  std::unordered_map<std::string, size_t> stem_index_;
  std::unordered_map<int64_t, int> category_index_;
  std::unordered_map<int64_t, std::vector<size_t>> annotations_by_image_;
};

}  // namespace clipes

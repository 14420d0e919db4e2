// 8-bit palette ("indexed") PNG files — the VOC mask format.
//
// A VOC mask stores class ids as palette indices: viewers show colours, readers
// get ids. OpenCV cannot write palettes and expands them to colour on reading,
// so this goes through libpng directly.
#pragma once
#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace clipes {

using Rgb = std::array<uint8_t, 3>;

// The standard PASCAL VOC colour map (bit-interleaved), 256 entries; index 255
// (ignore) is (224, 224, 192) as in the VOC devkit.
const std::vector<Rgb>& voc_palette();

// PNG bytes of a CV_8UC1 index image with `palette`.
std::string encode_indexed_png(const cv::Mat& ids, const std::vector<Rgb>& palette);

// Writes atomically. Throws clipes::Error naming the file.
void write_indexed_png(const std::string& path, const cv::Mat& ids,
                       const std::vector<Rgb>& palette = voc_palette());

// Reads a label image as CV_8UC1 ids: a palette PNG yields its indices
// (not colours); an 8-bit grey PNG yields its values. Throws clipes::Error
// naming the file for anything else (RGB masks, 16-bit, corrupt).
cv::Mat read_label_png(const std::string& path);

// The same from the bytes of a PNG file; `name` names it in errors. Images
// wider or taller than kMaxLabelPngSide are refused before any allocation.
cv::Mat read_label_png_bytes(const std::string& bytes, const std::string& name);

// 32768 px per side: 4x the largest masks of common segmentation datasets
// (Cityscapes 2048, aerial tiles ~10000) while a corrupt or hostile header
// cannot make the reader allocate more than 1 GiB.
constexpr int kMaxLabelPngSide = 32768;

}  // namespace clipes

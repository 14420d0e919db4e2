// Image decoding to 8-bit RGB, the way the reference sees its inputs (spec §3 step 1).
//
// The reference opens images with PIL and calls convert('RGB'); it never applies
// the EXIF orientation tag, and neither do the ground-truth masks, so we must not
// either. Grey, grey+alpha, RGBA (alpha dropped), palette and CMYK images all
// become RGB; 16-bit samples are scaled to 8 bits with round(v / 257).
//
// Decompression bombs. A small file can declare a huge image (a 30000×30000 RGB
// PNG of zeros is 2.6 MB and decodes to 2.7 GB, several times that through the
// pipeline), so the dimensions are read from the header (image_header.h) and
// checked against DecodeLimits::max_pixels before any decoder allocates. A file
// whose header we cannot read is refused rather than handed to OpenCV unchecked:
// that covers every format OpenCV 4.6 reads on Debian 12 that yields 8- or 16-bit
// images (see image_header.h); the formats left out (Radiance HDR, PFM, OpenEXR)
// decode to float, which we refused after decoding anyway, and DICOM via GDCM.
// OpenCV's own check (OPENCV_IO_MAX_IMAGE_PIXELS, default 2^30 pixels) is only a
// backstop: libopencv_imgcodecs reads that variable into a static when it is
// loaded, so it can be set in the environment before the process starts but not
// from inside it, and our PNG path (png_decode.h) bypasses it; libpng's own
// default limit of 1,000,000 pixels per side applies there instead.
//
// Nothing here prints: libpng's warnings and errors are captured (png_decode.h).
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "clipes/io/image_header.h"

namespace clipes {

// 40 MP is about 7700×5200, well above any photo in VOC or COCO (≤ 640 px a side),
// and bounds a decoded RGB image to 120 MB.
constexpr int64_t kDefaultMaxPixels = 40'000'000;

struct DecodeLimits {
  // Images with more than this many pixels (width × height, as declared in the
  // header) are refused before decoding. ≤ 0 disables the check.
  int64_t max_pixels = kDefaultMaxPixels;
};

// Reads and decodes `path`. Returns CV_8UC3 in R,G,B channel order (not BGR).
// Throws clipes::Error "<path>: <problem>" (one line) when the file is missing,
// unreadable, not a regular file, empty, truncated, not a decodable image, over
// `limits`, or when decoding runs out of memory.
cv::Mat decode_image_rgb(const std::string& path, const DecodeLimits& limits = {});

// Same, from the bytes of an encoded file; `name_for_errors` is the file name
// the error messages mention.
cv::Mat decode_image_rgb_bytes(const std::vector<uchar>& bytes, const std::string& name_for_errors,
                               const DecodeLimits& limits = {});

}  // namespace clipes

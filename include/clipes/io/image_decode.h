// Image decoding to 8-bit RGB, the way the reference sees its inputs (spec §3 step 1).
//
// The reference opens images with PIL and calls convert('RGB'); it never applies
// the EXIF orientation tag, and neither do the ground-truth masks, so we must not
// either. Grey, grey+alpha, RGBA (alpha dropped), palette and CMYK images all
// become RGB; 16-bit samples are scaled to 8 bits with round(v / 257).
#pragma once
#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace clipes {

// Reads and decodes `path`. Returns CV_8UC3 in R,G,B channel order (not BGR).
// Throws clipes::Error "<path>: <problem>" when the file is missing, unreadable,
// empty, truncated or not a decodable image.
cv::Mat decode_image_rgb(const std::string& path);

// Same, from the bytes of an encoded file; `name_for_errors` is the file name
// the error messages mention.
cv::Mat decode_image_rgb_bytes(const std::vector<uchar>& bytes, const std::string& name_for_errors);

}  // namespace clipes

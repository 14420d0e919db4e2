// The first frame of a GIF, as PIL gives it to CLIP-ES: Image.open(path)
// .convert("RGB") reads frame 0 only. OpenCV 4.6 has no GIF decoder; giflib
// (Debian libgif-dev) reads the file, and this places the frame as Pillow's
// GifImagePlugin does: a canvas of the logical screen size filled with the
// frame's transparent index (or index 0), the frame's indices pasted at its
// offset (clipped to the screen), then every index mapped through the
// frame's own colour table or else the global one; transparency is dropped
// by the RGB conversion, an index past the table is black. Later frames are
// never read, so an animation costs no more than its first frame.
#pragma once
#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace clipes {

// CV_8UC3 in R, G, B order. Throws clipes::Error "<name>: cannot decode image
// (corrupt GIF: <giflib's reason>)" for a damaged file.
cv::Mat decode_gif_first_frame_rgb(const std::vector<uchar>& bytes, const std::string& name);

}  // namespace clipes

// CLIP / CLIP-ES input preprocessing (spec §3 steps 2–4 and 6).
//
// Input images are 8-bit RGB cv::Mat (see image_decode.h); outputs are CPU
// float32 tensors [3, H, W] ready for the vision encoder (add the batch
// dimension and move them to the model's device yourself).
#pragma once
#include <opencv2/core.hpp>

namespace at { class Tensor; }

namespace clipes {

// ToTensor + Normalize with CLIP's mean/std, in torchvision's float32 order
// ((x / 255 − mean) / std). `rgb_u8` must be CV_8UC3 (R,G,B). → float32 [3,H,W].
at::Tensor normalize_clip(const cv::Mat& rgb_u8);

struct PatchMultipleSize {
  int height;
  int width;
};

// The CLIP-ES input size for an H0×W0 image: both sides rounded up to
// multiples of the model's patch (spec §3 step 2: 16 px for ViT-B/16; the
// rule does not depend on the patch, so /32 and /14 models round to 32 and
// 14 — issue 26 item 7). With max_tokens > 0 and a grid of more than
// max_tokens patches, the image is first scaled by one factor s ≤ 1 (aspect
// ratio kept) and then rounded up, choosing the largest s whose grid
// ceil(H0·s/P) × ceil(W0·s/P) has at most max_tokens patches. This cap is
// ours (memory bound for huge images), not the reference's.
// Throws clipes::Error for non-positive sizes or patch.
PatchMultipleSize patch_multiple_size(int h0, int w0, int patch, int max_tokens = 0);

// CLIP-ES preprocessing: PIL-bicubic stretch to patch_multiple_size, then
// normalize_clip (spec §3 steps 2–4). → float32 [3, H, W].
at::Tensor preprocess_to_patch_multiple(const cv::Mat& rgb_u8, int patch, int max_tokens = 0);

// Standard CLIP preprocessing (spec §3 step 6): PIL-bicubic resize of the
// short side to `size` (long side int(size·long/short)), centre crop
// size×size with round-half-to-even offsets, normalize_clip. → [3,size,size].
at::Tensor preprocess_224(const cv::Mat& rgb_u8, int size = 224);

}  // namespace clipes

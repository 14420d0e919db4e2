// The CAMs `generate --save-cams` left for one image, in either layout
// (io/mask_writer.h): cams/<stem>_cam.npy, _refined.npy and _keys.npy, or
// the official CLIP-ES cams/<stem>.npy dict (io/clip_es_cams.h; also what
// the official generate_cams_*.py writes, so its folders are read as well).
// Shared by `eval --cams` and `visualize`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace clipes {

struct SavedCams {
  at::Tensor keys;      // int64 [K], 0-based class indices
  at::Tensor cams;      // [K, H, W] unrefined; undefined when the file has none (official dicts)
  at::Tensor refined;   // [K, H, W]
  std::string cam_file, refined_file, keys_file;  // what to name in messages
};

// True when `cams_dir` holds either layout for `stem` (the refined CAMs and keys at least).
bool saved_cams_exist(const std::string& cams_dir, const std::string& stem);

// The file that holds `stem`'s refined CAMs in whichever layout is there
// (<stem>_refined.npy or the official <stem>.npy); "" when neither is.
std::string saved_cams_file(const std::string& cams_dir, const std::string& stem);

// Reads whichever layout is there (the three-array one first). Shapes are
// checked: keys [K], CAMs [K, H, W]. Throws clipes::Error naming the file.
SavedCams read_saved_cams(const std::string& cams_dir, const std::string& stem);

// What `segment --save-cams` left (pipeline/segment.h): cams/<stem>_scores.npy,
// the method's channels [S, h, w] at its scoring grid, and <stem>_keys.npy,
// each channel's class index [S]. Read back per class: the max over the
// class's channels, as the methods take it (segment-spec §4).
struct SavedScores {
  std::vector<int64_t> classes;  // distinct class indices, ascending
  at::Tensor scores;             // float32 [classes.size(), h, w]
  std::string scores_file, keys_file;
};

bool saved_scores_exist(const std::string& cams_dir, const std::string& stem);

// Throws clipes::Error naming the file on a missing file or a shape mismatch.
SavedScores read_saved_scores(const std::string& cams_dir, const std::string& stem);

// How a segment run's channels become class probabilities (run.json's
// config.scores_channels and logit_scale): the rule DenseSegmenter applies
// after its upsampling, without the method's own background decision.
struct SavedScoreRule {
  // true: cosines per text query (NACLIP); the class probabilities are the
  // softmax over classes of logit_scale · each class's best cosine (what
  // softmax over the queries, max per class, renormalised comes to).
  // false: the channels are class probabilities already (MaskCLIP, DINOiser).
  bool query_cosines = false;
  double logit_scale = 100.0;
};

// `stem`'s saved scores as float32 class probabilities [classes, height,
// width]: every channel upsampled bilinearly (align_corners false, as the
// segmenter does) to the image, the max over each class's channels, then the
// rule. `classes` receives the class index of each row (ascending). Holds
// S·height·width floats at once. Throws clipes::Error naming the file.
at::Tensor saved_score_probabilities(const std::string& cams_dir, const std::string& stem, const SavedScoreRule& rule,
                                     int64_t height, int64_t width, std::vector<int64_t>& classes);

}  // namespace clipes

// The offline toy world (issue #6): a synthetic labelled dataset that a tiny
// CLIP can be trained on in minutes, so the CLIP-ES pipeline can be shown
// segmenting real pixels without downloading OpenAI's weights.
//
// Each image is one of a few textured "stuff" backgrounds with 1–3 foreground
// objects on it. The foreground classes differ by shape AND texture AND
// colour family, so neither a colour histogram nor an outline alone names
// them; later objects occlude earlier ones. Objects are large (radius 17–36 %
// of the short side, i.e. several 16-px patches across), because CLIP-ES
// localises on the patch grid.
//
// Rendering is a pure function of (seed, index, options): one std::mt19937 and
// one cv::RNG per image, no global state, so it is deterministic and can run
// on any number of threads.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace clipes {

// Foreground classes, in class-index order (mask value = index + 1).
const std::vector<std::string>& toy_class_names();
// Words that may stand for each class in captions (first = the class name);
// the synonyms are also listed in prompts/toy.json.
const std::vector<std::vector<std::string>>& toy_class_words();
// Background ("stuff") kinds, e.g. "grass"; the caption/prompt word for each.
const std::vector<std::string>& toy_background_names();

struct ToyWorldOptions {
  int min_size = 160, max_size = 320;  // width and height drawn independently in [min, max]
  int min_objects = 1, max_objects = 3;
  // VOC-style "ignore" band (value 255) of this many pixels along every
  // object outline; 0 disables it. VOC masks have one, and it keeps
  // evaluation from hinging on a one-pixel outline.
  int ignore_band = 2;
  // Probability that the caption also names the background (CLIP-ES uses the
  // background words as negatives, so the text tower must know them).
  double caption_background_prob = 0.85;
  // Probability of using a synonym instead of the class name in captions.
  double caption_synonym_prob = 0.3;
};

struct ToySample {
  cv::Mat rgb;              // CV_8UC3, RGB order (not BGR)
  cv::Mat mask;             // CV_8UC1: 0 background, class index + 1, 255 ignore band
  std::vector<int> labels;  // class indices present (visible), ascending
  int background = 0;       // index into toy_background_names()
  bool caption_names_background = false;
  std::string caption;      // names every object present (in random order)
};

// Renders image `index` of the stream identified by `seed`.
ToySample render_toy_sample(uint64_t seed, uint64_t index, const ToyWorldOptions& options = {});

// The per-image seed: a SplitMix64 mix of (seed, index), so neighbouring
// indices and seeds give unrelated images.
uint64_t toy_sample_seed(uint64_t seed, uint64_t index);

}  // namespace clipes

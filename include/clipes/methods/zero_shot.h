// Zero-shot classification with CLIP: the standard recipe of the CLIP paper,
// used by `clipes classify` to check that a checkpoint behaves (a wrong or
// damaged model ranks obvious classes badly long before CAMs look odd).
#pragma once
#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace clipes {

class ClipModel;
class BpeTokenizer;

struct ClassProbability {
  std::string name;
  double probability = 0;
};


// Standard 224 preprocessing (io/preprocess.h) → encode_image; each class
// through `prompt_template` and the tokenizer → encode_text; both L2-normalised;
// softmax(logit_scale · cos) as in CLIP — logit_scale is the checkpoint's
// (100 for OpenAI models). `rgb_u8` is CV_8UC3 in R,G,B order. Returns every
// class, most probable first (ties keep the input order).
std::vector<ClassProbability> zero_shot_classify(const ClipModel& model, const BpeTokenizer& tokenizer,
                                                 const cv::Mat& rgb_u8, const std::vector<std::string>& classes,
                                                 const std::string& prompt_template = "a photo of a {}.");

}  // namespace clipes

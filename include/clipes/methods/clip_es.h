// ClipEs — the whole CLIP-ES algorithm for one image (spec §3–§6): image +
// label class indices → per label the unrefined CAM and the CAA-refined CAM at
// the image's size. Turning those into a mask is cam/mask_from_cams.h; writing
// them is io/mask_writer.h.
//
// Everything that does not depend on the image is done once in the
// constructor: the text features of every class and of the background words.
// Per image: preprocessing, the trunk once, the last block once with K
// gradients (cam/softmax_gradcam.h), the affinity once and all K refinements
// as one product (cam/attention_affinity.h).
#pragma once
#include <opencv2/core.hpp>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>  // ClipEsResult holds tensors by value: a forward declaration is not enough
                               // (LibTorch 2.x refuses it; 1.x let the precompiled header hide it)

#include "clipes/text/text_features.h"

namespace clipes {

class ClipModel;
class BpeTokenizer;

struct ClipEsConfig {
  std::vector<std::string> class_prompts;     // class strings with synonyms; index = class index
  std::vector<std::string> background_words;  // spec §4
  std::vector<std::string> templates = {"a clean origami {}."};
  SynonymMode synonyms = SynonymMode::Joint;
  double box_threshold = 0.4;                 // θ of the box mask (spec §6)
  bool use_softmax = true;                    // false: plain GradCAM on logits (ablation)
  bool refine = true;                         // false: no CAA, "refined" = unrefined (ablation)
  // Cap on the patch grid (h·w): bigger images run on a downscaled input and
  // their CAMs are resized back (spec §10). 0 = no cap. The default keeps
  // every VOC/COCO-sized image (≤ 800×800) exact while bounding memory.
  int max_tokens = 2500;
  // The reference keeps its resized position embedding in half precision even
  // in fp32 (spec §3.5); needed for parity with the official outputs.
  bool round_pos_to_fp16 = true;
  // The unrefined CAMs at image size cost 4·K bytes per pixel (160 MB a label
  // for a 40 MP photo); only --save-cams and the contact sheets need them.
  // false: result.cams stays undefined.
  bool keep_unrefined = true;
};

// Wall time of each stage of one run, milliseconds (for `clipes bench`).
struct ClipEsTimings {
  double preprocess_ms = 0, trunk_ms = 0, last_block_ms = 0, affinity_ms = 0, resize_ms = 0;
};

struct ClipEsResult {
  std::vector<int> class_indices;  // the labels, duplicates removed, in order
  at::Tensor cams;                 // CPU float32 [K, H0, W0], unrefined, in [0, 1] (if keep_unrefined)
  at::Tensor refined;              // CPU float32 [K, H0, W0], after CAA, in [0, 1]
  at::Tensor probabilities;        // [K + M] softmax over labels + background words
  int input_h = 0, input_w = 0;    // network input size
  ClipEsTimings timings;
};

class ClipEs {
 public:
  ClipEs(const ClipModel& model, const BpeTokenizer& tokenizer, ClipEsConfig config);
  ~ClipEs();

  // rgb: CV_8UC3 in R,G,B order (io/image_decode.h). class_indices: the
  // image's labels (at least one; duplicates are dropped). Throws clipes::Error.
  ClipEsResult run(const cv::Mat& rgb, const std::vector<int>& class_indices) const;

  const ClipEsConfig& config() const { return config_; }
  const ClipModel& model() const { return model_; }
  int num_classes() const { return static_cast<int>(config_.class_prompts.size()); }

 private:
  const ClipModel& model_;
  ClipEsConfig config_;
  struct Features;
  std::unique_ptr<Features> features_;  // [C, E] class and [M, E] background text features
};

}  // namespace clipes

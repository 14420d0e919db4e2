#include "clipes/methods/zero_shot.h"

#include <torch/torch.h>

#include <algorithm>

#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/text_features.h"
#include "clipes/util/error.h"
#include "clipes/util/option_error.h"
#include "clipes/util/l2_normalize.h"

namespace clipes {

std::vector<ClassProbability> zero_shot_classify(const ClipModel& model, const BpeTokenizer& tokenizer,
                                                 const cv::Mat& rgb_u8, const std::vector<std::string>& classes,
                                                 const std::string& prompt_template) {
  if (classes.empty()) throw option_error(option_key("classes") + ": no class names given");
  torch::NoGradGuard no_grad;
  // Class prompts through the same text path as CLIP-ES (text/text_features.h): unit rows.
  const at::Tensor txt = TextEncoder(model, tokenizer).encode_classes(classes, {prompt_template});
  const at::Tensor image = preprocess_224(rgb_u8, model.config().image_size()).unsqueeze(0);
  const at::Tensor image_features =
      model.encode_image(image.to(model.device(), model.dtype())).to(at::kFloat);
  const at::Tensor img = l2_normalize(image_features);
  const at::Tensor logits = model.logit_scale_exp() * at::matmul(img, txt.t());  // [1, C]
  const at::Tensor probs = torch::softmax(logits, -1)[0].to(at::kCPU, at::kDouble).contiguous();
  if (!at::isfinite(probs).all().item<bool>())
    throw Error("zero-shot classification: the probabilities are not finite (the model's features are NaN or "
                "infinite for this image)");

  std::vector<ClassProbability> out(classes.size());
  for (size_t i = 0; i < classes.size(); ++i) out[i] = {classes[i], probs[static_cast<int64_t>(i)].item<double>()};
  std::stable_sort(out.begin(), out.end(),
                   [](const ClassProbability& a, const ClassProbability& b) { return a.probability > b.probability; });
  return out;
}

}  // namespace clipes

#include "clipes/model/zero_shot.h"

#include <torch/torch.h>

#include <algorithm>

#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/error.h"

namespace clipes {

std::string fill_template(const std::string& prompt_template, const std::string& class_name) {
  if (prompt_template.find("{}") == std::string::npos)
    throw Error("--template \"" + prompt_template + "\": needs a {} where the class name goes");
  std::string out;
  size_t start = 0, hit;
  while ((hit = prompt_template.find("{}", start)) != std::string::npos) {
    out += prompt_template.substr(start, hit - start) + class_name;
    start = hit + 2;
  }
  return out + prompt_template.substr(start);
}

std::vector<ClassProbability> zero_shot_classify(const ClipModel& model, const BpeTokenizer& tokenizer,
                                                 const cv::Mat& rgb_u8, const std::vector<std::string>& classes,
                                                 const std::string& prompt_template) {
  if (classes.empty()) throw Error("--classes: no class names given");
  torch::NoGradGuard no_grad;
  const int context = static_cast<int>(model.context_length());
  at::Tensor tokens = torch::empty({static_cast<int64_t>(classes.size()), context}, torch::kLong);
  for (size_t i = 0; i < classes.size(); ++i) {
    const std::vector<int64_t> ids = tokenizer.encode_for_model(fill_template(prompt_template, classes[i]), context);
    tokens[static_cast<int64_t>(i)].copy_(torch::tensor(ids, torch::kLong));
  }
  const at::Tensor image = preprocess_224(rgb_u8, model.config().image_size()).unsqueeze(0);
  const at::Tensor image_features = model.encode_image(image).to(at::kFloat);
  const at::Tensor text_features = model.encode_text(tokens).to(at::kFloat);
  const at::Tensor img = image_features / image_features.norm(2, -1, true);
  const at::Tensor txt = text_features / text_features.norm(2, -1, true);
  const at::Tensor logits = model.logit_scale_exp() * at::matmul(img, txt.t());  // [1, C]
  const at::Tensor probs = torch::softmax(logits, -1)[0].to(at::kCPU, at::kDouble).contiguous();

  std::vector<ClassProbability> out(classes.size());
  for (size_t i = 0; i < classes.size(); ++i) out[i] = {classes[i], probs[static_cast<int64_t>(i)].item<double>()};
  std::stable_sort(out.begin(), out.end(),
                   [](const ClassProbability& a, const ClassProbability& b) { return a.probability > b.probability; });
  return out;
}

}  // namespace clipes

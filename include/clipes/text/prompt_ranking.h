// Sharpness-based ranking of prompt templates (spec §4, "prompt selection"):
// the template whose class-score distribution is the most peaked on labelled
// images wins. The formula, as implemented (the paper's exact equation could
// not be checked):
//
//   s(x, t)      = softmax over ALL classes c of 100 · cos(f(x), g_t(c))
//   sharp(x, t)  = Var(s_Y) / Mean(s_Y), Y = the image's ground-truth classes
//                  (population variance); for |Y| = 1, over the whole vector s
//   sharpness(t) = mean over images of sharp(x, t)      — higher is better
//
// f(x) is CLIP's standard image embedding (CLS token, 224 px centre crop);
// g_t(c) the unit text feature of class c in template t.
#pragma once
#include <string>
#include <vector>

namespace at { class Tensor; }

namespace clipes {

class ClipModel;
class BpeTokenizer;

struct TemplateScore {
  std::string templ;
  double sharpness = 0;
  double mean_label_probability = 0;  // mean over images of Σ_{c∈Y} s_c (context, not the ranking key)
};

// One image's sharpness under one template's class scores (formula above).
double image_sharpness(const at::Tensor& scores /* [C] */, const std::vector<int>& label_indices);

// image_features: [N, E] (any norm), labels: per image its class indices.
// Returns the templates sorted by sharpness, best first.
std::vector<TemplateScore> rank_templates(const ClipModel& model, const BpeTokenizer& tokenizer,
                                          const std::vector<std::string>& class_prompts,
                                          const std::vector<std::string>& templates,
                                          const at::Tensor& image_features,
                                          const std::vector<std::vector<int>>& labels);

// Reads a template pool: one template per line, '#' comments and blank lines
// skipped; every template must contain "{}". Throws clipes::Error naming the file.
std::vector<std::string> read_templates(const std::string& path);

}  // namespace clipes

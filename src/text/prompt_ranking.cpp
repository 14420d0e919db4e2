#include "clipes/text/prompt_ranking.h"

#include <torch/torch.h>

#include <algorithm>
#include <sstream>

#include "clipes/model/clip_model.h"
#include "clipes/text/text_features.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/l2_normalize.h"

namespace clipes {

double image_sharpness(const at::Tensor& scores, const std::vector<int>& label_indices) {
  at::Tensor s = scores.to(torch::kDouble).flatten();
  if (label_indices.size() >= 2) {
    std::vector<int64_t> idx(label_indices.begin(), label_indices.end());
    s = s.index_select(0, torch::tensor(idx, torch::kLong).to(s.device()));
  }
  const double mean = s.mean().item<double>();
  const double var = (s - mean).pow(2).mean().item<double>();
  return mean > 0 ? var / mean : 0.0;
}

std::vector<TemplateScore> rank_templates(const ClipModel& model, const BpeTokenizer& tokenizer,
                                          const std::vector<std::string>& class_prompts,
                                          const std::vector<std::string>& templates,
                                          const at::Tensor& image_features,
                                          const std::vector<std::vector<int>>& labels) {
  if (image_features.size(0) != static_cast<int64_t>(labels.size()))
    throw Error("prompt ranking: " + std::to_string(labels.size()) + " label lists for " +
                std::to_string(image_features.size(0)) + " images");
  if (labels.empty()) throw Error("prompt ranking needs at least one labelled image");
  const TextEncoder encoder(model, tokenizer);
  const at::Tensor images = l2_normalize(image_features.to(torch::kFloat));
  std::vector<TemplateScore> out;
  for (const auto& t : templates) {
    const at::Tensor text = encoder.encode_classes(class_prompts, {t}).to(images.device());
    const at::Tensor scores = torch::softmax(model.logit_scale_exp() * torch::matmul(images, text.t()), -1).cpu();
    TemplateScore score;
    score.templ = t;
    for (size_t i = 0; i < labels.size(); ++i) {
      score.sharpness += image_sharpness(scores[i], labels[i]);
      for (int c : labels[i]) score.mean_label_probability += scores[i][c].item<double>();
    }
    score.sharpness /= static_cast<double>(labels.size());
    score.mean_label_probability /= static_cast<double>(labels.size());
    out.push_back(score);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TemplateScore& a, const TemplateScore& b) { return a.sharpness > b.sharpness; });
  return out;
}

std::vector<std::string> read_templates(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::string> templates;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.find("{}") == std::string::npos)
      throw file_error(path, "line " + std::to_string(line_no) + " has no {} placeholder: '" + line + "'");
    templates.push_back(line);
  }
  if (templates.empty()) throw file_error(path, "no templates");
  return templates;
}

}  // namespace clipes

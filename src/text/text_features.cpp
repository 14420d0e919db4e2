#include "clipes/text/text_features.h"

#include <torch/torch.h>

#include "clipes/model/clip_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"
#include "clipes/util/option_error.h"
#include "clipes/util/l2_normalize.h"

namespace clipes {
SynonymMode parse_synonym_mode(const std::string& text) {
  if (text == "joint") return SynonymMode::Joint;
  if (text == "average") return SynonymMode::Average;
  throw option_error(option_key("synonyms") + ": expected joint or average, got '" + printable(text) + "'");
}

std::string fill_template(const std::string& templ, const std::string& class_text) {
  const auto first = templ.find("{}");
  if (first == std::string::npos) throw Error("template '" + templ + "' has no {} placeholder");
  std::string out;
  size_t pos = 0;
  for (size_t at = first; at != std::string::npos; at = templ.find("{}", pos)) {
    out += templ.substr(pos, at - pos) + class_text;
    pos = at + 2;
  }
  return out + templ.substr(pos);
}

std::vector<std::string> split_synonyms(const std::string& class_string) {
  return split_comma_list(class_string);
}

TextEncoder::TextEncoder(const ClipModel& model, const BpeTokenizer& tokenizer, int64_t prompts_per_pass)
    : model_(model), tokenizer_(tokenizer), prompts_per_pass_(prompts_per_pass) {
  if (prompts_per_pass_ < 1) throw Error("text encoder: at least one prompt per pass");
}

at::Tensor TextEncoder::encode_prompts(const std::vector<std::string>& prompts) const {
  const int64_t context = model_.context_length();
  std::vector<int64_t> ids;
  ids.reserve(prompts.size() * context);
  for (const auto& p : prompts) {
    std::vector<int64_t> row = tokenizer_.encode_for_model(p, static_cast<int>(context));
    ids.insert(ids.end(), row.begin(), row.end());
  }
  const int64_t n = static_cast<int64_t>(prompts.size());
  const at::Tensor tokens = torch::tensor(ids, torch::kLong).view({n, context});
  torch::NoGradGuard no_grad;
  // A bounded number of prompts per pass: the text tower's activations grow
  // with the batch (~4 MB a prompt for ViT-B/16), and one pass over 103
  // queries × 85 templates needed 13–24 GB (issue 25). Rows are independent,
  // so the result is the same up to the GEMM's fp32 blocking. Each pass is
  // also cut to its longest prompt: under the causal mask the EOT token
  // never sees the padding after it, and CLIP's prompts are ~10 of the 77
  // tokens, so the official code's full-width passes are mostly padding.
  std::vector<at::Tensor> parts;
  for (int64_t begin = 0; begin < n; begin += prompts_per_pass_) {
    at::Tensor chunk = tokens.slice(0, begin, std::min(n, begin + prompts_per_pass_));
    const int64_t width = chunk.argmax(-1).max().item<int64_t>() + 1;  // EOT has the largest id (spec §1)
    chunk = chunk.slice(1, 0, width);
    parts.push_back(model_.encode_text(chunk.to(model_.device())).to(torch::kFloat));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts);
}

at::Tensor TextEncoder::encode_classes(const std::vector<std::string>& class_strings,
                                       const std::vector<std::string>& templates,
                                       SynonymMode synonyms) const {
  if (templates.empty()) throw Error("no prompt templates given");
  // Every prompt of every class in one batch; remember which rows belong to
  // which class so the averaging below stays a cheap segmented mean.
  std::vector<std::string> prompts;
  std::vector<std::vector<int64_t>> rows_of_class(class_strings.size());
  for (size_t c = 0; c < class_strings.size(); ++c) {
    std::vector<std::string> names = synonyms == SynonymMode::Joint
                                         ? std::vector<std::string>{class_strings[c]}
                                         : split_synonyms(class_strings[c]);
    if (names.empty()) throw Error("empty class name at index " + std::to_string(c));
    // Paper mode (spec §4): each synonym is its own class text; its template
    // average is normalised, then the synonyms are averaged and normalised.
    for (const auto& name : names)
      for (const auto& t : templates) {
        rows_of_class[c].push_back(static_cast<int64_t>(prompts.size()));
        prompts.push_back(fill_template(t, name));
      }
  }
  if (prompts.empty()) return torch::zeros({0, 0});
  const at::Tensor features = l2_normalize(encode_prompts(prompts));
  const int64_t per_name = static_cast<int64_t>(templates.size());
  std::vector<at::Tensor> out;
  out.reserve(class_strings.size());
  for (const auto& rows : rows_of_class) {
    at::Tensor f = features.index_select(0, torch::tensor(rows, torch::kLong).to(features.device()));
    // [names * templates, E] → per-name template mean, normalised → mean over names.
    at::Tensor per_synonym = l2_normalize(f.view({-1, per_name, f.size(1)}).mean(1));
    out.push_back(l2_normalize(per_synonym.mean(0)));
  }
  return torch::stack(out);
}

}  // namespace clipes

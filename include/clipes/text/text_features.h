// Text features for class prompts (spec §4): a class string placed into one or
// more templates, encoded, L2-normalised, averaged over templates and
// normalised again — OpenAI's zero-shot classifier recipe.
//
// Synonyms are written inside a class string, comma-separated
// ("person with clothes,people,human"). The reference puts the WHOLE string
// into the template once (SynonymMode::Joint, parity); the paper embeds each
// synonym separately and averages the unit embeddings (SynonymMode::Average).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace at { class Tensor; }

namespace clipes {

class ClipModel;
class BpeTokenizer;

enum class SynonymMode { Joint, Average };
// "joint" | "average" → SynonymMode; throws clipes::Error otherwise.
SynonymMode parse_synonym_mode(const std::string& text);

// "a photo of a {}." + "dog" → "a photo of a dog." Every "{}" is replaced;
// a template without "{}" is an error naming it.
std::string fill_template(const std::string& templ, const std::string& class_text);

class TextEncoder {
 public:
  // prompts_per_pass bounds the text tower's batch, and so its memory:
  // 128 prompts ≈ 0.5 GB of activations for ViT-B/16 whatever the number of
  // classes and templates (the official code encodes class by class).
  static constexpr int64_t kDefaultPromptsPerPass = 128;
  TextEncoder(const ClipModel& model, const BpeTokenizer& tokenizer,
              int64_t prompts_per_pass = kDefaultPromptsPerPass);
  // Unit-norm features [N, E] float32 on the model's device, one row per
  // class string, averaged over `templates` (spec §4). Prompts that do not fit
  // the context are an error naming the prompt.
  at::Tensor encode_classes(const std::vector<std::string>& class_strings,
                            const std::vector<std::string>& templates,
                            SynonymMode synonyms = SynonymMode::Joint) const;
  // Raw encode_text of finished prompts, [N, E] float32, NOT normalised.
  at::Tensor encode_prompts(const std::vector<std::string>& prompts) const;

 private:
  const ClipModel& model_;
  const BpeTokenizer& tokenizer_;
  int64_t prompts_per_pass_;
};

// Splits "a,b , c" into {"a", "b", "c"} (trimmed, empty pieces dropped).
std::vector<std::string> split_synonyms(const std::string& class_string);

}  // namespace clipes

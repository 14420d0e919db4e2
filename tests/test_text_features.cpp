#include <gtest/gtest.h>
#include <torch/torch.h>

#include "clipes/model/clip_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/text_features.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

struct Fixture {
  std::shared_ptr<ClipModel> model = ClipModel::load(test::tiny_clip_path());
  BpeTokenizer tokenizer = BpeTokenizer::from_file(test::vocab_path());
};
Fixture& fixture() {
  static Fixture f;
  return f;
}
at::Tensor unit(const at::Tensor& x) { return x / x.norm(2, -1, true); }

TEST(TextFeatures, FillTemplateAndSplitSynonyms) {
  EXPECT_EQ(fill_template("a clean origami {}.", "dog"), "a clean origami dog.");
  EXPECT_EQ(fill_template("{} and {}", "x"), "x and x");
  EXPECT_THROW(fill_template("no placeholder", "x"), Error);
  EXPECT_EQ(split_synonyms("person with clothes,people , human,"),
            (std::vector<std::string>{"person with clothes", "people", "human"}));
  EXPECT_EQ(parse_synonym_mode("average"), SynonymMode::Average);
  EXPECT_THROW(parse_synonym_mode("mean"), Error);
}

TEST(TextFeatures, JointModePutsTheWholeStringInTheTemplateOnce) {
  auto& f = fixture();
  TextEncoder encoder(*f.model, f.tokenizer);
  const at::Tensor joint = encoder.encode_classes({"person with clothes,people,human"}, {"a clean origami {}."});
  const at::Tensor direct = unit(encoder.encode_prompts({"a clean origami person with clothes,people,human."}));
  EXPECT_LT((joint - direct).abs().max().item<double>(), 1e-6);
  EXPECT_NEAR(joint.norm().item<double>(), 1.0, 1e-5);
}

TEST(TextFeatures, AverageModeAveragesUnitSynonymEmbeddings) {
  auto& f = fixture();
  TextEncoder encoder(*f.model, f.tokenizer);
  const std::vector<std::string> templates = {"a photo of a {}.", "a clean origami {}."};
  const at::Tensor averaged = encoder.encode_classes({"cat,kitten"}, templates, SynonymMode::Average);
  // By hand: per synonym, mean of unit template embeddings, normalised; then mean, normalised.
  auto per_name = [&](const std::string& n) {
    return unit(unit(encoder.encode_prompts({fill_template(templates[0], n), fill_template(templates[1], n)})).mean(0));
  };
  const at::Tensor expected = unit((per_name("cat") + per_name("kitten")) / 2).unsqueeze(0);
  EXPECT_LT((averaged - expected).abs().max().item<double>(), 1e-6);
  // A class without synonyms is the same in both modes.
  const at::Tensor a = encoder.encode_classes({"dog"}, templates, SynonymMode::Average);
  const at::Tensor j = encoder.encode_classes({"dog"}, templates, SynonymMode::Joint);
  EXPECT_LT((a - j).abs().max().item<double>(), 1e-6);
  // ... and a class with synonyms is not.
  const at::Tensor joint = encoder.encode_classes({"cat,kitten"}, templates, SynonymMode::Joint);
  EXPECT_GT((averaged - joint).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace clipes

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {
const BpeTokenizer& official() {
  static BpeTokenizer t = BpeTokenizer::from_file(test::vocab_path());
  return t;
}
}  // namespace

TEST(BpeTokenizer, EveryFixtureStringEncodesToTheOfficialIds) {
  const auto j = nlohmann::json::parse(read_file(test::shared("fixtures/clip/tokens.json")));
  ASSERT_GE(j.size(), 10u);
  for (const auto& [text, ids] : j.items()) {
    EXPECT_EQ(official().encode(text), ids.get<std::vector<int64_t>>()) << "text: " << text;
  }
}

TEST(BpeTokenizer, VocabularyHasClipSizeAndSpecialTokens) {
  EXPECT_EQ(official().vocab_size(), 49408);
  EXPECT_EQ(official().sot_token(), 49406);
  EXPECT_EQ(official().eot_token(), 49407);
}

TEST(BpeTokenizer, ModelInputIsSotIdsEotZeroPadded) {
  auto ids = official().encode_for_model("a clean origami dog.");
  ASSERT_EQ(ids.size(), 77u);
  auto plain = official().encode("a clean origami dog.");
  EXPECT_EQ(ids[0], 49406);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(ids[i + 1], plain[i]);
  EXPECT_EQ(ids[plain.size() + 1], 49407);
  for (size_t i = plain.size() + 2; i < ids.size(); ++i) EXPECT_EQ(ids[i], 0);
}

TEST(BpeTokenizer, TooLongIsAnErrorUnlessTruncating) {
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "dog ";
  EXPECT_THROW(official().encode_for_model(long_text), Error);
  auto ids = official().encode_for_model(long_text, 77, true);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.back(), 49407);
}

TEST(BpeTokenizer, CleaningUnescapesCollapsesAndLowercases) {
  EXPECT_EQ(BpeTokenizer::clean("  Rock &amp;amp; ROLL\t\n x "), "rock & roll x");
  EXPECT_EQ(BpeTokenizer::clean("&#233;t&#xE9; &eacute;"), "été é");
  EXPECT_EQ(BpeTokenizer::clean("CAFÉ"), "café");
}

TEST(BpeTokenizer, DecodeInvertsEncode) {
  EXPECT_EQ(official().decode(official().encode("a photo of 2 cats, isn't it?")),
            "a photo of 2 cats , isn 't it ? ");  // 's/'t are words of their own (spec §2)
}

TEST(BpeTokenizer, MissingOrCorruptVocabularyNamesTheFile) {
  try {
    BpeTokenizer::from_file("/nonexistent/vocab.txt.gz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/vocab.txt.gz"), std::string::npos);
  }
  std::string dir = test::make_temp_dir("bpe-bad");
  write_file_atomic(dir + "/bad.gz", "not a vocabulary");
  EXPECT_THROW(BpeTokenizer::from_file(dir + "/bad.gz"), Error);
}

TEST(BpeTokenizer, LearnedVocabularyRoundTripsThroughTheFileFormat) {
  std::vector<std::string> texts = {"a striped star on grass.", "a dotted ring on water.",
                                    "a striped ring and a star."};
  // The corpus runs out of pairs before 40 merges: learning stops when every
  // word is a single symbol.
  auto merges = BpeTokenizer::learn_merges(texts, 40);
  ASSERT_GT(merges.size(), 10u);
  ASSERT_LE(merges.size(), 40u);
  EXPECT_EQ(merges, BpeTokenizer::learn_merges(texts, 40));  // deterministic
  std::string dir = test::make_temp_dir("bpe-learn");
  BpeTokenizer::write_vocab_file(dir + "/toy.txt.gz", merges);
  BpeTokenizer toy = BpeTokenizer::from_file(dir + "/toy.txt.gz");
  EXPECT_EQ(toy.vocab_size(), static_cast<int64_t>(256 * 2 + merges.size() + 2));
  // A frequent word becomes one token once its merges are learned.
  auto ids = toy.encode("star");
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(toy.decode(ids), "star ");
}

// TagCLIP's stages (methods/tag_clip.h) on hand-worked small cases: the
// official code cannot run here, so each stage is checked against values
// worked out by hand from the official classify.py's arithmetic. The four
// quirks found by running it side by side elsewhere (issue 25, segment-spec
// §5 a–d) are checked on the fixture re-stacked to ViT-B/16's 12 blocks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "clipes/io/preprocess.h"
#include "clipes/io/image_decode.h"
#include "clipes/model/checkpoint.h"
#include "clipes/model/clip_model.h"
#include "clipes/model/last_block.h"
#include "clipes/methods/tag_clip.h"
#include "clipes/pipeline/tag.h"
#include "clipes/text/class_config.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/text_features.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

at::Tensor t2(std::vector<float> v, int64_t r, int64_t c) { return torch::tensor(v).view({r, c}); }

TEST(TagClip, AttentionVoteKeepsPairsAboveTheirBlockMeanInEnoughBlocks) {
  // Block means are all 0.5. Above the mean: b0 (0,0); b1 (0,0), (1,1); b2 (0,1), (1,1).
  // Votes: (0,0) 2, (0,1) 1, (1,0) 0, (1,1) 2.
  const std::vector<at::Tensor> blocks = {t2({0.9f, 0.1f, 0.5f, 0.5f}, 2, 2), t2({0.6f, 0.4f, 0.2f, 0.8f}, 2, 2),
                                          t2({0.3f, 0.7f, 0.4f, 0.6f}, 2, 2)};
  // Mean of blocks 1..2 = [[0.45, 0.55], [0.3, 0.7]], kept where votes ≥ 2.
  const at::Tensor a = attention_vote_affinity(blocks, 1, 3, 2);
  EXPECT_TRUE(torch::allclose(a, t2({0.45f, 0.f, 0.f, 0.7f}, 2, 2))) << a;
  // One vote suffices: (0,1) survives too.
  EXPECT_TRUE(torch::allclose(attention_vote_affinity(blocks, 1, 3, 1), t2({0.45f, 0.55f, 0.f, 0.7f}, 2, 2)));
  EXPECT_THROW(attention_vote_affinity(blocks, 2, 2, 1), Error);
  EXPECT_THROW(attention_vote_affinity(blocks, 0, 4, 1), Error);
}

TEST(TagClip, BoxMaskedRefinementPropagatesOnlyFromTheBoxes) {
  // 3×3 grid, three queries. Query 0 peaks at (1,0) = 1 and (1,1) = 0.8:
  // normalised mean 0.2 → u8 threshold int(0.2·255) = 51 → one contour,
  // box rows [1, 2), columns [0, 2) (the clamp min(x+w, 2) does not bite).
  at::Tensor coarse = torch::zeros({9, 3});
  coarse[3][0] = 1.0f;
  coarse[4][0] = 0.8f;
  coarse.select(1, 1).fill_(-1.0f);   // a non-positive query: left as propagated
  coarse.select(1, 2).fill_(0.25f);   // a flat positive query: 0/0 → no box → zeros
  const at::Tensor affinity = torch::full({9, 9}, 1.0f / 9);
  const at::Tensor refined = box_masked_refinement(coarse, coarse, affinity, 3, 3);
  // Every patch gets (1/9)·(1 + 0.8) = 0.2 from the two boxed patches.
  EXPECT_TRUE(torch::allclose(refined.select(1, 0), torch::full({9}, 0.2f))) << refined;
  EXPECT_TRUE(torch::equal(refined.select(1, 1), coarse.select(1, 1)));
  EXPECT_TRUE(torch::equal(refined.select(1, 2), torch::zeros({9})));
  // The box, not the map, is what propagates: the unboxed (2,2) patch's mass never arrives.
  coarse[8][0] = 0.15f;  // below the threshold (u8 38 of max 255 at mean ~0.217 → t 55)
  const at::Tensor again = box_masked_refinement(coarse, coarse, affinity, 3, 3);
  EXPECT_TRUE(torch::allclose(again.select(1, 0), torch::full({9}, 0.2f))) << again;
}

TEST(TagClip, CropPlanIsTheRegionsBoxWithTheOfficialClamp) {
  // 4×4 map, > 0.5 after min-max at (1,1), (1,2), (2,1): box x [1,3), y [1,3).
  at::Tensor map = torch::zeros({16});
  map[5] = 1.0f, map[6] = 0.9f, map[9] = 0.7f, map[10] = 0.4f;
  const CropPlan plan = crop_plan(map, 4, 4, 2);
  ASSERT_TRUE(plan.valid);
  EXPECT_EQ(plan.x0, 1);
  EXPECT_EQ(plan.x1, 3);
  EXPECT_EQ(plan.y0, 1);
  EXPECT_EQ(plan.y1, 3);
  // Region [[1, 1], [1, 0]] at 2×2, then nearest to 4×4 doubles each cell.
  EXPECT_TRUE(torch::equal(plan.keep, torch::tensor({true, true, true, false})));
  const CropPlan big = crop_plan(map, 4, 4, 4);
  EXPECT_EQ(big.keep.sum().item<int64_t>(), 12);
  // Only the last column: its end clamps to 3 = its start, an empty box.
  at::Tensor edge = torch::zeros({16});
  edge[3] = 1.0f;
  EXPECT_FALSE(crop_plan(edge, 4, 4, 2).valid);
  EXPECT_FALSE(crop_plan(torch::ones({16}), 4, 4, 2).valid);  // flat: nothing above 0.5
}

TEST(TagClip, RelativeThresholdKeepsAtLeastTheBest) {
  // min 0.1, max 0.9 → threshold 0.5: 0.9 and 0.6 pass, 0.45 does not.
  EXPECT_EQ(relative_tags({0.1f, 0.9f, 0.6f, 0.45f}, 0.5), (std::vector<int>{1, 2}));
  // Equal maxima: the first is the argmax, as torch's and numpy's.
  EXPECT_EQ(relative_tags({0.3f, 0.3f, 0.3f}, 1.0), (std::vector<int>{0}));
  EXPECT_EQ(relative_tags({0.3f, 0.3f}, 0.5), (std::vector<int>{0}));
  EXPECT_EQ(relative_tags({0.2f, 0.4f, 0.1f}, 0.0), (std::vector<int>{0, 1}));
  EXPECT_TRUE(relative_tags({}, 0.5).empty());
}

// The tiny fixture's weights with its vision tower re-stacked to `layers`
// blocks: block i is the fixture's block i, or its block 8 + (i − 8) % 2 past
// the fixture's ten (TagCLIP's fixed numbers need 12). The recipe is the
// fixture's own weights, so attention has a trained model's structure.
std::shared_ptr<ClipModel> tiny_with_blocks(int layers, bool round_position_to_fp16 = false,
                                            EngineKind engine = EngineKind::Fused) {
  const Checkpoint source = load_checkpoint(test::tiny_clip_path());
  const std::string prefix = "visual.transformer.resblocks.";
  TensorMap t;
  for (const auto& [name, tensor] : source.tensors)
    if (name.rfind(prefix, 0) != 0) t[name] = tensor;
  for (int i = 0; i < layers; ++i) {
    const int from = i < 10 ? i : 8 + (i - 8) % 2;
    const std::string src = prefix + std::to_string(from) + ".", dst = prefix + std::to_string(i) + ".";
    for (const auto& [name, tensor] : source.tensors)
      if (name.rfind(src, 0) == 0) t[dst + name.substr(src.size())] = tensor;
  }
  t["visual.positional_embedding"] = t.at("visual.positional_embedding").to(torch::kFloat);
  if (round_position_to_fp16)
    t["visual.positional_embedding"] = t["visual.positional_embedding"].to(torch::kHalf).to(torch::kFloat);
  ModelOptions options;
  options.engine = engine;
  return std::make_shared<ClipModel>(t, ClipConfig::infer(t, "tiny re-stacked"), options);
}

at::Tensor tag_text(const ClipModel& model) {
  const BpeTokenizer tok = BpeTokenizer::from_file(test::vocab_path());
  return TextEncoder(model, tok).encode_classes({"dog", "person", "cat", "grass", "sky"}, {"a photo of a {}."});
}

at::Tensor coco_image() {
  return preprocess_to_patch_multiple(decode_image_rgb(test::shared("fixtures/parity/coco6/images/000000020992.jpg")), 16)
      .unsqueeze(0);
}

TEST(TagClip, SelfMaskedLastBlockVotesWithItsUnmaskedAttention) {
  // Quirk a (segment-spec §5): the official attention module hands out the
  // softmax WITHOUT the float mask, so the vote sees the last block's normal
  // attention while its output uses the self-mask. On both engines.
  for (const EngineKind engine : {EngineKind::Fused, EngineKind::Reference}) {
    SCOPED_TRACE(to_string(engine));
    const auto model = tiny_with_blocks(12, false, engine);
    DenseForwardOptions masked;
    masked.last_block.kind = LastBlockKind::SelfMasked;
    masked.keep_attention_from = 0;
    DenseForwardOptions standard = masked;
    standard.last_block.kind = LastBlockKind::Standard;
    const DenseForward m = model->dense_forward(coco_image(), masked);
    const DenseForward s = model->dense_forward(coco_image(), standard);
    ASSERT_EQ(m.attention.size(), 12u);
    ASSERT_EQ(s.attention.size(), 12u);
    for (size_t b = 0; b < 12; ++b)
      EXPECT_TRUE(torch::allclose(m.attention[b].to(torch::kFloat), s.attention[b].to(torch::kFloat), 1e-5, 1e-7))
          << "block " << b;
    // Not the near-identity the mask makes: the last map spreads its mass.
    EXPECT_LT(m.attention.back()[0].diagonal().mean().item<float>(), 0.9f);
    // The output is the masked block's: the features differ from the standard block's.
    EXPECT_GT((m.patch_features - s.patch_features).abs().max().item<float>(), 1e-3f);
  }
}

TEST(TagClip, PositionEmbeddingIsUsedAsStoredAtTheNativeSize) {
  // Quirk b: at 224×224 (every crop re-scoring pass, and a 224 image) the
  // official code adds the position embedding as stored; elsewhere it resizes
  // and rounds to fp16 as CLIP-ES does. A model whose embedding is already
  // fp16-exact is therefore the same model at other sizes' rounding but not
  // at 224: its scores there must move, by rounding noise only.
  const auto exact = tiny_with_blocks(12), rounded = tiny_with_blocks(12, true);
  const at::Tensor image =
      preprocess_224(decode_image_rgb(test::shared("fixtures/parity/coco6/images/000000020992.jpg"))).unsqueeze(0);
  const at::Tensor text = tag_text(*exact);
  const TagResult a = TagClip(*exact, text, 3).classify(image), b = TagClip(*rounded, text, 3).classify(image);
  float moved = 0;
  for (size_t c = 0; c < 3; ++c) moved = std::max(moved, std::abs(a.scores[c] - b.scores[c]));
  EXPECT_GT(moved, 0.f);
  EXPECT_LT(moved, 1e-3f);
}

TEST(TagClip, OfficialBlockNumbersAreFixedAtElevenAndEight) {
  // Quirk c: on 12 blocks the official numbering is ours; on the fixture's 10
  // it masks nothing and averages block 8 alone, so the scores move; below 10
  // or above 12 blocks it is undefined and refused.
  TagClipConfig official;
  official.block_numbers = TagBlockNumbers::Official;
  const at::Tensor image = coco_image();
  const auto twelve = tiny_with_blocks(12);
  const at::Tensor text = tag_text(*twelve);
  EXPECT_EQ(TagClip(*twelve, text, 3, official).classify(image).scores, TagClip(*twelve, text, 3).classify(image).scores);
  const auto ten = ClipModel::load(test::tiny_clip_path());
  const TagResult o = TagClip(*ten, text, 3, official).classify(image), f = TagClip(*ten, text, 3).classify(image);
  ASSERT_EQ(o.scores.size(), 3u);
  EXPECT_NE(o.scores, f.scores);
  for (float s : o.scores) EXPECT_TRUE(std::isfinite(s) && s >= 0 && s <= 1) << s;
  EXPECT_THROW(TagClip(*tiny_with_blocks(9), text, 3, official), Error);
  EXPECT_THROW(TagClip(*tiny_with_blocks(13), text, 3, official), Error);
  EXPECT_NO_THROW(TagClip(*tiny_with_blocks(13), text, 3));
}

TEST(TagClip, ClassifierScoresEveryClassAndTagsAtLeastOne) {
  const auto model = ClipModel::load(test::tiny_clip_path());
  const at::Tensor image = coco_image();
  const at::Tensor text = tag_text(*model);
  const TagClip tagger(*model, text, 3);
  const TagResult a = tagger.classify(image), b = tagger.classify(image);
  ASSERT_EQ(a.scores.size(), 3u);
  EXPECT_FALSE(a.tags.empty());
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.tags, relative_tags(a.scores, 0.5));
  for (float s : a.scores) EXPECT_TRUE(s >= 0 && s <= 1) << s;
  TagClipConfig no_crop;
  no_crop.crop_rescoring = false;
  const TagResult c = TagClip(*model, text, 3, no_crop).classify(image);
  ASSERT_EQ(c.scores.size(), 3u);
  EXPECT_THROW(TagClip(*model, text, 6), Error);
}

TEST(TagClip, CocoQueriesUseTagClipsWordsUnlessAskedForOurs) {
  // Quirk d: TagCLIP's COCO list says motorbike, aeroplane, sofa,
  // pottedplant, diningtable, tvmonitor; tags are still written with our names.
  const ClassConfig coco = ClassConfig::resolve("coco");
  const std::vector<std::string> official = tag_queries(coco), ours = tag_queries(coco, TagNames::ClassNames);
  ASSERT_EQ(official.size(), coco.classes.size() + coco.background.size());
  EXPECT_EQ(official[3], "motorbike");
  EXPECT_EQ(official[4], "aeroplane");
  EXPECT_EQ(official[62], "tvmonitor");
  EXPECT_EQ(ours[3], "motorcycle");
  EXPECT_EQ(ours[62], "tv");
  EXPECT_EQ(official.back(), coco.background.back());
  int differ = 0;
  for (size_t i = 0; i < official.size(); ++i) differ += official[i] != ours[i];
  EXPECT_EQ(differ, 6);
  EXPECT_EQ(tag_class_names(coco)[3], "motorcycle");
  // The field survives the class file round trip run.json relies on, and an empty one is refused.
  EXPECT_EQ(ClassConfig::parse(coco.to_json_text(), "again").classes[3].tag_name, "motorbike");
  EXPECT_THROW(ClassConfig::parse(R"({"classes": [{"name": "a", "tag_name": " "}]})", "f.json"), Error);
}

TEST(TagClip, TextEncodingInBoundedPassesGivesTheSameFeatures) {
  // Issue 25 item 5: prompts go through the text tower a bounded number at a
  // time, each pass only as wide as its longest prompt (the causal mask makes
  // the tokens after EOT irrelevant); the features are the one-pass ones.
  const auto model = ClipModel::load(test::tiny_clip_path());
  const BpeTokenizer tok = BpeTokenizer::from_file(test::vocab_path());
  const std::vector<std::string> classes = {"dog", "person with clothes,people,human", "potted plant", "sky"};
  const std::vector<std::string> templates = {"a photo of a {}.", "a bad photo of the {}.", "{}", "art of the {}."};
  const at::Tensor one_pass = TextEncoder(*model, tok, 1000).encode_classes(classes, templates);
  const at::Tensor bounded = TextEncoder(*model, tok, 3).encode_classes(classes, templates);
  EXPECT_TRUE(torch::allclose(one_pass, bounded, 1e-5, 1e-6)) << (one_pass - bounded).abs().max();
  // Against the full 77-token context, straight through the model.
  const std::vector<int64_t> ids = tok.encode_for_model("a photo of a dog.", 77);
  const at::Tensor full = model->encode_text(torch::tensor(ids, torch::kLong).view({1, 77})).to(torch::kFloat);
  EXPECT_TRUE(torch::allclose(TextEncoder(*model, tok).encode_prompts({"a photo of a dog."}), full, 1e-5, 1e-6));
  EXPECT_THROW(TextEncoder(*model, tok, 0), Error);
}

}  // namespace
}  // namespace clipes

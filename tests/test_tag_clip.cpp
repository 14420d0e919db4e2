// TagCLIP's stages (methods/tag_clip.h) on hand-worked small cases: the
// official code could not be run here, so each stage is checked against
// values worked out by hand from the official classify.py's arithmetic.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "clipes/io/preprocess.h"
#include "clipes/io/image_decode.h"
#include "clipes/model/clip_model.h"
#include "clipes/model/last_block.h"
#include "clipes/methods/tag_clip.h"
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

TEST(TagClip, SelfMaskedLastBlockAttendsToItselfAndEveryBlockIsKept) {
  const auto model = ClipModel::load(test::tiny_clip_path());
  const at::Tensor image =
      preprocess_ceil16(decode_image_rgb(test::shared("fixtures/parity/coco6/images/000000020992.jpg"))).unsqueeze(0);
  DenseForwardOptions o;
  o.last_block.kind = LastBlockKind::SelfMasked;
  o.keep_attention_from = 0;
  const DenseForward f = model->dense_forward(image, o);
  ASSERT_EQ(static_cast<int>(f.attention.size()), model->num_vision_layers());
  // exp(−100) off the diagonal: the last block's attention is the identity.
  const at::Tensor last = f.attention.back()[0];
  EXPECT_GT(last.diagonal().min().item<float>(), 0.999f);

  // The whole classifier: one score per class, tags never empty, deterministic.
  const BpeTokenizer tok = BpeTokenizer::from_file(test::vocab_path());
  const at::Tensor text =
      TextEncoder(*model, tok).encode_classes({"dog", "person", "cat", "grass", "sky"}, {"a photo of a {}."});
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

}  // namespace
}  // namespace clipes

// The fused CPU engine (engine/vit_engine.h) against LibTorch's blocks, and
// the hand-derived last-block backward against autograd
// (docs/last-block-backward.md). Tolerances: docs/testing.md.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>

#include "clipes/cam/softmax_gradcam.h"
#include "clipes/engine/vit_engine.h"
#include "clipes/io/npy.h"
#include "clipes/model/checkpoint.h"
#include "clipes/model/clip_model.h"
#include "clipes/model/residual_attention_block.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

std::shared_ptr<ClipModel> tiny(EngineKind engine, Precision precision = Precision::FP32) {
  ModelOptions o;
  o.precision = precision;
  o.engine = engine;
  return ClipModel::load(test::tiny_clip_path(), o);
}

std::shared_ptr<ClipModel> full_size_random(EngineKind engine) {
  const ClipConfig config = ClipConfig::vit_b_16();
  static const TensorMap weights = random_clip_weights(config, 7);
  ModelOptions o;
  o.engine = engine;
  return std::make_shared<ClipModel>(weights, config, o);
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}
double rel_err(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor w = want.to(torch::kDouble);
  return (got.to(torch::kDouble) - w).norm().item<double>() / w.norm().item<double>();
}

at::Tensor fixture_input() {
  return read_npy(test::shared("fixtures/tiny-clip/reference/input_ceil16_000000005001.npy")).to(torch::kFloat);
}

TEST(Engine, ModelsGetTheEngineOnlyWhereItApplies) {
  EXPECT_NE(tiny(EngineKind::Fused)->engine(), nullptr);
  EXPECT_EQ(tiny(EngineKind::Reference)->engine(), nullptr);
  EXPECT_EQ(parse_engine("fused"), EngineKind::Fused);
  EXPECT_EQ(parse_engine("reference"), EngineKind::Reference);
  EXPECT_THROW(parse_engine("fast"), Error);
}

// Every block, every tap: tokens, per-block maps, their running sum, ln_2.
TEST(Engine, TrunkMatchesLibTorchBlocksOnTheFixture) {
  torch::NoGradGuard no_grad;
  const auto fused = tiny(EngineKind::Fused), ref = tiny(EngineKind::Reference);
  const at::Tensor x = ref->embed_image(fixture_input().unsqueeze(0), true);
  const int layers = ref->num_vision_layers();
  TrunkTaps taps;
  taps.attention_from = 3;
  taps.ln2_taps = {2, layers - 1};
  const TrunkOutput a = fused->run_trunk(x, 0, layers, taps), b = ref->run_trunk(x, 0, layers, taps);
  EXPECT_LT(rel_err(a.x, b.x), 1e-5);
  ASSERT_EQ(a.attention.size(), b.attention.size());
  for (size_t i = 0; i < a.attention.size(); ++i) EXPECT_LT(max_abs(a.attention[i], b.attention[i]), 1e-6) << i;
  for (int t : taps.ln2_taps) EXPECT_LT(rel_err(a.ln2.at(t), b.ln2.at(t)), 1e-5) << t;
  taps.attention_sum_only = true;
  const TrunkOutput s = fused->run_trunk(x, 0, layers, taps), r = ref->run_trunk(x, 0, layers, taps);
  EXPECT_EQ(s.attention_count, layers - 3);
  EXPECT_EQ(r.attention_count, layers - 3);
  EXPECT_LT(max_abs(s.attention_sum, r.attention_sum), 1e-5);
  // The encode_image path (all blocks, CLS) agrees with the reference features.
  EXPECT_LT(rel_err(fused->encode_image(fixture_input().unsqueeze(0)),
                    ref->encode_image(fixture_input().unsqueeze(0))), 1e-5);
}

TEST(Engine, AttentionMaskIsAnAdditiveScoreBias) {
  torch::NoGradGuard no_grad;
  const auto fused = tiny(EngineKind::Fused), ref = tiny(EngineKind::Reference);
  const at::Tensor x = ref->embed_image(fixture_input().unsqueeze(0), true);
  const int64_t l = x.size(1);
  TrunkTaps taps;
  taps.attention_from = 0;
  taps.attention_mask = (1 - torch::eye(l)) * -100.0;  // TagCLIP's self-mask, the strongest bias used
  const TrunkOutput a = fused->run_trunk(x, 0, 4, taps), b = ref->run_trunk(x, 0, 4, taps);
  EXPECT_LT(rel_err(a.x, b.x), 1e-5);
  for (size_t i = 0; i < a.attention.size(); ++i) EXPECT_LT(max_abs(a.attention[i], b.attention[i]), 1e-6);
  // and it did something: the diagonal carries (almost) all the weight
  EXPECT_GT(a.attention[0][0].diagonal().min().item<float>(), 0.99f);
}

// VitEngine::last_block_patch_gradient against autograd through LibTorch's
// block on the same input and the same K upstream gradients.
void expect_patch_gradient_matches_autograd(const ClipModel& fused, const ClipModel& ref, const at::Tensor& x,
                                            int k) {
  const int last = ref.num_vision_layers() - 1;
  const int64_t l = x.size(0), d = x.size(1);
  torch::manual_seed(3);
  at::Tensor g = torch::randn({k, l, d});
  g.select(1, 0).zero_();  // CLIP-ES never reads the CLS output
  at::Tensor want = torch::empty({k, d});
  {
    torch::AutoGradMode grad(true);
    at::Tensor a = ref.vision_block_ln1(last, x.unsqueeze(0)).detach().requires_grad_(true);
    const at::Tensor out = ref.forward_after_ln1(last, x.unsqueeze(0), a)[0];
    for (int c = 0; c < k; ++c) {
      const at::Tensor grad = torch::autograd::grad({(out * g[c]).sum()}, {a}, {}, true)[0];
      want[c] = grad[0].slice(0, 1).sum(0);
    }
  }
  torch::NoGradGuard no_grad;
  const SavedBlockForward saved = fused.engine()->forward_saved(x);
  const at::Tensor got = fused.engine()->last_block_patch_gradient(saved, g);
  double worst = 0;
  for (int c = 0; c < k; ++c) {
    worst = std::max(worst, rel_err(got[c], want[c]));
    EXPECT_LT(rel_err(got[c], want[c]), 1e-5) << "label " << c;
  }
  std::cout << "[engine] hand backward vs autograd, L = " << l << ", D = " << d << ": worst relative error "
            << worst << "\n";
}

TEST(Engine, HandBackwardMatchesAutogradOnTheFixture) {
  const auto fused = tiny(EngineKind::Fused), ref = tiny(EngineKind::Reference);
  torch::NoGradGuard no_grad;
  const at::Tensor x0 = ref->embed_image(fixture_input().unsqueeze(0), true);
  const at::Tensor x = ref->run_trunk(x0, 0, ref->num_vision_layers() - 1).x[0].contiguous();
  expect_patch_gradient_matches_autograd(*fused, *ref, x, 5);  // 5 labels: two chunks
}

TEST(Engine, HandBackwardMatchesAutogradOnAFullSizeRandomModel) {
  const auto fused = full_size_random(EngineKind::Fused), ref = full_size_random(EngineKind::Reference);
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const at::Tensor image = torch::randn({1, 3, 224, 288});
  const at::Tensor x = ref->run_trunk(ref->embed_image(image, true), 0, 11).x[0].contiguous();
  expect_patch_gradient_matches_autograd(*fused, *ref, x, 2);
}

// The head (ln_post, mean, proj, normalisation, softmax) against autograd.
TEST(Engine, HandHeadGradientMatchesAutograd) {
  const auto ref = tiny(EngineKind::Reference);
  torch::manual_seed(9);
  const int64_t l = 1 + 14 * 18, d = ref->config().vision.width, e = ref->config().embed_dim;
  const at::Tensor x_out = torch::randn({l, d});
  const at::Tensor text = torch::nn::functional::normalize(torch::randn({3 + 4, e}),
                                                           torch::nn::functional::NormalizeFuncOptions().dim(-1));
  for (bool softmax : {true, false}) {
    const ClipHeadGradient hand = clip_head_gradient(*ref, x_out, text, 3, softmax);
    torch::AutoGradMode grad(true);
    const at::Tensor x = x_out.clone().requires_grad_(true);
    at::Tensor g = ref->vision_project(ref->vision_ln_post(x.slice(0, 1)).mean(0));
    g = g / g.norm();
    const at::Tensor logits = ref->logit_scale_exp() * torch::matmul(g, text.t());
    const at::Tensor scores = softmax ? torch::softmax(logits, -1) : logits;
    for (int c = 0; c < 3; ++c) {
      const at::Tensor want = torch::autograd::grad({scores[c]}, {x}, {}, true)[0];
      EXPECT_LT(rel_err(hand.grad_output[c], want), 1e-5) << "label " << c << " softmax " << softmax;
    }
    EXPECT_LT(max_abs(hand.probabilities, torch::softmax(logits, -1).detach()), 1e-6);
  }
}

// The whole of SoftmaxGradCam: fused engine vs reference engine.
void expect_gradcam_engines_agree(const ClipModel& fused, const ClipModel& ref, const at::Tensor& image,
                                  int k, double cam_tol) {
  const int64_t e = ref.config().embed_dim;
  torch::manual_seed(4);
  const at::Tensor text = torch::nn::functional::normalize(torch::randn({k + 6, e}),
                                                           torch::nn::functional::NormalizeFuncOptions().dim(-1));
  const GradCamResult a = SoftmaxGradCam(fused).compute(image, text, k);
  const GradCamResult b = SoftmaxGradCam(ref).compute(image, text, k);
  EXPECT_LT(max_abs(a.cams, b.cams), cam_tol);
  EXPECT_LT(rel_err(a.weights, b.weights), 1e-4);
  std::cout << "[engine] fused vs reference GradCAM, " << image.size(1) << "x" << image.size(2)
            << ": CAMs max |diff| " << max_abs(a.cams, b.cams) << ", weights relative " << rel_err(a.weights, b.weights)
            << "\n";
  EXPECT_EQ(a.attention_count, b.attention_count);
  EXPECT_LT(max_abs(a.attention_sum, b.attention_sum), 1e-5);
  EXPECT_LT(max_abs(a.probabilities, b.probabilities), 1e-5);
}

TEST(Engine, GradCamOfBothEnginesAgreesOnTheFixture) {
  expect_gradcam_engines_agree(*tiny(EngineKind::Fused), *tiny(EngineKind::Reference), fixture_input(), 3, 1e-4);
}

TEST(Engine, GradCamOfBothEnginesAgreesOnAFullSizeRandomModel) {
  torch::manual_seed(6);
  expect_gradcam_engines_agree(*full_size_random(EngineKind::Fused), *full_size_random(EngineKind::Reference),
                               torch::randn({3, 224, 320}), 2, 1e-4);
}

// bf16: the engine keeps the residual stream in fp32, so it is at least as
// close to fp32 as LibTorch's bf16 blocks are (cos > 0.99 as ClipModel's test).
TEST(Engine, Bf16TrunkStaysCloseToFp32) {
  torch::NoGradGuard no_grad;
  const auto fp32 = tiny(EngineKind::Reference), bf16 = tiny(EngineKind::Fused, Precision::BF16);
  const at::Tensor a = fp32->encode_image(fixture_input().unsqueeze(0));
  const at::Tensor b = bf16->encode_image(fixture_input().unsqueeze(0)).to(torch::kFloat);
  EXPECT_GT(torch::cosine_similarity(a, b, -1).item<double>(), 0.99);
}

// The engine's bf16 keeps the residual stream, q·kᵀ and the softmax in fp32,
// so its trunk must be at least as close to fp32 as LibTorch's bf16 blocks.
TEST(Engine, Bf16TrunkIsNoFurtherFromFp32ThanLibTorchBf16) {
  torch::NoGradGuard no_grad;
  const auto fp32 = tiny(EngineKind::Reference);
  const auto fused = tiny(EngineKind::Fused, Precision::BF16), ref = tiny(EngineKind::Reference, Precision::BF16);
  const at::Tensor x = fp32->embed_image(fixture_input().unsqueeze(0), true);
  const int layers = fp32->num_vision_layers();
  TrunkTaps taps;
  taps.attention_from = 0;
  const TrunkOutput want = fp32->run_trunk(x, 0, layers - 1, taps);
  const TrunkOutput a = fused->run_trunk(x.to(torch::kBFloat16), 0, layers - 1, taps);
  const TrunkOutput b = ref->run_trunk(x.to(torch::kBFloat16), 0, layers - 1, taps);
  const double err_fused = rel_err(a.x, want.x), err_ref = rel_err(b.x, want.x);
  double map_fused = 0, map_ref = 0;
  for (size_t i = 0; i < want.attention.size(); ++i) {
    map_fused = std::max(map_fused, max_abs(a.attention[i], want.attention[i]));
    map_ref = std::max(map_ref, max_abs(b.attention[i], want.attention[i]));
  }
  std::cout << "[engine] bf16 trunk vs fp32: tokens relative error fused " << err_fused << ", LibTorch " << err_ref
            << "; attention max |diff| fused " << map_fused << ", LibTorch " << map_ref << "\n";
  EXPECT_LE(err_fused, err_ref);
  EXPECT_LE(map_fused, map_ref);
  // and through the last block's gradients (fp32 there in both)
  const int64_t e = fp32->config().embed_dim;
  torch::manual_seed(4);
  const at::Tensor text = torch::nn::functional::normalize(torch::randn({3 + 6, e}),
                                                           torch::nn::functional::NormalizeFuncOptions().dim(-1));
  const GradCamResult c32 = SoftmaxGradCam(*fp32).compute(fixture_input(), text, 3);
  const GradCamResult cf = SoftmaxGradCam(*fused).compute(fixture_input(), text, 3);
  const GradCamResult cr = SoftmaxGradCam(*ref).compute(fixture_input(), text, 3);
  std::cout << "[engine] bf16 GradCAM vs fp32: CAMs max |diff| fused " << max_abs(cf.cams, c32.cams) << ", LibTorch "
            << max_abs(cr.cams, c32.cams) << "; weights relative fused " << rel_err(cf.weights, c32.weights)
            << ", LibTorch " << rel_err(cr.weights, c32.weights) << "\n";
  // The weights differ by ~8 % in both (the patch mean cancels); the CAMs built from them are what is used.
  EXPECT_LE(max_abs(cf.cams, c32.cams), max_abs(cr.cams, c32.cams));
}

}  // namespace
}  // namespace clipes

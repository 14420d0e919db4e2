#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include "clipes/cam/attention_affinity.h"
#include "clipes/cam/box_mask.h"
#include "clipes/cam/cam_resize.h"

using namespace clipes;

namespace {

// Head-averaged softmax attention maps as SoftmaxGradCam returns them: [1, L, L].
std::vector<at::Tensor> random_attention(int blocks, int64_t l, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<at::Tensor> maps;
  for (int i = 0; i < blocks; ++i) maps.push_back(torch::softmax(torch::randn({1, l, l}) * 3, -1));
  return maps;
}

// Smooth blob-shaped grid CAMs, min-max normalised like SoftmaxGradCam's.
at::Tensor blob_cams(int k, int h, int w, uint64_t seed) {
  torch::manual_seed(seed);
  const at::Tensor ys = torch::arange(h, torch::kFloat).view({h, 1});
  const at::Tensor xs = torch::arange(w, torch::kFloat).view({1, w});
  std::vector<at::Tensor> cams;
  for (int c = 0; c < k; ++c) {
    const float cy = torch::rand({1}).item<float>() * h, cx = torch::rand({1}).item<float>() * w;
    at::Tensor cam = torch::exp(-((ys - cy).pow(2) + (xs - cx).pow(2)) / 4.0) + 0.05 * torch::rand({h, w});
    cam = cam - cam.min();
    cams.push_back(cam / (cam.max() + 1e-7));
  }
  return torch::stack(cams);
}

}  // namespace

TEST(AttentionAffinity, SinkhornRowsSumToOne) {
  torch::manual_seed(3);
  const at::Tensor a = torch::rand({12, 12}) + 0.01;
  const at::Tensor s = sinkhorn_normalize(a, 3);
  EXPECT_TRUE(torch::allclose(s.sum(1), torch::ones({12}), 0, 1e-5));
  // Columns are close to 1 too after 3 rounds, but only rows are exact.
  EXPECT_TRUE(torch::allclose(s.sum(0), torch::ones({12}), 0, 0.05));
}

TEST(AttentionAffinity, TransitionIsSymmetricSquareOfSymmetrisedSinkhorn) {
  const int h = 3, w = 4;
  const auto maps = random_attention(8, 1 + h * w, 7);
  const AttentionAffinity aff(maps, h, w);
  const at::Tensor s = aff.transition().to(at::kFloat);
  ASSERT_EQ(s.sizes(), (at::IntArrayRef{12, 12}));
  EXPECT_EQ(aff.transition().scalar_type(), at::kDouble);  // see attention_affinity.h: why float64
  EXPECT_TRUE(torch::allclose(s, s.t(), 0, 1e-6));
  // Built step by step from the spec (§6): mean, drop CLS, Sinkhorn 3×, symmetrise, square.
  at::Tensor mean = torch::stack(maps).mean(0)[0].slice(0, 1).slice(1, 1);
  at::Tensor p = sinkhorn_normalize(mean, 3);
  p = (p + p.t()) / 2;
  EXPECT_TRUE(torch::allclose(s, torch::matmul(p, p), 1e-5, 1e-7));
  // [L, L] maps (no batch dimension) give the same matrix.
  std::vector<at::Tensor> squeezed;
  for (const auto& m : maps) squeezed.push_back(m[0]);
  EXPECT_TRUE(torch::equal(AttentionAffinity(squeezed, h, w).transition(), aff.transition()));
}

TEST(AttentionAffinity, RejectsMapsOfTheWrongSize) {
  const auto maps = random_attention(2, 1 + 3 * 4, 1);
  EXPECT_THROW(AttentionAffinity(maps, 4, 4), std::runtime_error);
  EXPECT_THROW(AttentionAffinity({}, 3, 4), std::runtime_error);
}

TEST(AttentionAffinity, RefineMasksColumnsWithTheBoxAndNormalises) {
  const int h = 5, w = 6;
  const AttentionAffinity aff(random_attention(8, 1 + h * w, 11), h, w);
  const at::Tensor cams = blob_cams(1, h, w, 5);
  const at::Tensor refined = aff.refine(cams, 0.4);
  ASSERT_EQ(refined.sizes(), (at::IntArrayRef{1, h, w}));
  const at::Tensor b = box_mask(cams[0], 0.4);
  EXPECT_GT(b.sum().item<float>(), 0.0f);
  EXPECT_LT(b.sum().item<float>(), h * w);  // the box really removes something
  at::Tensor r = torch::matmul(aff.transition().to(at::kFloat) * b.reshape({1, -1}), cams[0].reshape({-1, 1}))
                     .reshape({h, w});
  r = r - r.min();
  r = r / (r.max() + 1e-7);
  EXPECT_TRUE(torch::allclose(refined[0], r, 1e-5, 1e-6));
  // max/(max + 1e-7) is just below 1 when S·(B⊙cam) is small, as in the reference.
  EXPECT_NEAR(refined.max().item<float>(), 1.0f, 1e-5);
  EXPECT_NEAR(refined.min().item<float>(), 0.0f, 1e-7);
}

TEST(AttentionAffinity, RefiningKCamsAtOnceEqualsOneAtATime) {
  const int h = 7, w = 5, k = 4;
  const AttentionAffinity aff(random_attention(8, 1 + h * w, 21), h, w);
  const at::Tensor cams = blob_cams(k, h, w, 9);
  const at::Tensor all = aff.refine(cams, 0.4);
  for (int c = 0; c < k; ++c)
    EXPECT_TRUE(torch::allclose(all[c], aff.refine(cams.slice(0, c, c + 1), 0.4)[0], 1e-5, 1e-6)) << c;
}

TEST(AttentionAffinity, AllZeroCamRefinesToZero) {
  const int h = 4, w = 4;
  const AttentionAffinity aff(random_attention(8, 1 + h * w, 2), h, w);
  at::Tensor cams = blob_cams(2, h, w, 4);
  cams[1].zero_();
  const at::Tensor refined = aff.refine(cams, 0.4);
  EXPECT_EQ(refined[1].abs().sum().item<float>(), 0.0f);
  EXPECT_NEAR(refined[0].max().item<float>(), 1.0f, 1e-5);
  EXPECT_EQ(aff.refine(torch::zeros({0, h, w}), 0.4).size(0), 0);
}

TEST(CamResize, EqualsOpenCvInterLinear) {
  torch::manual_seed(4);
  const at::Tensor cams = torch::rand({3, 5, 7});
  const at::Tensor out = resize_cams_bilinear(cams, 37, 51);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{3, 37, 51}));
  for (int c = 0; c < 3; ++c) {
    const at::Tensor src = cams[c].contiguous();
    const cv::Mat in(5, 7, CV_32FC1, src.data_ptr<float>());
    cv::Mat expected;
    cv::resize(in, expected, cv::Size(51, 37), 0, 0, cv::INTER_LINEAR);
    const at::Tensor got = out[c].contiguous();
    const cv::Mat got_mat(37, 51, CV_32FC1, got.data_ptr<float>());
    EXPECT_EQ(cv::norm(got_mat, expected, cv::NORM_INF), 0.0) << c;
  }
  // Half-pixel centres: a 1×2 map [0, 1] stretched to 1×4 gives 0, .25, .75, 1.
  const at::Tensor ramp = resize_cams_bilinear(torch::tensor({0.0f, 1.0f}).view({1, 1, 2}), 1, 4);
  EXPECT_TRUE(torch::allclose(ramp.view({4}), torch::tensor({0.0f, 0.25f, 0.75f, 1.0f})));
  // Double input is accepted and comes back float32.
  EXPECT_EQ(resize_cams_bilinear(cams.to(torch::kDouble), 10, 14).scalar_type(), at::kFloat);
}

// Parity with the official CLIP-ES on six real COCO images (spec §5–§7):
// fixtures/parity/coco6 holds what the reference computed with tiny-clip-a.pt.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <iostream>

#include "clipes/cam/mask_from_cams.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/npy.h"
#include "clipes/model/clip_model.h"
#include "clipes/methods/clip_es.h"
#include "clipes/pipeline/generate.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/class_config.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

std::string coco6(const std::string& rel) { return test::shared("fixtures/parity/coco6/" + rel); }

struct ParityCase {
  std::string stem;
  std::vector<std::string> labels;
};

std::vector<ParityCase> parity_cases() {
  std::vector<ParityCase> cases;
  const auto labels = nlohmann::json::parse(read_file(coco6("labels.json")));
  for (const auto& [stem, names] : labels.items()) cases.push_back({stem, names.get<std::vector<std::string>>()});
  return cases;
}

// The reference's setting for coco6: VOC classes, "a clean origami {}.", 25
// background words, θ = 0.4 — exactly prompts/voc.json.
struct Pipeline {
  std::shared_ptr<ClipModel> model;
  BpeTokenizer tokenizer;
  ClassConfig classes;
  std::unique_ptr<ClipEs> clip_es;
  explicit Pipeline(Precision precision)
      : model(ClipModel::load(test::tiny_clip_path(), ModelOptions{precision})),
        tokenizer(BpeTokenizer::from_file(test::vocab_path())),
        classes(ClassConfig::resolve("voc")),
        clip_es(std::make_unique<ClipEs>(*model, tokenizer, clip_es_config_for(classes))) {}
};

Pipeline& fp32_pipeline() {
  static Pipeline p(Precision::FP32);
  return p;
}

std::vector<int> mask_values(const std::vector<int>& class_indices) {
  std::vector<int> values;
  for (int c : class_indices) values.push_back(c + 1);
  return values;
}

TEST(ClipEsParity, CamsRefinedCamsAndLabelMapsMatchTheReference) {
  Pipeline& p = fp32_pipeline();
  double worst_cam = 0, worst_refined = 0, worst_agreement = 1;
  for (const auto& c : parity_cases()) {
    SCOPED_TRACE(c.stem);
    const cv::Mat rgb = decode_image_rgb(coco6("images/" + c.stem + ".jpg"));
    const ClipEsResult r = p.clip_es->run(rgb, p.classes.resolve_labels(c.labels));

    const at::Tensor keys = read_npy(coco6("expected/" + c.stem + "_keys.npy"));
    ASSERT_EQ(keys.numel(), static_cast<int64_t>(r.class_indices.size()));
    for (int64_t k = 0; k < keys.numel(); ++k) EXPECT_EQ(keys[k].item<int64_t>(), r.class_indices[k]);

    const at::Tensor cam = read_npy(coco6("expected/" + c.stem + "_cam.npy")).to(torch::kFloat);
    const at::Tensor refined = read_npy(coco6("expected/" + c.stem + "_refined.npy")).to(torch::kFloat);
    ASSERT_EQ(cam.sizes(), r.cams.sizes());
    ASSERT_EQ(refined.sizes(), r.refined.sizes());
    const double d_cam = (r.cams - cam).abs().max().item<double>();
    const double d_refined = (r.refined - refined).abs().max().item<double>();
    EXPECT_LE(d_cam, 2e-3);
    EXPECT_LE(d_refined, 2e-3);

    // Label maps with α = 1, ours vs the ones the reference's CAMs give.
    const auto values = mask_values(r.class_indices);
    const cv::Mat ours = make_pseudo_mask(r.refined, values).labels;
    const cv::Mat theirs = make_pseudo_mask(refined.contiguous(), values).labels;
    const double agreement = 1.0 - static_cast<double>(cv::countNonZero(ours != theirs)) / ours.total();
    EXPECT_GE(agreement, 0.999);

    worst_cam = std::max(worst_cam, d_cam);
    worst_refined = std::max(worst_refined, d_refined);
    worst_agreement = std::min(worst_agreement, agreement);
  }
  std::cout << "[parity] coco6 max|dCAM| = " << worst_cam << ", max|dRefined| = " << worst_refined
            << ", worst label agreement = " << worst_agreement << "\n";
  RecordProperty("max_cam_delta", std::to_string(worst_cam));
  RecordProperty("max_refined_delta", std::to_string(worst_refined));
}

// Per pixel, the winning score minus the runner-up over [bg, R_1..R_K]
// (bg = 1 − max R, spec §7), computed on float16-rounded scores like the masks.
at::Tensor top2_margin(const at::Tensor& refined) {
  const at::Tensor r = refined.detach().to(torch::kCPU).to(torch::kHalf).to(torch::kFloat);
  const at::Tensor bg = (1 - std::get<0>(r.max(0, true))).to(torch::kHalf).to(torch::kFloat);
  const at::Tensor scores = torch::cat({bg, r}, 0);
  if (scores.size(0) < 2) return torch::full({r.size(1), r.size(2)}, 1.0f);
  const at::Tensor top = std::get<0>(scores.topk(2, 0));
  return top[0] - top[1];
}

// What bf16 guarantees, on any CPU. oneDNN runs bf16 matrix products with AMX,
// AVX-512-BF16 or an emulation, each rounding differently, so the label of a
// pixel whose fp32 scores are nearly tied is a coin toss that differs between
// machines (measured 98.3 % overall agreement on an AMD EPYC, 97.3 % on an
// Intel Xeon with AMX). What must hold everywhere is that bf16 never changes a
// label that fp32 decided clearly.
//
// The bound: bf16 keeps 8 significant bits, unit roundoff u = 2^-8. Every
// matrix product of the trunk rounds its inputs to that precision, and the
// scores are min-max normalised maps (CAA divides by the range of S²·(B⊙cam),
// spec §6), so an input error of u reaches a score as a few u. We allow each
// score an error of 8u — measured on coco6 (Intel Xeon, AMX): |Δ score|
// median 0.7u, p99 7u, max 20u — so a label can only flip where fp32's margin
// between the winner and the runner-up is under 2·8u = 2^-4. Those pixels
// (23 % of coco6, whose random-weight CAMs are noise-like) are excluded; on
// the rest ≥ 99.9 % must agree (measured 99.996 %). Agreement by margin,
// measured: > 4u 99.0 %, > 8u 99.6 %, > 16u 99.996 %, > 32u 100 %. The
// overall figure is reported, not gated.
TEST(ClipEsParity, Bf16KeepsEveryLabelThatFp32DecidesClearly) {
  constexpr double kUnitRoundoff = 1.0 / 256;  // bf16: 2^-8
  constexpr double kMarginBound = 2 * 8 * kUnitRoundoff;
  Pipeline& fp32 = fp32_pipeline();
  Pipeline bf16(Precision::BF16);
  int64_t same = 0, total = 0, decided = 0, decided_same = 0;
  double max_score_delta = 0;
  std::vector<float> deltas;
  int64_t probe_decided[6] = {}, probe_same[6] = {};
  for (const auto& c : parity_cases()) {
    const cv::Mat rgb = decode_image_rgb(coco6("images/" + c.stem + ".jpg"));
    const auto labels = fp32.classes.resolve_labels(c.labels);
    const ClipEsResult a = fp32.clip_es->run(rgb, labels);
    const ClipEsResult b = bf16.clip_es->run(rgb, labels);
    const auto values = mask_values(a.class_indices);
    const cv::Mat ma = make_pseudo_mask(a.refined, values).labels;
    const cv::Mat mb = make_pseudo_mask(b.refined, values).labels;
    const cv::Mat differs = ma != mb;
    same += static_cast<int64_t>(ma.total()) - cv::countNonZero(differs);
    total += static_cast<int64_t>(ma.total());

    const at::Tensor margin = top2_margin(a.refined).contiguous();
    const float* m = margin.data_ptr<float>();
    for (int y = 0; y < ma.rows; ++y)
      for (int x = 0; x < ma.cols; ++x) {
        const float mm = m[static_cast<int64_t>(y) * ma.cols + x];
        for (int b = 0; b < 6; ++b)
          if (mm > (1 << b) * kUnitRoundoff) {
            ++probe_decided[b];
            if (!differs.at<uint8_t>(y, x)) ++probe_same[b];
          }
        if (mm <= kMarginBound) continue;
        ++decided;
        if (!differs.at<uint8_t>(y, x)) ++decided_same;
      }
    const at::Tensor delta = (a.refined - b.refined.to(torch::kFloat)).abs().flatten();
    max_score_delta = std::max(max_score_delta, delta.max().item<double>());
    const at::Tensor sample = delta.index({torch::arange(0, delta.numel(), 97)}).contiguous();
    deltas.insert(deltas.end(), sample.data_ptr<float>(), sample.data_ptr<float>() + sample.numel());
  }
  std::sort(deltas.begin(), deltas.end());
  for (int b = 0; b < 6; ++b)
    std::cout << "[parity] margin > " << (1 << b) << "u: decided " << static_cast<double>(probe_decided[b]) / total
              << ", agreement " << static_cast<double>(probe_same[b]) / probe_decided[b] << "\n";
  const double overall = static_cast<double>(same) / total;
  const double on_decided = static_cast<double>(decided_same) / decided;
  std::cout << "[parity] coco6 bf16 vs fp32: overall label agreement " << overall << " (reported, not gated); "
            << "pixels with fp32 margin > " << kMarginBound << ": " << static_cast<double>(decided) / total
            << " of all, agreement there " << on_decided << "; |d refined| median "
            << deltas[deltas.size() / 2] << ", p99 " << deltas[deltas.size() * 99 / 100] << ", max "
            << max_score_delta << "\n";
  RecordProperty("bf16_overall_agreement", std::to_string(overall));
  RecordProperty("bf16_decided_agreement", std::to_string(on_decided));
  EXPECT_GE(on_decided, 0.999);
  // The exclusion must not swallow the test: most pixels are decided clearly.
  EXPECT_GE(static_cast<double>(decided) / total, 0.5);
}

TEST(ClipEs, LabelEdgeCases) {
  Pipeline& p = fp32_pipeline();
  const cv::Mat rgb = decode_image_rgb(coco6("images/000000010764.jpg"));
  EXPECT_THROW(p.clip_es->run(rgb, {}), Error);          // no labels: an error, never a crash
  EXPECT_THROW(p.clip_es->run(rgb, {20}), Error);        // out of range
  const ClipEsResult r = p.clip_es->run(rgb, {14, 14});  // duplicates collapse
  EXPECT_EQ(r.class_indices, std::vector<int>{14});
  EXPECT_EQ(r.cams.size(0), 1);
  try {
    p.classes.resolve_labels({"persn"});
    FAIL() << "unknown class accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("person"), std::string::npos) << e.what();
  }
}

TEST(ClipEs, MaxTokensCapsTheGridAndKeepsTheImageSize) {
  Pipeline& p = fp32_pipeline();
  const cv::Mat rgb = decode_image_rgb(coco6("images/000000010764.jpg"));
  ClipEsConfig config = clip_es_config_for(p.classes);
  config.max_tokens = 100;
  const ClipEs capped(*p.model, p.tokenizer, config);
  const ClipEsResult r = capped.run(rgb, {14});
  EXPECT_LE((r.input_h / 16) * (r.input_w / 16), 100);
  EXPECT_EQ(r.refined.size(1), rgb.rows);
  EXPECT_EQ(r.refined.size(2), rgb.cols);
}

}  // namespace
}  // namespace clipes

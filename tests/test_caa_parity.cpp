// CAA against the reference on real images: softmax-GradCAM of the tiny CLIP,
// then resize_cams_bilinear and AttentionAffinity::refine, compared with what
// the official CLIP-ES code saved (fixtures/parity/coco6, VOC settings).
// This isolates the CAM stages; the full `generate` parity lives elsewhere.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <iostream>

#include "clipes/cam/attention_affinity.h"
#include "clipes/cam/cam_resize.h"
#include "clipes/cam/softmax_gradcam.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/npy.h"
#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/class_config.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

using namespace clipes;

namespace {

// Parity-mode text features (spec §4): the whole class string in the template once.
at::Tensor text_features(const ClipModel& model, const BpeTokenizer& tok, const std::vector<std::string>& texts,
                         const std::string& templ) {
  std::vector<at::Tensor> rows;
  for (const auto& t : texts) {
    std::string prompt = templ;
    prompt.replace(prompt.find("{}"), 2, t);
    rows.push_back(torch::tensor(tok.encode_for_model(prompt), torch::kLong));
  }
  torch::NoGradGuard no_grad;
  at::Tensor f = model.encode_text(torch::stack(rows)).to(torch::kFloat);
  return f / f.norm(2, -1, true);
}

}  // namespace

TEST(CaaParity, Coco6CamsAndRefinedMatchTheReference) {
  const auto model = ClipModel::load(test::tiny_clip_path());
  const BpeTokenizer tok = BpeTokenizer::from_file(test::vocab_path());
  const ClassConfig voc = ClassConfig::resolve("voc");
  const at::Tensor bg = text_features(*model, tok, voc.background, voc.default_template);
  const SoftmaxGradCam gradcam(*model);
  const auto labels = nlohmann::json::parse(read_file(test::shared("fixtures/parity/coco6/labels.json")));
  for (const auto& [stem, names] : labels.items()) {
    const std::vector<int> idx = voc.resolve_labels(names.get<std::vector<std::string>>());
    std::vector<std::string> prompts;
    for (int i : idx) prompts.push_back(voc.classes[i].prompt);
    const at::Tensor feats = torch::cat({text_features(*model, tok, prompts, voc.default_template), bg});
    const cv::Mat rgb = decode_image_rgb(test::shared("data/coco-tiny/val2017/" + stem + ".jpg"));
    const GradCamResult r = gradcam.compute(preprocess_ceil16(rgb), feats, static_cast<int>(idx.size()));

    const std::string expected = test::shared("fixtures/parity/coco6/expected/" + stem);
    const at::Tensor keys = read_npy(expected + "_keys.npy");
    ASSERT_EQ(keys.size(0), static_cast<int64_t>(idx.size())) << stem;
    for (size_t i = 0; i < idx.size(); ++i) EXPECT_EQ(keys[i].item<int64_t>(), idx[i]) << stem;

    const at::Tensor cam = resize_cams_bilinear(r.cams, rgb.rows, rgb.cols);
    const at::Tensor cam_ref = read_npy(expected + "_cam.npy").to(torch::kFloat);
    ASSERT_EQ(cam.sizes(), cam_ref.sizes()) << stem;
    const double cam_err = (cam - cam_ref).abs().max().item<double>();

    const AttentionAffinity aff(r.attention, r.grid_h, r.grid_w);
    const at::Tensor refined = resize_cams_bilinear(aff.refine(r.cams, voc.box_threshold), rgb.rows, rgb.cols);
    const at::Tensor refined_ref = read_npy(expected + "_refined.npy").to(torch::kFloat);
    const double refined_err = (refined - refined_ref).abs().max().item<double>();
    const double refined_mean_err = (refined - refined_ref).abs().mean().item<double>();
    // The CAMs differ from the reference only by its float16 storage (≤ ~5e-4).
    EXPECT_LT(cam_err, 1e-3) << stem;
    // Refined maps: most classes match as closely, but min-max normalising
    // S·(B⊙cam) is ill-conditioned for some (in 025603 and 010764, 1e-5 of
    // noise on the grid CAM moves the refined map by ~2e-3), so the bound on
    // the largest error is looser than on the mean.
    EXPECT_LT(refined_err, 5e-3) << stem;
    EXPECT_LT(refined_mean_err, 1e-3) << stem;
    std::cout << stem << ": max |cam - ref| = " << cam_err << ", max |refined - ref| = " << refined_err
              << " (mean " << refined_mean_err << ")\n";
  }
}

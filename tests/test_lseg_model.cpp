// Parity of the LSeg network (model/lseg_model.h) with the official
// isl-org/lang-seg outputs on the tiny random checkpoint
// (fixtures/lseg/README.md says how every file was made).
//
// Tolerances are the fixture README's, and why:
//   * text features, ViT hook outputs, reassemble, layer_rn, fusion paths and
//     image features: |Δ| ≤ 1e-5 + 1e-4·|ref| — a float64 re-implementation
//     from the spec agrees to ≤ 2e-6, so only fp32 summation order is left;
//   * logits (low-res and full): |Δ| ≤ 3e-4 — LSeg rounds the scaled pixel
//     features to fp16 (lseg-spec §6), and a feature within ~1e-7 of an fp16
//     rounding boundary may round the other way in another fp32 summation
//     order, moving a logit by up to one fp16 step of the scaled feature
//     times the text weight (observed 1.3e-4 in float64);
//   * argmax: 100 % of pixels on these fixtures.
// The intermediate checks come first in the forward's order, so the first
// failing one localises a fault.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <functional>
#include <fstream>
#include <sstream>

#include "clipes/io/image_decode.h"
#include "clipes/io/npy.h"
#include "clipes/methods/lseg_multi_eval.h"
#include "clipes/model/checkpoint.h"
#include "clipes/model/lseg_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {

std::string fx(const std::string& name) { return test::shared("fixtures/lseg/" + name); }
const std::string kStem = "000000005001";  // the stem with every intermediate saved

const TensorMap& checkpoint() {
  static const TensorMap t = read_torch_save_tensors(fx("lseg_tiny.ckpt"));
  return t;
}

// The tiny model's head count is not width/64 (manifest config.vit_heads = 2).
LsegSettings tiny_settings() {
  LsegSettings s;
  s.vit_heads = 2;
  return s;
}

// The default model: the ViT trunk on the fused CPU engine, float32.
const LsegModel& tiny() {
  static const LsegModel m(checkpoint(), fx("lseg_tiny.ckpt"), tiny_settings());
  return m;
}

// LibTorch's ops for the trunk (--engine reference), float32.
const LsegModel& tiny_reference() {
  ModelOptions o;
  o.engine = EngineKind::Reference;
  static const LsegModel m(checkpoint(), fx("lseg_tiny.ckpt"), tiny_settings(), o);
  return m;
}

at::Tensor npy(const std::string& name) { return read_npy(fx(name)); }
at::Tensor npy_f(const std::string& name) { return read_npy(fx(name)).to(torch::kFloat); }

// LSeg's input normalisation of a fixture PNG (lseg-spec §7, methods/lseg_multi_eval.h).
at::Tensor normalized_png(const std::string& name) { return lseg_normalize(decode_image_rgb(fx(name))); }

// Max |Δ| and max |Δ|/(|ref|) of a comparison, and whether every element is
// within abs_tol + rel_tol·|ref|.
struct Diff {
  double max_abs = 0, max_rel_excess = 0;
  bool ok = false;
};
Diff compare(const at::Tensor& got_in, const at::Tensor& ref_in, double abs_tol, double rel_tol) {
  const at::Tensor got = got_in.to(torch::kDouble), ref = ref_in.to(torch::kDouble);
  const at::Tensor d = (got - ref).abs();
  Diff r;
  r.max_abs = d.max().item<double>();
  const at::Tensor excess = d - (abs_tol + rel_tol * ref.abs());
  r.max_rel_excess = excess.max().item<double>();
  r.ok = r.max_rel_excess <= 0 && torch::isfinite(got).all().item<bool>();
  return r;
}

void expect_close(const at::Tensor& got, const at::Tensor& ref, double abs_tol, double rel_tol,
                  const std::string& what) {
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  const Diff d = compare(got, ref, abs_tol, rel_tol);
  std::printf("  [lseg] %-34s max|d| = %.3g\n", what.c_str(), d.max_abs);
  EXPECT_TRUE(d.ok) << what << ": max |Δ| " << d.max_abs << " (tolerance " << abs_tol << " + " << rel_tol
                    << "·|ref|, exceeded by " << d.max_rel_excess << ")";
}

void expect_features(const at::Tensor& got, const at::Tensor& ref, const std::string& what) {
  expect_close(got, ref, 1e-5, 1e-4, what);
}

double argmax_agreement(const at::Tensor& logits, const at::Tensor& ref_argmax) {
  const at::Tensor mine = logits.argmax(1).squeeze(0);
  return mine.eq(ref_argmax.to(torch::kLong)).to(torch::kDouble).mean().item<double>();
}

// A checkpoint's shapes without its memory: every tensor is one zero
// expanded (stride 0) to the listed shape. For config inference only.
TensorMap shapes_from_tsv(const std::string& tsv_path) {
  std::ifstream tsv(tsv_path);
  std::string line;
  std::getline(tsv, line);  // header
  TensorMap t;
  while (std::getline(tsv, line)) {
    std::istringstream fields(line);
    std::string key, dtype, shape;
    std::getline(fields, key, '\t');
    std::getline(fields, dtype, '\t');
    std::getline(fields, shape, '\t');
    std::vector<int64_t> dims;
    if (shape != "scalar") {
      std::istringstream s(shape);
      std::string d;
      while (std::getline(s, d, 'x')) dims.push_back(std::stoll(d));
    }
    const auto type = dtype == "int64" ? torch::kLong : dtype == "float16" ? torch::kHalf : torch::kFloat;
    t[key] = torch::zeros({1}, type).reshape({}).expand(dims);
  }
  return t;
}

}  // namespace

// ---- configuration -----------------------------------------------------------------

TEST(LsegConfig, TinySizesComeFromTheShapes) {
  const LsegConfig c = LsegConfig::infer(checkpoint(), "lseg_tiny.ckpt", tiny_settings());
  EXPECT_EQ(c.vit_width, 32);
  EXPECT_EQ(c.vit_depth, 24);
  EXPECT_EQ(c.vit_heads, 2);
  EXPECT_EQ(c.patch_size, 16);
  EXPECT_EQ(c.pos_grid, 24);
  EXPECT_EQ(c.hooks, (std::vector<int>{5, 11, 17, 23}));
  EXPECT_EQ(c.reassemble_widths, (std::array<int, 4>{8, 16, 32, 32}));
  EXPECT_EQ(c.features, 16);
  EXPECT_EQ(c.out_c, 512);
  EXPECT_EQ(c.clip.text.width, 64);
  EXPECT_EQ(c.clip.text.layers, 2);
  EXPECT_EQ(c.clip.text.heads, 1);
  EXPECT_EQ(c.clip.embed_dim, 512);
}

TEST(LsegConfig, ReleasedClipVitL16LayoutGetsTheReleasedSizesByDefault) {
  // state_dict_keys_full.tsv lists the 730 keys of a full-size clip_vitl16_384
  // checkpoint (demo_e200.ckpt's layout); the default settings are its own.
  const TensorMap full = shapes_from_tsv(fx("state_dict_keys_full.tsv"));
  const LsegConfig c = LsegConfig::infer(full, "demo_e200.ckpt");
  EXPECT_EQ(c.vit_width, 1024);
  EXPECT_EQ(c.vit_depth, 24);
  EXPECT_EQ(c.vit_heads, 16);
  EXPECT_EQ(c.pos_grid, 24);
  EXPECT_EQ(c.reassemble_widths, (std::array<int, 4>{256, 512, 1024, 1024}));
  EXPECT_EQ(c.features, 256);
  EXPECT_EQ(c.out_c, 512);
  EXPECT_EQ(c.clip.text.width, 512);
  EXPECT_EQ(c.clip.text.layers, 12);
  EXPECT_EQ(c.clip.text.heads, 8);
}

TEST(LsegConfig, MissingOrMisShapedKeysNameTheFileAndTheKey) {
  TensorMap t = checkpoint();
  t.erase("net.scratch.refinenet2.resConfUnit1.bn2.running_var");
  std::string msg = test::error_of([&] { LsegConfig::infer(t, "cut.ckpt", tiny_settings()); });
  EXPECT_EQ(msg.rfind("cut.ckpt: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("net.scratch.refinenet2.resConfUnit1.bn2.running_var"), std::string::npos) << msg;

  t = checkpoint();
  t["net.scratch.layer3_rn.weight"] = torch::zeros({16, 31, 3, 3});
  msg = test::error_of([&] { LsegConfig::infer(t, "bent.ckpt", tiny_settings()); });
  EXPECT_EQ(msg.rfind("bent.ckpt: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("net.scratch.layer3_rn.weight"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  // The unused refinenet4.resConfUnit1 may be absent (lseg-spec §10 item 8).
  t = checkpoint();
  for (auto it = t.begin(); it != t.end();)
    it = it->first.rfind("net.scratch.refinenet4.resConfUnit1.", 0) == 0 ? t.erase(it) : std::next(it);
  EXPECT_NO_THROW(LsegConfig::infer(t, "lean.ckpt", tiny_settings()));
}

TEST(LsegConfig, ErrorsInsideTheClipTowerNameTheFileAndThePrefixedKey) {
  TensorMap t = checkpoint();
  t.erase("net.clip_pretrained.text_projection");
  const std::string msg = test::error_of([&] { LsegConfig::infer(t, "noproj.ckpt", tiny_settings()); });
  EXPECT_EQ(msg.rfind("noproj.ckpt", 0), 0u) << msg;
  EXPECT_NE(msg.find("net.clip_pretrained."), std::string::npos) << msg;
  EXPECT_NE(msg.find("text_projection"), std::string::npos) << msg;
}

TEST(LsegModel, LoadsTheLightningFileByPath) {
  const LsegModel m = LsegModel::load(fx("lseg_tiny.ckpt"), tiny_settings());
  EXPECT_NE(m.config().describe().find("width 32"), std::string::npos) << m.config().describe();
  expect_features(m.encode_text(npy("tokens_b.npy")), npy_f("text_features_b.npy"), "text_features_b (load)");
}

TEST(LsegConfig, WhatTheShapesCannotTellIsCheckedNotGuessed) {
  // Tiny width 32 with the default head dim 64 gives no heads: an error, not a guess.
  std::string msg = test::error_of([&] { LsegConfig::infer(checkpoint(), "lseg_tiny.ckpt"); });
  EXPECT_NE(msg.find("heads"), std::string::npos) << msg;
  LsegSettings s = tiny_settings();
  s.hooks = {5, 11, 17, 24};
  msg = test::error_of([&] { LsegConfig::infer(checkpoint(), "lseg_tiny.ckpt", s); });
  EXPECT_NE(msg.find("24"), std::string::npos) << msg;
  // arch_option 1/2 checkpoints (a head block on the logits) are refused.
  TensorMap t = checkpoint();
  t["net.scratch.head_block.depthwise.depthwise.weight"] = torch::zeros({1, 1, 3, 3});
  msg = test::error_of([&] { LsegConfig::infer(t, "arch1.ckpt", tiny_settings()); });
  EXPECT_NE(msg.find("head_block"), std::string::npos) << msg;
}

TEST(LsegConfig, TheReleasedSizesAreTheReleasedCheckpointsLayout) {
  // clip_vitl16_384() (what `clipes bench --method lseg` builds) names every
  // tensor the full-size checkpoint holds for the forward, with its shape.
  const TensorMap full = shapes_from_tsv(fx("state_dict_keys_full.tsv"));
  const LsegConfig released = LsegConfig::clip_vitl16_384();
  const LsegConfig inferred = LsegConfig::infer(full, "demo_e200.ckpt");
  EXPECT_EQ(released.describe(), inferred.describe());
  EXPECT_EQ(released.expected_shapes(), inferred.expected_shapes());
  for (const auto& [key, shape] : released.clip.expected_shapes()) {
    const auto it = full.find(std::string(kLsegPrefix) + "clip_pretrained." + key);
    ASSERT_NE(it, full.end()) << key;
    EXPECT_EQ(it->second.sizes().vec(), shape) << key;
  }
  // ViT-L/16 trunk to block 23 (~304 M) + DPT decoder (~38 M, a third of it
  // the stride-2 3×3 conv at 1024 channels) + the whole CLIP ViT-B/32 (~151 M).
  EXPECT_GT(released.parameter_count(), 485'000'000);
  EXPECT_LT(released.parameter_count(), 500'000'000);
}

TEST(LsegModel, RandomWeightsOfAConfigLoadBackAsThatConfig) {
  const LsegConfig tiny_config = LsegConfig::infer(checkpoint(), "lseg_tiny.ckpt", tiny_settings());
  const TensorMap random = random_lseg_weights(tiny_config, 3);
  EXPECT_EQ(LsegConfig::infer(random, "random", tiny_settings()).describe(), tiny_config.describe());
  const LsegModel m(random, "random", tiny_settings());
  const at::Tensor text = m.encode_text(npy("tokens_a.npy"));
  const at::Tensor logits = m.forward(torch::randn({1, 3, 64, 96}), text);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{1, 5, 64, 96}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  // Normalised features times the fp16 scale: a logit is within ±14.29.
  EXPECT_LE(logits.abs().max().item<double>(), 14.3);
  EXPECT_GT(logits.std().item<double>(), 0.0);
}

TEST(LsegModel, RunsOnTheCpuOnlyAndNeverTrains) {
  ModelOptions o;
  o.device = "cuda";
  std::string msg = test::error_of([&] { LsegModel(checkpoint(), "x.ckpt", tiny_settings(), o); });
  EXPECT_NE(msg.find("CPU"), std::string::npos) << msg;
  o = {};
  o.precision = Precision::FP16;
  msg = test::error_of([&] { LsegModel(checkpoint(), "x.ckpt", tiny_settings(), o); });
  EXPECT_NE(msg.find("bfloat16"), std::string::npos) << msg;
}

TEST(LsegModel, RejectsInputsThatAreNotMultiplesOf32) {
  const std::string msg = test::error_of([] { tiny().vit_hooks(torch::zeros({1, 3, 48, 64})); });
  EXPECT_NE(msg.find("32"), std::string::npos) << msg;
}

// ---- parity, stage by stage -----------------------------------------------------------

TEST(LsegParity, TextFeaturesFromTokens) {
  for (const char* set : {"a", "b"}) {
    const at::Tensor tokens = npy(std::string("tokens_") + set + ".npy");
    expect_features(tiny().encode_text(tokens), npy_f(std::string("text_features_") + set + ".npy"),
                    std::string("text_features_") + set);
  }
}

TEST(LsegParity, TokensFromTheRawLabels) {
  // No prompt template: "hot dog" is the raw text (lseg-spec §5).
  const BpeTokenizer tok = BpeTokenizer::from_file(test::vocab_path());
  const std::vector<std::string> a = {"person", "bicycle", "hot dog", "bird", "other"};
  const at::Tensor tokens = npy("tokens_a.npy");
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<int64_t> ids = tok.encode_for_model(a[i], 77);
    const at::Tensor row = tokens[static_cast<int64_t>(i)];
    EXPECT_TRUE(torch::equal(torch::tensor(ids, torch::kLong), row)) << a[i];
  }
}

TEST(LsegParity, InputNormalisationOfThePng) {
  // The PNG through lseg-spec §7's normalisation is the tensor the official model got.
  EXPECT_TRUE(torch::equal(normalized_png(kStem + "_ss.png"), npy_f("ss_input_" + kStem + ".npy")));
}

TEST(LsegParity, EveryStageOfOneForward) {
  const at::Tensor x = npy_f("ss_input_" + kStem + ".npy");
  const LsegStages s = tiny().forward_stages(x);
  ASSERT_EQ(s.hooks.size(), 4u);
  for (int k = 1; k <= 4; ++k) {
    const std::string n = std::to_string(k);
    expect_features(s.hooks[k - 1], npy_f("ss_vit_block_out" + n + "_" + kStem + ".npy"), "vit_block_out" + n);
  }
  for (int k = 1; k <= 4; ++k) {
    const std::string n = std::to_string(k);
    expect_features(s.reassembled[k - 1], npy_f("ss_reassembled" + n + "_" + kStem + ".npy"), "reassembled" + n);
  }
  for (int k = 1; k <= 4; ++k) {
    const std::string n = std::to_string(k);
    expect_features(s.layer_rn[k - 1], npy_f("ss_layer" + n + "_rn_" + kStem + ".npy"), "layer" + n + "_rn");
  }
  for (int k = 4; k >= 1; --k) {
    const std::string n = std::to_string(k);
    expect_features(s.paths[k - 1], npy_f("ss_path" + n + "_" + kStem + ".npy"), "path" + n);
  }
  expect_features(s.image_features, npy_f("ss_image_features_" + kStem + "_a.npy"), "image_features");
}

TEST(LsegParity, TheReferenceTrunkMatchesToo) {
  // LibTorch's ops for the ViT (--engine reference) against the same hooks
  // and logits: the fused engine is not what makes the parity.
  ASSERT_TRUE(tiny().fused_trunk());
  ASSERT_FALSE(tiny_reference().fused_trunk());
  const at::Tensor x = npy_f("ss_input_" + kStem + ".npy");
  const std::vector<at::Tensor> hooks = tiny_reference().vit_hooks(x);
  for (int k = 1; k <= 4; ++k)
    expect_features(hooks[k - 1], npy_f("ss_vit_block_out" + std::to_string(k) + "_" + kStem + ".npy"),
                    "vit_block_out" + std::to_string(k) + " (reference)");
  const at::Tensor logits = tiny_reference().forward(x, tiny_reference().encode_text(npy("tokens_a.npy")));
  expect_close(logits, npy_f("ss_logits_" + kStem + "_a.npy"), 3e-4, 0, "logits (reference)");
}

TEST(LsegParity, StagesFedTheOfficialInputsOfEachStage) {
  // Each stage from the official previous stage, so a fault in one stage does
  // not hide behind (or cascade from) another.
  const at::Tensor x = npy_f("ss_input_" + kStem + ".npy");
  const int64_t gh = x.size(2) / 16, gw = x.size(3) / 16;
  std::vector<at::Tensor> hooks, re, rn, paths;
  for (int k = 1; k <= 4; ++k) {
    const std::string n = std::to_string(k);
    hooks.push_back(npy_f("ss_vit_block_out" + n + "_" + kStem + ".npy"));
    re.push_back(npy_f("ss_reassembled" + n + "_" + kStem + ".npy"));
    rn.push_back(npy_f("ss_layer" + n + "_rn_" + kStem + ".npy"));
    paths.push_back(npy_f("ss_path" + n + "_" + kStem + ".npy"));
  }
  const auto my_re = tiny().reassemble(hooks, gh, gw);
  const auto my_rn = tiny().layer_rn(re);
  const auto my_paths = tiny().fuse(rn);
  for (size_t i = 0; i < 4; ++i) {
    const std::string n = std::to_string(i + 1);
    expect_features(my_re[i], re[i], "reassembled" + n + " (official hooks)");
    expect_features(my_rn[i], rn[i], "layer" + n + "_rn (official reassembled)");
    expect_features(my_paths[i], paths[i], "path" + n + " (official layer_rn)");
  }
  expect_features(tiny().head(paths[0]), npy_f("ss_image_features_" + kStem + "_a.npy"),
                  "image_features (official path1)");
}

TEST(LsegParity, LogitsFromTheOfficialFeatures) {
  // The fp16 step alone (lseg-spec §6), from the official image and text features.
  const at::Tensor low = lseg_logits_lowres(npy_f("ss_image_features_" + kStem + "_a.npy"), npy_f("text_features_a.npy"));
  expect_close(low, npy_f("ss_logits_lowres_" + kStem + "_a.npy"), 3e-4, 0, "logits_lowres (official features)");
  expect_close(lseg_upsample_logits(npy_f("ss_logits_lowres_" + kStem + "_a.npy")),
               npy_f("ss_logits_" + kStem + "_a.npy"), 1e-5, 1e-4, "×2 upsampling (official lowres)");
}

TEST(LsegParity, HeadLogitsFromTheOfficialPath1) {
  // forward's tail (head1 on channels-last slabs, the logits in pixel slabs,
  // ×2) from the official path1: the fixture's logits at the whole-model bound.
  const at::Tensor text = tiny().encode_text(npy("tokens_a.npy"));
  expect_close(tiny().head_logits(npy_f("ss_path1_" + kStem + ".npy"), text), npy_f("ss_logits_" + kStem + "_a.npy"),
               3e-4, 0, "head_logits (official path1)");
  EXPECT_NE(test::error_of([&] { (void)tiny().head_logits(npy_f("ss_path1_" + kStem + ".npy"), text.slice(1, 0, 8)); }),
            "");
}

TEST(LsegParity, WithoutTheFp16StepTheLogitsWouldMissTheTolerance) {
  // Guards the test above: the same product in plain float32 with the exact
  // scale misses by ≈1e-3 on these fixtures (README), so the 3e-4 bound does
  // tell the fp16 step from its absence.
  const at::Tensor f = npy_f("ss_image_features_" + kStem + "_a.npy");
  const at::Tensor t = npy_f("text_features_a.npy");
  const at::Tensor fn = f / f.norm(2, {1}, true);
  const at::Tensor tn = t / t.norm(2, {1}, true);
  const at::Tensor plain = torch::einsum("bchw,kc->bkhw", {fn, tn}) * kLsegLogitScale;
  const Diff d = compare(plain, npy_f("ss_logits_lowres_" + kStem + "_a.npy"), 3e-4, 0);
  EXPECT_FALSE(d.ok) << "plain float32 logits already within 3e-4 (max |Δ| " << d.max_abs << ")";
}

TEST(LsegParity, SingleScaleLogitsAndArgmax) {
  const BpeTokenizer tok = BpeTokenizer::from_file(test::vocab_path());
  struct Case {
    std::string stem, set;
  };
  const std::vector<Case> cases = {
      {"000000005001", "a"}, {"000000005001", "b"}, {"000000020992", "a"}, {"000000055299", "a"}};
  for (const Case& c : cases) {
    const at::Tensor text = tiny().encode_text(npy("tokens_" + c.set + ".npy"));
    const at::Tensor x = normalized_png(c.stem + "_ss.png");
    const at::Tensor feats = tiny().image_features(x);
    const at::Tensor low = lseg_logits_lowres(feats, text);
    if (c.stem == kStem && c.set == "a")
      expect_close(low, npy_f("ss_logits_lowres_" + kStem + "_a.npy"), 3e-4, 0, "logits_lowres " + c.stem);
    const at::Tensor logits = tiny().forward(x, text);
    expect_close(logits, npy_f("ss_logits_" + c.stem + "_" + c.set + ".npy"), 3e-4, 0,
                 "logits " + c.stem + "_" + c.set);
    const double agree = argmax_agreement(logits, npy("ss_argmax_" + c.stem + "_" + c.set + ".npy"));
    std::printf("  [lseg] argmax %s_%s agreement %.6f\n", c.stem.c_str(), c.set.c_str(), agree);
    EXPECT_EQ(agree, 1.0) << c.stem << "_" << c.set;
  }
}

// ---- bf16 (ModelOptions::precision) -------------------------------------------------------
// Not a parity mode: the official model runs float32 on the CPU. bf16 rounds
// every matmul/conv operand (8 bits of mantissa), so the logits move and a
// pixel whose top two labels are close may flip. On the tiny random model
// (labels far closer than a trained model's) the measured agreement with the
// official argmax is printed; the bound guards against a broken bf16 path
// (a wrong cast or layout gives chance-level agreement, ~1/K).
TEST(LsegBf16, EngineAndReferenceTrunksAgreeWithTheOfficialArgmaxMostly) {
  for (EngineKind engine : {EngineKind::Fused, EngineKind::Reference}) {
    ModelOptions o;
    o.precision = Precision::BF16;
    o.engine = engine;
    const LsegModel m(checkpoint(), fx("lseg_tiny.ckpt"), tiny_settings(), o);
    ASSERT_EQ(m.compute_type(), torch::kBFloat16);
    for (const char* stem : {"000000005001", "000000020992", "000000055299"}) {
      const at::Tensor logits = m.forward(normalized_png(std::string(stem) + "_ss.png"), m.encode_text(npy("tokens_a.npy")));
      ASSERT_EQ(logits.scalar_type(), torch::kFloat);
      const double agree = argmax_agreement(logits, npy(std::string("ss_argmax_") + stem + "_a.npy"));
      const double max_abs = (logits - npy_f(std::string("ss_logits_") + stem + "_a.npy")).abs().max().item<double>();
      std::printf("  [lseg] bf16 %s %s: argmax agreement %.4f, max |d logits| %.3g\n", to_string(engine).c_str(),
                  stem, agree, max_abs);
      EXPECT_GE(agree, 0.9) << stem;
    }
  }
}

// ---- multi-scale + flip (lseg-spec §7.2) --------------------------------------------------
// README tolerances: scores |Δ| ≤ 1e-3 (12 forward outputs summed per pixel,
// each carrying the fp16-boundary effect above), argmax ≥ 99.9 %.
// Each image costs ~36 forwards at 480×480 (tens of seconds on two cores), so
// the suite runs one image (the README's reference, 000000055299) and the other
// two are a disabled test: --gtest_also_run_disabled_tests runs them.

namespace {
void check_multi_eval(const std::string& stem) {
  const at::Tensor text = tiny().encode_text(npy("tokens_a.npy"));
  const at::Tensor x = lseg_normalize(decode_image_rgb(fx(stem + "_ms.png")));
  const at::Tensor scores = lseg_multi_eval(tiny(), x, text);
  expect_close(scores, npy_f("ms_scores_" + stem + "_a.npy"), 1e-3, 0, "ms_scores " + stem);
  const double agree = argmax_agreement(scores, npy("ms_argmax_" + stem + "_a.npy"));
  std::printf("  [lseg] ms argmax %s agreement %.6f\n", stem.c_str(), agree);
  EXPECT_GE(agree, 0.999) << stem;
}
}  // namespace

TEST(LsegMultiEval, WindowPlanAndForwardCounts) {
  const LsegMultiEvalOptions one{520, 480, {1.0}, false};
  // VOC-sized 500×375 at scale 1: 520×390, long side > crop, short side padded to 480: 1×2 windows.
  LsegScalePlan p = lseg_scale_plan(375, 500, 1.0, one);
  EXPECT_EQ(p.height, 390);
  EXPECT_EQ(p.width, 520);
  EXPECT_FALSE(p.single_window);
  EXPECT_TRUE(p.short_side_padded);
  EXPECT_EQ(p.rows * p.cols, 2);
  EXPECT_EQ(p.stride, 320);
  EXPECT_EQ(lseg_forward_count(375, 500, one), 2);
  // A square 480×480 photo becomes 520×520: 2×2 windows.
  EXPECT_EQ(lseg_forward_count(480, 480, one), 4);
  // Six scales + flip on a 640×480 (or 500×375) photo: 1+1+2+4+4+6 windows, twice.
  const LsegMultiEvalOptions ms;
  EXPECT_EQ(lseg_forward_count(480, 640, ms), 36);
  EXPECT_EQ(lseg_forward_count(375, 500, ms), 36);
  // Scale 0.5: long side 260 fits one padded window.
  EXPECT_TRUE(lseg_scale_plan(480, 640, 0.5, ms).single_window);
}

TEST(LsegMultiEval, ScoresAndArgmaxMatchTheOfficialEvaluator) { check_multi_eval("000000055299"); }

TEST(LsegMultiEval, DISABLED_TheOtherTwoFixtureImages) {
  check_multi_eval("000000005001");
  check_multi_eval("000000020992");
}

#include <gtest/gtest.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "clipes/io/npy.h"
#include "clipes/model/checkpoint.h"
#include "clipes/model/clip_model.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {

std::shared_ptr<ClipModel> tiny_model(Precision p = Precision::FP32) {
  static std::map<int, std::shared_ptr<ClipModel>> cache;
  auto& m = cache[static_cast<int>(p)];
  if (!m) m = ClipModel::load(test::tiny_clip_path(), {p, "cpu", false});
  return m;
}

// [SOT] + ids + [EOT], zero-padded to 77, from the official ids in tokens.json.
at::Tensor fixture_tokens(const std::vector<std::string>& texts) {
  const auto j = nlohmann::json::parse(read_file(test::shared("fixtures/clip/tokens.json")));
  at::Tensor out = torch::zeros({static_cast<int64_t>(texts.size()), 77}, torch::kLong);
  for (size_t r = 0; r < texts.size(); ++r) {
    std::vector<int64_t> ids = {49406};
    for (int64_t id : j.at(texts[r])) ids.push_back(id);
    ids.push_back(49407);
    for (size_t c = 0; c < ids.size(); ++c) out[r][c] = ids[c];
  }
  return out;
}

double rel_max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>() /
         b.to(torch::kFloat).abs().max().item<double>();
}

}  // namespace

TEST(ClipModel, InfersTheFixtureArchitectureFromShapes) {
  const ClipConfig& c = tiny_model()->config();
  EXPECT_EQ(c.vision.width, 128);
  EXPECT_EQ(c.vision.layers, 10);
  EXPECT_EQ(c.vision.heads, 2);
  EXPECT_EQ(c.vision.patch_size, 16);
  EXPECT_EQ(c.vision.grid, 14);
  EXPECT_EQ(c.text.width, 64);
  EXPECT_EQ(c.text.layers, 2);
  EXPECT_EQ(c.text.heads, 1);
  EXPECT_EQ(c.text.context_length, 77);
  EXPECT_EQ(c.text.vocab_size, 49408);
  EXPECT_EQ(c.embed_dim, 64);
  EXPECT_NEAR(tiny_model()->logit_scale_exp(), 100.0, 1e-3);
}

TEST(ClipModel, TextFeaturesMatchTheReference) {
  const at::Tensor expected = read_npy(test::shared("fixtures/tiny-clip/reference/text_features.npy"));
  const at::Tensor tokens =
      fixture_tokens({"a clean origami dog.", "a clean origami person with clothes,people,human."});
  torch::NoGradGuard no_grad;
  const at::Tensor got = tiny_model()->encode_text(tokens);
  const double d = rel_max_diff(got, expected.slice(0, 0, 2));
  std::cout << "[ measured ] text features max |d| / max |value| = " << d << "\n";
  EXPECT_LE(d, 1e-4);
}

TEST(ClipModel, ImageFeaturesMatchTheReference) {
  const at::Tensor expected = read_npy(test::shared("fixtures/tiny-clip/reference/image_features_224.npy"));
  const at::Tensor batch = torch::stack(
      {read_npy(test::shared("fixtures/tiny-clip/reference/input_224_000000005001.npy")),
       read_npy(test::shared("fixtures/tiny-clip/reference/input_224_000000020992.npy"))});
  torch::NoGradGuard no_grad;
  const at::Tensor got = tiny_model()->encode_image(batch);
  const double d = rel_max_diff(got, expected);
  std::cout << "[ measured ] image features max |d| / max |value| = " << d << "\n";
  EXPECT_LE(d, 1e-4);
}

TEST(ClipModel, PositionEmbeddingIsIdentityOnTheNativeGridAndBilinearElsewhere) {
  auto m = tiny_model();
  const at::Tensor native = m->position_embedding(14, 14);
  const TensorMap state = m->state();
  const at::Tensor pos = state.at("visual.positional_embedding");
  EXPECT_TRUE(torch::equal(native, pos));
  const at::Tensor other = m->position_embedding(20, 31);
  ASSERT_EQ(other.size(0), 1 + 20 * 31);
  const at::Tensor grid = pos.slice(0, 1).t().reshape({1, 128, 14, 14});
  const at::Tensor direct =
      at::upsample_bilinear2d(grid, {20, 31}, false).reshape({128, 20 * 31}).t();
  EXPECT_TRUE(torch::allclose(other.slice(0, 1), direct));
  EXPECT_TRUE(torch::equal(other[0], pos[0]));
}

TEST(ClipModel, Bf16RunsCloseToFp32) {
  const at::Tensor batch =
      read_npy(test::shared("fixtures/tiny-clip/reference/input_224_000000005001.npy")).unsqueeze(0);
  torch::NoGradGuard no_grad;
  const at::Tensor a = tiny_model()->encode_image(batch);
  const at::Tensor b = tiny_model(Precision::BF16)->encode_image(batch).to(torch::kFloat);
  const double cos = torch::cosine_similarity(a, b).item<double>();
  std::cout << "[bf16] tiny CLIP image embedding cos(fp32, bf16) = " << cos << "\n";
  // Hardware-independent bound: bf16 rounds every product's inputs to u = 2^-8;
  // over the 10 blocks the relative error of the embedding grows to about
  // sqrt(10 blocks · ~8 products)·u ≈ 0.035, i.e. cos ≈ 1 − 0.035²/2 ≈ 0.9994.
  // 0.99 allows an error four times that (relative error 0.14), whatever
  // kernel (AMX, AVX-512-BF16, emulation) oneDNN picks.
  EXPECT_GT(cos, 0.99);
}

TEST(ClipModel, Fp16IsRefusedOnCpu) {
  EXPECT_THROW(ClipModel::load(test::tiny_clip_path(), {Precision::FP16, "cpu", false}), Error);
}

// --- the same weights in every format give identical features (issue #2) -------

namespace {

struct Features {
  at::Tensor text, image;
};

Features features_of(const std::string& path, CheckpointFormat expected_format) {
  const Checkpoint ckpt = load_checkpoint(path);
  EXPECT_EQ(ckpt.format, expected_format) << path;
  const ClipModel model(ckpt.tensors, ClipConfig::infer(ckpt.tensors, path));
  const at::Tensor tokens =
      fixture_tokens({"a clean origami dog.", "a clean origami person with clothes,people,human."});
  const at::Tensor batch = torch::stack(
      {read_npy(test::shared("fixtures/tiny-clip/reference/input_224_000000005001.npy")),
       read_npy(test::shared("fixtures/tiny-clip/reference/input_224_000000020992.npy"))});
  torch::NoGradGuard no_grad;
  return {model.encode_text(tokens), model.encode_image(batch)};
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

void expect_identical(const Features& got, const Features& want, const std::string& what) {
  const double dt = max_abs_diff(got.text, want.text), di = max_abs_diff(got.image, want.image);
  std::cout << "[ measured ] " << what << ": text max |d| = " << dt << ", image max |d| = " << di << "\n";
  EXPECT_EQ(dt, 0.0) << what;
  EXPECT_EQ(di, 0.0) << what;
}

}  // namespace

TEST(CheckpointFormats, LibraryWritersGiveIdenticalFeaturesInEveryFormat) {
  const std::string dir = test::make_temp_dir("formats-lib");
  const Checkpoint original = load_checkpoint(test::tiny_clip_path());
  EXPECT_EQ(original.storage_dtype, "Half");
  const Features want = features_of(test::tiny_clip_path(), CheckpointFormat::OpenAITorchScript);

  // OpenAI weights as OpenCLIP publishes them: the config beside says QuickGELU.
  write_file_atomic(dir + "/open_clip_config.json", R"({"model_cfg": {"quick_gelu": true}})");
  save_state_dict(dir + "/flat.pt", original.tensors);
  save_state_dict(dir + "/nested.pt", original.tensors, {true, false});
  save_state_dict(dir + "/module.pt", original.tensors, {false, true});
  save_state_dict(dir + "/nested-module.pt", original.tensors, {true, true});
  save_hf_safetensors(dir + "/hf.safetensors", original.tensors);
  save_openai_torchscript(dir + "/openai.pt", original.tensors, ClipConfig::infer(original.tensors, "fixture"));

  expect_identical(features_of(dir + "/flat.pt", CheckpointFormat::StateDict), want, "state dict");
  expect_identical(features_of(dir + "/nested.pt", CheckpointFormat::StateDict), want, "nested state dict");
  expect_identical(features_of(dir + "/module.pt", CheckpointFormat::StateDict), want, "module. state dict");
  expect_identical(features_of(dir + "/nested-module.pt", CheckpointFormat::StateDict), want, "nested module.");
  expect_identical(features_of(dir + "/hf.safetensors", CheckpointFormat::HuggingFaceSafetensors), want,
                   "safetensors");
  expect_identical(features_of(dir + "/openai.pt", CheckpointFormat::OpenAITorchScript), want, "re-saved TorchScript");

  // And the stored tensors themselves round-trip bit for bit.
  const Checkpoint back = load_checkpoint(dir + "/hf.safetensors");
  ASSERT_EQ(back.tensors.size(), original.tensors.size());
  for (const auto& [name, t] : original.tensors) EXPECT_TRUE(torch::equal(back.tensors.at(name), t)) << name;
  EXPECT_EQ(back.storage_dtype, "Half");
}

#ifdef CLIPES_CONVERT_CHECKPOINT
TEST(CheckpointFormats, ConvertCheckpointToolGivesIdenticalFeatures) {
  const std::string dir = test::make_temp_dir("formats-tool");
  const Features want = features_of(test::tiny_clip_path(), CheckpointFormat::OpenAITorchScript);
  const std::pair<const char*, CheckpointFormat> formats[] = {
      {"state-dict", CheckpointFormat::StateDict},
      {"state-dict-nested", CheckpointFormat::StateDict},
      {"state-dict-module", CheckpointFormat::StateDict},
      {"safetensors", CheckpointFormat::HuggingFaceSafetensors},
      {"openai", CheckpointFormat::OpenAITorchScript}};
  std::string previous = test::tiny_clip_path();
  for (const auto& [format, kind] : formats) {
    // Chain the conversions (each from the previous output): any lossy step would show.
    const std::string out = dir + "/" + format + ".bin";
    std::string log;
    ASSERT_EQ(test::run_command(std::string(CLIPES_CONVERT_CHECKPOINT) + " --in '" + previous + "' --out '" + out +
                                    "' --format " + format,
                                &log),
              0)
        << log;
    expect_identical(features_of(out, kind), want, std::string("convert_checkpoint --format ") + format);
    previous = out;
  }
  std::string log;
  EXPECT_EQ(test::run_command(std::string(CLIPES_CONVERT_CHECKPOINT) + " --in '" + dir + "/nope.pt' --out '" + dir +
                                  "/x.pt' --format openai",
                              &log),
            2);
  EXPECT_NE(log.find("nope.pt"), std::string::npos) << log;
}
#endif

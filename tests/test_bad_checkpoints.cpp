// Every damaged or unsuitable checkpoint must end `clipes info` with exit code
// 2 and ONE line naming the file (and the tensor where one is at fault) —
// never a crash, a LibTorch backtrace or a partial load.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <filesystem>
#include <random>

#include "clipes/model/checkpoint.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/zip_integrity.h"
#include "test_support.h"

using namespace clipes;

namespace {

std::string temp_dir() {
  static const std::string dir = test::make_temp_dir("bad-checkpoints");
  return dir;
}

const TensorMap& fixture_tensors() {
  static const TensorMap tensors = load_checkpoint(test::tiny_clip_path()).tensors;
  return tensors;
}

struct CliResult {
  int code;
  std::string output;
};

CliResult clipes_info(const std::string& model) {
  CliResult r;
  r.code = test::run_command(test::clipes_binary() + " info --model '" + model + "'", &r.output);
  return r;
}

// Exit code 2, exactly one line, "clipes: error: <path>: ..." containing every
// `expected` fragment.
void expect_one_line_error(const std::string& model, const std::vector<std::string>& expected) {
  const CliResult r = clipes_info(model);
  EXPECT_EQ(r.code, 2) << r.output;
  ASSERT_FALSE(r.output.empty());
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.back(), '\n');
  EXPECT_EQ(r.output.rfind("clipes: error: " + model + ": ", 0), 0u) << r.output;
  for (const auto& e : expected) EXPECT_NE(r.output.find(e), std::string::npos) << "missing '" << e << "' in " << r.output;
}

std::string fixture_bytes() { return read_file(test::tiny_clip_path()); }

}  // namespace

TEST(BadCheckpoints, TheFixtureItselfIsFine) {
  const CliResult r = clipes_info(test::tiny_clip_path());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("OpenAI TorchScript archive"), std::string::npos) << r.output;
}

TEST(BadCheckpoints, MissingFile) {
  expect_one_line_error(temp_dir() + "/does-not-exist.pt", {"no such file"});
}

TEST(BadCheckpoints, EmptyFile) {
  const std::string path = temp_dir() + "/empty.pt";
  write_file_atomic(path, "");
  expect_one_line_error(path, {"empty"});
}

TEST(BadCheckpoints, TruncatedArchive) {
  const std::string path = temp_dir() + "/truncated.pt";
  const std::string bytes = fixture_bytes();
  write_file_atomic(path, bytes.substr(0, bytes.size() / 2));
  expect_one_line_error(path, {"truncated"});
}

TEST(BadCheckpoints, CorruptZipMember) {
  // Flip bytes in the middle of the file: inside the (stored, uncompressed)
  // token embedding data, where only the member's CRC-32 can tell.
  const std::string path = temp_dir() + "/corrupt.pt";
  std::string bytes = fixture_bytes();
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  write_file_atomic(path, bytes);
  expect_one_line_error(path, {"CRC", "zip member", "/data/", "the bytes of tensor "});
  // The tensor named is one of the model's, and the one whose bytes sit in the middle of the file.
  const CliResult r = clipes_info(path);
  std::string tensor = r.output.substr(r.output.find("the bytes of tensor ") + 20);
  tensor = tensor.substr(0, tensor.find_first_of(",\n"));
  EXPECT_TRUE(fixture_tensors().count(tensor)) << tensor;
  EXPECT_EQ(tensor, "token_embedding.weight");  // 6.3 MB of the 10.8 MB fixture, stored in the middle
}

TEST(BadCheckpoints, CorruptZipIsCaughtBeforeLibTorch) {
  std::string bytes = fixture_bytes();
  EXPECT_NO_THROW(verify_zip_integrity(bytes, "ok.pt"));
  bytes[bytes.size() / 3] ^= 0x5a;
  try {
    verify_zip_integrity(bytes, "bad.pt");
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("bad.pt: corrupt data in zip member ", 0), 0u) << e.what();
  }
}

TEST(BadCheckpoints, ResNetClip) {
  // A ResNet CLIP's image tower as in RN50: a 3x3 stem conv1 (which must not
  // be mistaken for a patch embedding), bottleneck layers, attention pooling.
  TensorMap t;
  t["visual.conv1.weight"] = torch::zeros({32, 3, 3, 3});
  t["visual.conv2.weight"] = torch::zeros({32, 32, 3, 3});
  t["visual.layer1.0.conv1.weight"] = torch::zeros({64, 64, 1, 1});
  t["visual.layer1.0.bn1.weight"] = torch::ones({64});
  t["visual.attnpool.positional_embedding"] = torch::zeros({50, 2048});
  t["visual.attnpool.c_proj.weight"] = torch::zeros({1024, 2048});
  for (const auto& name : {"token_embedding.weight", "positional_embedding", "text_projection", "logit_scale"})
    t[name] = fixture_tensors().at(name);
  const std::string path = temp_dir() + "/RN50.pt";
  save_state_dict(path, t);
  expect_one_line_error(path, {"ResNet"});
}

TEST(BadCheckpoints, MissingTensor) {
  TensorMap t = fixture_tensors();
  t.erase("visual.proj");
  const std::string path = temp_dir() + "/no-proj.pt";
  save_state_dict(path, t);
  expect_one_line_error(path, {"missing tensor visual.proj"});
}

TEST(BadCheckpoints, MissingTensorInsideABlock) {
  TensorMap t = fixture_tensors();
  t.erase("transformer.resblocks.1.mlp.c_fc.bias");
  const std::string path = temp_dir() + "/no-bias.pt";
  save_state_dict(path, t, {true, false});
  expect_one_line_error(path, {"missing tensor transformer.resblocks.1.mlp.c_fc.bias"});
}

TEST(BadCheckpoints, MisshapedTensor) {
  TensorMap t = fixture_tensors();
  t["visual.transformer.resblocks.3.attn.out_proj.weight"] = torch::zeros({128, 127}, torch::kHalf);
  const std::string path = temp_dir() + "/misshaped.pt";
  save_state_dict(path, t);
  expect_one_line_error(path, {"tensor visual.transformer.resblocks.3.attn.out_proj.weight has shape [128, 127]",
                               "expected [128, 128]"});
}

TEST(BadCheckpoints, RandomGarbage) {
  std::mt19937 rng(20230601);
  std::string bytes(100000, '\0');
  for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
  const std::string path = temp_dir() + "/garbage.bin";
  write_file_atomic(path, bytes);
  expect_one_line_error(path, {"not a CLIP checkpoint"});
}

TEST(BadCheckpoints, GarbageThatStartsLikeAZip) {
  std::mt19937 rng(7);
  std::string bytes = "PK\x03\x04";
  for (int i = 0; i < 50000; ++i) bytes += static_cast<char>(rng() & 0xff);
  const std::string path = temp_dir() + "/fake-zip.pt";
  write_file_atomic(path, bytes);
  expect_one_line_error(path, {"zip"});
}

TEST(BadCheckpoints, TruncatedSafetensors) {
  const std::string good = temp_dir() + "/good.safetensors";
  save_hf_safetensors(good, fixture_tensors());
  const std::string bytes = read_file(good);
  const std::string path = temp_dir() + "/truncated.safetensors";
  write_file_atomic(path, bytes.substr(0, bytes.size() - 1000));
  expect_one_line_error(path, {"tensor ", "lies outside the file"});
}

TEST(BadCheckpoints, LegacyTorchSave) {
  const std::string path = temp_dir() + "/legacy.pt";
  write_file_atomic(path, std::string("\x80\x02\x8a\x0alegacy-pickle-bytes"));
  expect_one_line_error(path, {"legacy"});
}

TEST(BadCheckpoints, AFolderInsteadOfAFile) {
  expect_one_line_error(temp_dir(), {"folder"});
}

TEST(BadCheckpoints, NonFiniteWeightsAreRefusedNamingTheTensor) {
  // Before: all-background masks with confidence 0, "nan" probabilities, exit 0.
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    TensorMap t = fixture_tensors();
    at::Tensor w = t.at("visual.transformer.resblocks.2.mlp.c_fc.weight").clone();
    w.view(-1)[17] = bad;
    t["visual.transformer.resblocks.2.mlp.c_fc.weight"] = w;
    const std::string path = temp_dir() + "/non-finite.pt";
    save_state_dict(path, t);
    expect_one_line_error(path, {"tensor visual.transformer.resblocks.2.mlp.c_fc.weight holds NaN or infinite values"});
  }
}

TEST(BadCheckpoints, AnAllZeroProjectionIsRefused) {
  // Finite weights, but every unit feature is 0/0: before, NaN CAMs became an
  // all-background mask with exit 0.
  for (const char* name : {"visual.proj", "text_projection"}) {
    TensorMap t = fixture_tensors();
    t[name] = torch::zeros_like(t.at(name));
    const std::string path = temp_dir() + "/zero-proj.pt";
    save_state_dict(path, t);
    expect_one_line_error(path, {std::string("tensor ") + name + " is all zeros"});
  }
}

TEST(BadCheckpoints, AModelWithNonFiniteFeaturesFailsEachImageInsteadOfWritingAMask) {
  // Finite weights whose features overflow float32: the image's scores are
  // NaN or infinite. That image is a failure record, not a mask.
  TensorMap t = fixture_tensors();
  // ln_post's output near 1e38 times a projection near 1e37: every product
  // overflows, so the features are infinite and their unit vectors NaN.
  t["visual.ln_post.weight"] = t.at("visual.ln_post.weight").to(torch::kFloat) * 1e38;
  t["visual.proj"] = t.at("visual.proj").to(torch::kFloat) * 1e38;
  const std::string path = temp_dir() + "/overflowing-proj.pt";
  save_state_dict(path, t);
  const std::string image = test::shared("fixtures/parity/coco6/images/000000020992.jpg");
  for (const std::string command : {"generate", "segment"}) {
    const std::string out = temp_dir() + "/zero-proj-" + command;
    const std::string extra = command == "generate" ? " --labels cat" : " --method maskclip";
    std::string log;
    // One image, and it failed: nothing was produced (exit 1), the reason is recorded.
    EXPECT_EQ(test::run_command(test::clipes_binary() + " " + command + " -q --activation quick-gelu --model " + path +
                                    " --vocab " + test::vocab_path() + " --image " + image + extra + " --out " + out,
                                &log),
              1)
        << command << ": " << log;
    EXPECT_FALSE(std::filesystem::exists(out + "/masks/000000020992.png")) << command;
    EXPECT_NE(read_file(out + "/failures.jsonl").find("NaN or infinite"), std::string::npos) << command;
  }
  // tag: a failure record, no tags; classify: an error, no "nan" table.
  const std::string common = " -q --activation quick-gelu --model " + path + " --vocab " + test::vocab_path() +
                             " --image " + image;
  std::string log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " tag" + common + " --out " + temp_dir() + "/zero-proj-tag", &log),
            1)
      << log;
  EXPECT_NE(read_file(temp_dir() + "/zero-proj-tag/failures.jsonl").find("NaN or infinite"), std::string::npos);
  EXPECT_EQ(test::run_command(test::clipes_binary() + " classify" + common + " --classes cat,dog", &log), 2) << log;
  EXPECT_NE(log.find("not finite"), std::string::npos) << log;
  EXPECT_EQ(log.find("nan"), std::string::npos) << log;
}

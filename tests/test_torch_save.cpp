// torch.save files as Python writes them (issue 26 item 3, lseg-spec §9):
// state dicts pickled as OrderedDicts, storages tagged cuda:0, and
// PyTorch-Lightning checkpoints with optimizer states and class-object keys.
// LibTorch's unpickler asserted on the first ("isGenericDict() INTERNAL
// ASSERT FAILED") and cannot rebuild the last; clipes reads them with its
// own pickle reader (model/torch_save_pickle).
#include <gtest/gtest.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <sstream>

#include "clipes/model/checkpoint.h"
#include "clipes/model/clip_config.h"
#include "clipes/model/torch_save_pickle.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {

std::string temp_dir() {
  static const std::string dir = test::make_temp_dir("torch-save");
  return dir;
}

// The pickle CPython writes for torch.save(model.state_dict()) (protocol 2):
// an OrderedDict filled by SETITEMS, every tensor
// _rebuild_tensor_v2(<persistent storage id>, offset, size, stride, False,
// OrderedDict()), and the `_metadata` attribute set by BUILD at the end.
class PythonStatePickle {
 public:
  std::string finish(const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& location,
                     bool nested) {
    out_ = "\x80\x02";
    if (nested) out_ += "}(X" + le32(10) + "state_dict";
    out_ += "ccollections\nOrderedDict\n)R(";
    for (size_t i = 0; i < tensors.size(); ++i) {
      const at::Tensor& t = tensors[i].second;
      out_ += "X" + le32(static_cast<uint32_t>(tensors[i].first.size())) + tensors[i].first;
      out_ += "ctorch._utils\n_rebuild_tensor_v2\n((X" + le32(7) + "storage";
      out_ += "ctorch\n" + std::string(storage_type(t)) + "\n";
      const std::string key = std::to_string(i);
      out_ += "X" + le32(static_cast<uint32_t>(key.size())) + key;
      out_ += "X" + le32(static_cast<uint32_t>(location.size())) + location;
      out_ += integer(t.numel()) + "tQ" + integer(0) + "(";
      for (int64_t s : t.sizes()) out_ += integer(s);
      out_ += "t(";
      for (int64_t s : t.strides()) out_ += integer(s);
      out_ += "t\x89" "ccollections\nOrderedDict\n)Rt" "R";
    }
    out_ += "u}X" + le32(9) + "_metadata}sb";
    if (nested) out_ += "X" + le32(5) + "epochK\x07u";
    return out_ + ".";
  }

 private:
  static std::string le32(uint32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
  }
  static std::string integer(int64_t v) { return "J" + le32(static_cast<uint32_t>(v)); }
  static const char* storage_type(const at::Tensor& t) {
    switch (t.scalar_type()) {
      case at::kHalf: return "HalfStorage";
      case at::kLong: return "LongStorage";
      default: return "FloatStorage";
    }
  }
  std::string out_;
};

// Writes a zip the way torch.save does (archive/data.pkl, archive/data/<i>,
// archive/version) around `pickle`, with the tensors' bytes as records.
void write_torch_save(const std::string& path, const std::string& pickle,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::string bytes;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) {
      bytes.append(static_cast<const char*>(buf), n);
      return n;
    });
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const at::Tensor t = tensors[i].second.contiguous();
      writer.writeRecord("data/" + std::to_string(i), t.data_ptr(), t.numel() * t.element_size());
    }
    writer.writeEndOfFile();
  }
  write_file_atomic(path, bytes);
}

std::vector<std::pair<std::string, at::Tensor>> tiny_clip_tensors(const std::string& prefix) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : load_checkpoint(test::tiny_clip_path()).tensors)
    out.emplace_back(prefix + name, t.contiguous());
  return out;
}

}  // namespace

TEST(TorchSave, AnOrderedDictStateDictAsPythonSavesItLoads) {
  // What `torch.save(model.state_dict(), "open_clip_pytorch_model.bin")` writes.
  const auto tensors = tiny_clip_tensors("");
  const std::string path = temp_dir() + "/open_clip_pytorch_model.bin";
  write_torch_save(path, PythonStatePickle().finish(tensors, "cuda:0", false), tensors);
  const Checkpoint ckpt = load_checkpoint(path, Activation::QuickGelu);
  EXPECT_EQ(ckpt.format, CheckpointFormat::StateDict);
  const TensorMap& expected = load_checkpoint(test::tiny_clip_path()).tensors;
  ASSERT_EQ(ckpt.tensors.size(), expected.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(ckpt.tensors.count(name)) << name;
    EXPECT_TRUE(torch::equal(ckpt.tensors.at(name), t)) << name;
  }
  // Nested under "state_dict" with DataParallel's "module." prefix: the same weights.
  const auto prefixed = tiny_clip_tensors("module.");
  const std::string nested = temp_dir() + "/epoch_7.pt";
  write_torch_save(nested, PythonStatePickle().finish(prefixed, "cpu", true), prefixed);
  const TensorMap again = read_torch_save_tensors(nested);
  EXPECT_EQ(again.size(), expected.size());
  EXPECT_TRUE(torch::equal(again.at("visual.proj"), expected.at("visual.proj")));
}

TEST(TorchSave, ALightningCheckpointFromPythonLoadsWithoutPython) {
  // lseg_tiny.ckpt was written by Python's torch.save (PyTorch-Lightning
  // 1.4.9): OrderedDict state dict, optimizer states, a callbacks dict keyed
  // by a class object, every storage tagged cuda:0.
  const TensorMap t = read_torch_save_tensors(test::shared("fixtures/lseg/lseg_tiny.ckpt"));
  std::ifstream tsv(test::shared("fixtures/lseg/state_dict_keys_tiny.tsv"));
  std::string line;
  std::getline(tsv, line);  // header
  size_t rows = 0;
  while (std::getline(tsv, line)) {
    std::istringstream fields(line);
    std::string key, dtype, shape;
    std::getline(fields, key, '\t');
    std::getline(fields, dtype, '\t');
    std::getline(fields, shape, '\t');
    ++rows;
    ASSERT_TRUE(t.count(key)) << key;
    const at::Tensor& v = t.at(key);
    std::string got_shape;
    for (int64_t d : v.sizes()) got_shape += (got_shape.empty() ? "" : "x") + std::to_string(d);
    EXPECT_EQ(got_shape.empty() ? "scalar" : got_shape, shape) << key;
    const std::map<std::string, at::ScalarType> kTypes = {
        {"float32", at::kFloat}, {"float16", at::kHalf}, {"int64", at::kLong}};
    ASSERT_TRUE(kTypes.count(dtype)) << dtype;
    EXPECT_EQ(v.scalar_type(), kTypes.at(dtype)) << key;
    if (v.is_floating_point()) EXPECT_TRUE(torch::isfinite(v).all().item<bool>()) << key;
  }
  EXPECT_EQ(t.size(), rows);
  EXPECT_GT(rows, 400u);
  // The CLIP inside it is a whole CLIP (ViT-B/32 layout): the shapes say so.
  TensorMap clip;
  const std::string prefix = "net.clip_pretrained.";
  for (const auto& [name, v] : t)
    if (name.rfind(prefix, 0) == 0) clip[name.substr(prefix.size())] = v;
  const ClipConfig config = ClipConfig::infer(clip, "lseg_tiny.ckpt");
  EXPECT_EQ(config.vision.patch_size, 32);
  EXPECT_EQ(config.vision.width, 64);
  EXPECT_EQ(config.text.layers, 2);
}

TEST(TorchSave, DamagedPicklesAreOneLineNamingTheProblem) {
  const auto tensors = tiny_clip_tensors("");
  const std::vector<std::pair<std::string, at::Tensor>> one = {tensors.front()};
  const std::string good = PythonStatePickle().finish(one, "cpu", false);
  // A view that reaches past its storage: the pickle says more elements than the record holds.
  const std::string path = temp_dir() + "/short-record.pt";
  const std::vector<std::pair<std::string, at::Tensor>> shorter = {{one[0].first, one[0].second.flatten().narrow(0, 0, 1)}};
  write_torch_save(path, good, shorter);
  std::string msg = test::error_of([&] { read_torch_save_tensors(path); });
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find("storage record holds"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // Truncated pickles, at every length: an error naming the file, never a crash.
  for (size_t n = 0; n < good.size(); n += 7) {
    msg = test::error_of([&] { torch_save_state_dict(good.substr(0, n), "x.pt"); });
    EXPECT_EQ(msg.rfind("x.pt: ", 0), 0u) << n << ": " << msg;
  }
  // A storage id that is not ('storage', type, key, location, size).
  std::string bad = good;
  bad.replace(bad.find("storage"), 7, "storagX");
  msg = test::error_of([&] { torch_save_state_dict(bad, "x.pt"); });
  EXPECT_NE(msg.find("storage id"), std::string::npos) << msg;
  // A record name that would leave data/.
  bad = good;
  const size_t key = bad.find("X\x01\x00\x00\x00" "0");
  ASSERT_NE(key, std::string::npos);
  bad.replace(key, 6, std::string("X\x01\x00\x00\x00/", 6));
  msg = test::error_of([&] { torch_save_state_dict(bad, "x.pt"); });
  EXPECT_NE(msg.find("storage key"), std::string::npos) << msg;
}

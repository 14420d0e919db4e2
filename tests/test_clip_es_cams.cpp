// The official CLIP-ES CAM layout (io/clip_es_cams.h, io/npy_pickle.h): files
// numpy wrote (tests/data/clip_es_cams, made once with numpy 1.24, see its
// README) are read, and what we write is byte-identical to numpy's np.save of
// the same dict — so the official eval_cam.py / eval_cam_with_crf.py, which
// np.load(..., allow_pickle=True).item() it, read our files unchanged.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "clipes/io/clip_es_cams.h"
#include "clipes/io/npy.h"
#include "clipes/io/npy_pickle.h"
#include "clipes/io/saved_cams.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return test::source_dir() + "/tests/data/clip_es_cams/" + name; }

// The arrays the fixtures hold (README): keys [0, 5]; highres arange(12)/11;
// attn_highres the reverse, both [2, 2, 3] float16.
at::Tensor expected_highres() { return (torch::arange(12, torch::kDouble).view({2, 2, 3}) / 11).to(torch::kHalf); }
at::Tensor expected_attn() { return (torch::arange(11, -1, -1, torch::kDouble).view({2, 2, 3}) / 11).to(torch::kHalf); }
at::Tensor expected_keys() { return torch::tensor({0, 5}, torch::kLong); }

std::string temp_file(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("clipes-test-clip-es-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST(ClipEsCams, ReadsTheOfficialLayoutAsNumpyWroteIt) {
  const ClipEsCams c = read_clip_es_cams(fixture("numpy_keys_attn.npy"));
  EXPECT_TRUE(torch::equal(c.keys, expected_keys()));
  ASSERT_EQ(c.attn_highres.scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::equal(c.attn_highres, expected_attn()));
  EXPECT_FALSE(c.highres.defined());  // the official code does not save it
}

TEST(ClipEsCams, ReadsHighresAndOtherPickleProtocols) {
  const ClipEsCams three = read_clip_es_cams(fixture("numpy_keys_highres_attn.npy"));
  EXPECT_TRUE(torch::equal(three.highres, expected_highres()));
  EXPECT_TRUE(torch::equal(three.attn_highres, expected_attn()));
  // Protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL.
  const ClipEsCams p4 = read_clip_es_cams(fixture("pickle_protocol4.npy"));
  EXPECT_TRUE(torch::equal(p4.keys, expected_keys()));
  EXPECT_TRUE(torch::equal(p4.attn_highres, expected_attn()));
  // numpy 2 names the module numpy._core.multiarray.
  std::string bytes = read_file(fixture("numpy_keys_attn.npy"));
  const std::string old_name = "numpy.core.multiarray\n", new_name = "numpy._core.multiarray\n";
  for (size_t at = bytes.find(old_name); at != std::string::npos; at = bytes.find(old_name, at + new_name.size()))
    bytes.replace(at, old_name.size(), new_name);
  const PickledArrays numpy2 = parse_npy_pickled_dict(bytes, "numpy2.npy");
  ASSERT_EQ(numpy2.size(), 2u);
  EXPECT_EQ(numpy2[1].first, "attn_highres");
  EXPECT_EQ(numpy2[1].second.shape, (std::vector<int64_t>{2, 2, 3}));
}

TEST(ClipEsCams, AnImageWithoutLabelsHasEmptyFloatKeys) {
  // torch.tensor([]).numpy() is float32: accepted, as zero int64 keys.
  const ClipEsCams c = read_clip_es_cams(fixture("numpy_no_labels.npy"));
  EXPECT_EQ(c.keys.scalar_type(), torch::kLong);
  EXPECT_EQ(c.keys.numel(), 0);
  EXPECT_EQ(c.attn_highres.sizes(), (std::vector<int64_t>{0, 2, 3}));
}

TEST(ClipEsCams, WritesExactlyTheBytesNumpyWrites) {
  const std::string three = temp_file("three.npy"), two = temp_file("two.npy");
  // From float32 CAMs, as the pipeline has them: rounded to float16 on the way.
  write_clip_es_cams(three, expected_keys(), expected_attn().to(torch::kFloat), expected_highres().to(torch::kFloat));
  EXPECT_EQ(read_file(three), read_file(fixture("numpy_keys_highres_attn.npy")));
  write_clip_es_cams(two, expected_keys(), expected_attn(), at::Tensor());
  EXPECT_EQ(read_file(two), read_file(fixture("numpy_keys_attn.npy")));
}

TEST(ClipEsCams, LargeArraysAndDimensionsRoundTrip) {
  // BINBYTES (data ≥ 256 bytes), BININT2 / BININT dimensions, 1-byte dtypes ('|' order).
  PickledArrays arrays;
  PickledArray big;  // 600 bytes of data: BINBYTES
  big.dtype = "f2";
  big.shape = {1, 300};
  big.data.assign(600, '\x01');
  arrays.emplace_back("attn_highres", big);
  PickledArray wide;  // empty, but with dimensions that need BININT2 and BININT
  wide.dtype = "f4";
  wide.shape = {0, 300, 70000};
  arrays.emplace_back("highres", wide);
  PickledArray bytes;
  bytes.dtype = "u1";
  bytes.byte_order = '|';
  bytes.shape = {3};
  bytes.data = "abc";
  arrays.emplace_back("other", bytes);
  const PickledArrays back = parse_npy_pickled_dict(encode_npy_pickled_dict(arrays), "round-trip");
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].second.shape, big.shape);
  EXPECT_EQ(back[0].second.data, big.data);
  EXPECT_EQ(back[1].second.shape, wide.shape);
  EXPECT_EQ(back[2].second.byte_order, '|');
  EXPECT_EQ(back[2].second.data, "abc");
}

TEST(ClipEsCams, BadFilesFailWithTheFileNamedNeverACrash) {
  const std::string good = read_file(fixture("numpy_keys_highres_attn.npy"));
  // Every truncation is an error, never a crash or a half-read dict.
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_THROW(parse_npy_pickled_dict(good.substr(0, n), "cut.npy"), Error) << n;
  // Every single-byte corruption of the pickle either parses or fails cleanly.
  for (size_t i = 128; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    try {
      parse_npy_pickled_dict(bad, "flip.npy");
    } catch (const Error&) {
    }
  }
  // A plain array is not a dict, and read_npy says what a pickled file is.
  const std::string plain = temp_file("plain.npy");
  write_npy(plain, torch::zeros({2}));
  try {
    read_clip_es_cams(plain);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("plain.npy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a pickled dict"), std::string::npos) << e.what();
  }
  try {
    read_npy(fixture("numpy_keys_attn.npy"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pickled Python object"), std::string::npos) << e.what();
  }
  // A pickle calling anything but numpy's reconstruction is refused, not run.
  std::string evil = good;
  const size_t at = evil.find("numpy.core.multiarray\n_reconstruct");
  ASSERT_NE(at, std::string::npos);
  std::string call = "os\nsystem";
  call.resize(34, ' ');  // same length: the rest of the pickle stays valid
  evil.replace(at, 34, call);
  EXPECT_THROW(parse_npy_pickled_dict(evil, "evil.npy"), Error);
}

TEST(ClipEsCams, SavedCamsReadEitherLayout) {
  const fs::path dir = fs::path(temp_file("layouts"));
  fs::create_directories(dir);
  fs::copy_file(fixture("numpy_keys_attn.npy"), dir / "official.npy", fs::copy_options::overwrite_existing);
  write_npy((dir / "ours_refined.npy").string(), expected_attn());
  write_npy((dir / "ours_cam.npy").string(), expected_highres());
  write_npy((dir / "ours_keys.npy").string(), expected_keys());
  EXPECT_TRUE(saved_cams_exist(dir.string(), "official"));
  EXPECT_TRUE(saved_cams_exist(dir.string(), "ours"));
  EXPECT_FALSE(saved_cams_exist(dir.string(), "missing"));
  const SavedCams a = read_saved_cams(dir.string(), "official"), b = read_saved_cams(dir.string(), "ours");
  EXPECT_TRUE(torch::equal(a.refined, b.refined));
  EXPECT_TRUE(torch::equal(a.keys, b.keys));
  EXPECT_FALSE(a.cams.defined());
  EXPECT_TRUE(torch::equal(b.cams, expected_highres()));
  EXPECT_THROW(read_saved_cams(dir.string(), "missing"), Error);
}

// The include rule of docs/architecture.md, checked on every build: each
// folder of include/clipes/ and src/ has a layer, and a file may include
// clipes headers only from its own folder or from a lower layer. Two folders
// on one layer may not include each other at all, so no folder-level loop
// can form. A new folder fails here until it is given a layer below.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace {
namespace fs = std::filesystem;

// Lower numbers are lower layers; see docs/architecture.md "Layers".
const std::map<std::string, int>& layers() {
  static const std::map<std::string, int> l = {
      {"util", 0},                                 // errors, files, strings, hashing
      {"engine", 1}, {"io", 1},                    // fused kernels; images, PNG/NPY, masks on disk
      {"data", 2},   {"model", 2},                 // datasets; CLIP checkpoints and forward passes
      {"text", 3},                                 // tokenizer, prompts, text features (uses the model)
      {"cam", 4},    {"eval", 4},                  // CLIP-ES's CAM stages; mIoU
      {"methods", 5},                              // CLIP-ES, dense methods (plug-ins), TagCLIP, zero-shot
      {"pipeline", 6},                             // batch runners, run records, exports, benchmark
      {"cli", 7},                                  // the commands
  };
  return l;
}

struct Violation {
  std::string file, line;
};

std::vector<Violation> upward_includes(const fs::path& root, std::vector<std::string>& unknown_folders) {
  static const std::regex include_re(R"(^\s*#\s*include\s*[<"]clipes/([A-Za-z0-9_]+)/)");
  std::vector<Violation> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string folder = fs::relative(entry.path(), root).begin()->string();
    if (folder == entry.path().filename().string()) continue;  // a file at the root
    const auto self = layers().find(folder);
    if (self == layers().end()) {
      unknown_folders.push_back(entry.path().string());
      continue;
    }
    std::ifstream in(entry.path());
    std::string line;
    std::smatch m;
    while (std::getline(in, line)) {
      if (!std::regex_search(line, m, include_re)) continue;
      const std::string target = m[1];
      if (target == folder) continue;
      const auto t = layers().find(target);
      if (t == layers().end() || t->second >= self->second) out.push_back({entry.path().string(), line});
    }
  }
  return out;
}

TEST(IncludeLayers, EveryIncludePointsToItsOwnFolderOrALowerLayer) {
  std::vector<std::string> unknown;
  std::vector<Violation> bad;
  for (const char* root : {"include/clipes", "src"}) {
    const fs::path dir = fs::path(CLIPES_SOURCE_DIR) / root;
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    for (auto& v : upward_includes(dir, unknown)) bad.push_back(std::move(v));
  }
  for (const auto& f : unknown) ADD_FAILURE() << f << ": its folder has no layer in test_include_layers.cpp";
  for (const auto& v : bad) ADD_FAILURE() << v.file << " includes a header of its own layer or above: " << v.line;
}

TEST(IncludeLayers, TheCheckSeesAnUpwardInclude) {
  // The rule itself: a model header reaching up into text/ is caught.
  const fs::path dir = fs::temp_directory_path() / "clipes-include-layers";
  fs::remove_all(dir);
  fs::create_directories(dir / "model");
  fs::create_directories(dir / "text");
  std::ofstream(dir / "model" / "a.h") << "#include \"clipes/text/b.h\"\n#include \"clipes/util/error.h\"\n";
  std::ofstream(dir / "text" / "b.h") << "#include \"clipes/model/a.h\"\n";
  std::vector<std::string> unknown;
  const std::vector<Violation> bad = upward_includes(dir, unknown);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].file.find("model"), std::string::npos);
  EXPECT_TRUE(unknown.empty());
  fs::remove_all(dir);
}

}  // namespace

// Helpers shared by the test files: where the fixtures are, and tensor checks.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

namespace clipes::test {

// ../shared beside the checkout (CLIPES_SHARED overrides, for unusual layouts).
inline std::string shared_dir() {
  if (const char* env = std::getenv("CLIPES_SHARED")) return env;
  return CLIPES_SHARED_DIR;
}
inline std::string shared(const std::string& rel) { return shared_dir() + "/" + rel; }
inline std::string source_dir() { return CLIPES_SOURCE_DIR; }
// CLIPES_BINARY_UNDER_TEST runs the CLI tests against another build (e.g. an
// older commit's binary, to show a regression test fails there).
inline std::string clipes_binary() {
  if (const char* env = std::getenv("CLIPES_BINARY_UNDER_TEST"); env && *env) return env;
  return CLIPES_BINARY;
}

inline std::string tiny_clip_path() { return shared("fixtures/tiny-clip/tiny-clip-a.pt"); }
inline std::string vocab_path() { return shared("fixtures/clip/bpe_simple_vocab_16e6.txt.gz"); }

// A fresh empty folder under the system temp dir, unique per test.
std::string make_temp_dir(const std::string& name);

// Runs a shell command, returns its exit code; stdout+stderr go to *output.
int run_command(const std::string& command, std::string* output);

// The message of the clipes::Error that `f` throws, or "(no error)".
std::string error_of(const std::function<void()>& f);

}  // namespace clipes::test

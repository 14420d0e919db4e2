// Atomic file output: write to "<path>.tmp-<pid>" in the same folder, then
// rename over <path>. A killed run never leaves a half-written output behind,
// which is what makes `generate` resumable by "skip what exists".
#pragma once
#include <string>
#include <string_view>

namespace clipes {

// Writes `bytes` to `path` atomically, creating parent folders.
// Throws clipes::Error naming the file if anything fails.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; throws clipes::Error naming the file if it cannot.
std::string read_file(const std::string& path);

}  // namespace clipes

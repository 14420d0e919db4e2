// Atomic file output: write to "<path>.tmp-<pid>" in the same folder, then
// rename over <path>. A killed run never leaves a half-written output behind,
// which is what makes `generate` resumable by "skip what exists".
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace clipes {

// Writes `bytes` to `path` atomically, creating parent folders.
// Throws clipes::Error naming the file if anything fails.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Removes the "<target>.tmp-<pid>" leftovers that a killed writer left for
// these targets (one listing per folder); returns how many were removed. Only
// call it for targets no live process is writing (generate: its own shard's
// outputs — shards are disjoint, so a concurrent shard's temporaries survive).
size_t remove_stale_temporaries(const std::vector<std::string>& targets);

// Reads a whole file; throws clipes::Error naming the file if it cannot.
std::string read_file(const std::string& path);

}  // namespace clipes

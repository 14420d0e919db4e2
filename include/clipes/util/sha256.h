// SHA-256 of files, for `clipes info` (is this the official ViT-B-16.pt?) and
// for recording which weights produced a run.
#pragma once
#include <string>
#include <string_view>

namespace clipes {

// Lower-case hex SHA-256 of the file's bytes, read in chunks (constant memory
// however large the checkpoint). Throws clipes::Error naming the file.
std::string sha256_file(const std::string& path);

// Lower-case hex SHA-256 of bytes in memory.
std::string sha256_hex(std::string_view bytes);

}  // namespace clipes

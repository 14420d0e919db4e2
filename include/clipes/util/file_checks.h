// Existence checks that never throw (std::filesystem's do on permission
// errors): a file we cannot stat is treated as absent, and the caller's
// later open reports the real problem with the file name.
#pragma once
#include <filesystem>
#include <system_error>

namespace clipes {

inline bool is_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

inline bool is_dir(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec);
}

}  // namespace clipes

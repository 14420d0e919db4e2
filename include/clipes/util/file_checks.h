// Existence checks that never throw (std::filesystem's do on permission
// errors): a file we cannot stat is treated as absent, and the caller's
// later open reports the real problem with the file name.
#pragma once
#include <filesystem>
#include <string>
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

// Why `path` cannot be read as a regular file, in words ("file not found",
// `directory_problem` for a folder, "too many levels of symbolic links
// (symlink loop)", "permission denied", "not a regular file" for a FIFO or
// device, ...), or "" when it is a readable regular file.
// std::filesystem::exists() folds a symlink loop into "does not exist"; this
// reports errno as it is.
// `allow_pipe`: a pipe or FIFO is fine too — a text read once from start to
// end (a list from `--list <(grep ...)`), where images, read by parts, are not.
std::string why_not_a_readable_file(const std::string& path,
                                    const std::string& directory_problem = "is a folder, not a file",
                                    bool allow_pipe = false);

// Throws file_error(path, why_not_a_readable_file(path, ..., allow_pipe)) unless it is "".
void require_readable_file(const std::string& path, bool allow_pipe = false);

}  // namespace clipes

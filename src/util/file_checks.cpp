#include "clipes/util/file_checks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clipes/util/error.h"

namespace clipes {

std::string why_not_a_readable_file(const std::string& path, const std::string& directory_problem, bool allow_pipe) {
  if (path.empty()) return "empty file name";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    switch (errno) {
      case ENOENT: return "file not found";
      case ENOTDIR: return "file not found (a component of the path is not a directory)";
      case ELOOP: return "too many levels of symbolic links (symlink loop)";
      case EACCES: return "permission denied";
      case ENAMETOOLONG: return "file name too long";
      default: return std::strerror(errno);
    }
  }
  if (S_ISDIR(st.st_mode)) return directory_problem;
  // A device would block or never end; a pipe ends when its writer does.
  if (!S_ISREG(st.st_mode) && !(allow_pipe && S_ISFIFO(st.st_mode)))
    return allow_pipe ? "not a regular file or pipe" : "not a regular file";
  if (::access(path.c_str(), R_OK) != 0) return errno == EACCES ? "permission denied" : std::strerror(errno);
  return "";
}

void require_readable_file(const std::string& path, bool allow_pipe) {
  const std::string why = why_not_a_readable_file(path, "is a folder, not a file", allow_pipe);
  if (!why.empty()) throw file_error(path, why);
}

}  // namespace clipes

#include "clipes/util/file_checks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clipes/util/error.h"

namespace clipes {

std::string why_not_a_readable_file(const std::string& path) {
  if (path.empty()) return "empty file name";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    switch (errno) {
      case ENOENT: return "file not found";
      case ELOOP: return "too many levels of symbolic links (a symlink loop?)";
      case EACCES: return "permission denied";
      case ENOTDIR: return "a part of the path is not a folder";
      case ENAMETOOLONG: return "file name too long";
      default: return std::strerror(errno);
    }
  }
  if (S_ISDIR(st.st_mode)) return "is a folder, not a file";
  if (!S_ISREG(st.st_mode)) return "is not a regular file";
  if (::access(path.c_str(), R_OK) != 0) return errno == EACCES ? "permission denied" : std::strerror(errno);
  return "";
}

void require_readable_file(const std::string& path) {
  const std::string why = why_not_a_readable_file(path);
  if (!why.empty()) throw file_error(path, why);
}

}  // namespace clipes

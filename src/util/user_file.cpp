#include "clipes/util/user_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {

void write_user_file(const std::string& path, std::string_view bytes) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) {
    write_file_atomic(path, bytes);
    return;
  }
  if (S_ISDIR(st.st_mode)) throw file_error(path, "is a folder, not a file");
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) throw file_error(path, std::string("cannot open for writing: ") + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw file_error(path, std::string("cannot write: ") + std::strerror(n < 0 ? err : EIO));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) throw file_error(path, std::string("cannot write: ") + std::strerror(errno));
}

}  // namespace clipes

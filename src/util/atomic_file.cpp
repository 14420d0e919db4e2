#include "clipes/util/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"

namespace clipes {

void write_file_atomic(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw file_error(path, "cannot create folder: " + ec.message());
  }
  // Same folder as the target so that rename() is atomic (same filesystem).
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw file_error(path, std::string("cannot write: ") + std::strerror(errno));
    errno = 0;
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      // errno of the failed write(2) (ENOSPC, EFBIG, EDQUOT, EIO), taken
      // before remove() can change it.
      const int err = errno;
      const std::string reason = err ? std::strerror(err) : "write failed";
      out.close();
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw file_error(path, "cannot write: " + reason);
    }
    out.close();
    if (!out) {
      const std::string reason = errno ? std::strerror(errno) : "close failed";
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw file_error(path, "cannot write: " + reason);
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    const std::string reason = ec.message();  // before remove() overwrites ec
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw file_error(path, "cannot rename temporary file: " + reason);
  }
}

size_t remove_stale_temporaries(const std::vector<std::string>& targets) {
  namespace fs = std::filesystem;
  std::map<fs::path, std::set<std::string>> names_by_folder;
  for (const auto& t : targets) {
    const fs::path p(t);
    names_by_folder[p.parent_path()].insert(p.filename().string());
  }
  size_t removed = 0;
  for (const auto& [folder, names] : names_by_folder) {
    std::error_code ec;
    fs::directory_iterator it(folder.empty() ? fs::path(".") : folder, ec), end;
    if (ec) continue;  // no folder yet: nothing left over
    std::vector<fs::path> stale;
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      const std::string name = it->path().filename().string();
      const auto tmp = name.rfind(".tmp-");
      if (tmp == std::string::npos || tmp + 5 == name.size()) continue;
      if (name.find_first_not_of("0123456789", tmp + 5) != std::string::npos) continue;
      if (names.count(name.substr(0, tmp))) stale.push_back(it->path());
    }
    for (const auto& p : stale)
      if (fs::remove(p, ec)) ++removed;
  }
  return removed;
}

std::string read_file(const std::string& path) {
  // A folder opens fine as an ifstream on Linux and reads as empty: check
  // first. Read once to the end, so a pipe (`--list <(...)`) is fine.
  require_readable_file(path, /*allow_pipe=*/true);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw file_error(path, "read failed");
  return ss.str();
}

}  // namespace clipes

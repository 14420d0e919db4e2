#include "clipes/data/safe_path.h"

#include "clipes/util/error.h"

namespace clipes {

std::string safe_stem(const std::string& id, const std::string& source) {
  bool ok = !id.empty() && id.front() != '.';  // also covers "." and ".."
  for (unsigned char c : id) {
    if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) ok = false;
  }
  if (!ok) {
    // Control characters would garble the one-line message; show them escaped.
    std::string shown;
    for (unsigned char c : id) {
      if (c < 0x20 || c == 0x7f) {
        static const char* hex = "0123456789abcdef";
        shown += "\\x";
        shown += hex[c >> 4];
        shown += hex[c & 15];
      } else {
        shown += static_cast<char>(c);
      }
    }
    throw file_error(source, "unsafe image id '" + shown + "'");
  }
  return id;
}

}  // namespace clipes

#include "clipes/util/strings.h"

namespace clipes {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

std::vector<std::string> split_comma_list(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string piece = trim(text.substr(pos, comma - pos));
    if (!piece.empty()) out.push_back(std::move(piece));
    pos = comma + 1;
  }
  return out;
}

}  // namespace clipes

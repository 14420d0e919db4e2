#include "clipes/util/option_error.h"

namespace clipes {
namespace {

// ASCII unit separators around the key: a byte no message of ours contains,
// and printable() escapes it in anything a user typed.
constexpr char kMark = '\x1f';

std::function<std::string(const std::string&)>& spelling() {
  static std::function<std::string(const std::string&)> spell;
  return spell;
}

}  // namespace

std::string option_key(const std::string& key) { return kMark + key + kMark; }

std::string render_option_keys(const std::string& message) {
  std::string out;
  size_t pos = 0;
  while (pos < message.size()) {
    const size_t open = message.find(kMark, pos);
    const size_t close = open == std::string::npos ? std::string::npos : message.find(kMark, open + 1);
    if (close == std::string::npos) {
      out.append(message, pos, std::string::npos);
      break;
    }
    out.append(message, pos, open - pos);
    const std::string key = message.substr(open + 1, close - open - 1);
    out += spelling() ? spelling()(key) : key;
    pos = close + 1;
  }
  return out;
}

std::string long_option_spelling(const std::string& key) {
  std::string flag = "--" + key;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

void set_option_spelling(std::function<std::string(const std::string& key)> spell) { spelling() = std::move(spell); }

}  // namespace clipes

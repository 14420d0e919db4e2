// The .npy header: magic, version, a little-endian length and a Python dict
// literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
// Parsed by hand (no std::regex: it recurses per character and can overflow
// the stack on a long hostile header) and without torch, so that it can be
// fuzzed alone (fuzz/fuzz_npy.cpp).
#include <cstring>
#include <limits>

#include "clipes/io/npy.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

struct DtypeSize {
  const char* descr;
  size_t size;
};
// The dtypes read_npy maps to torch types (little-endian only, as LibTorch).
constexpr DtypeSize kDtypes[] = {{"<f2", 2}, {"<f4", 4}, {"<f8", 8}, {"<i8", 8},
                                 {"<i4", 4}, {"|u1", 1}, {"|b1", 1}, {"<u1", 1}};

// A cursor over the header dict; every problem is reported as a bad header.
class DictParser {
 public:
  DictParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  void skip_space() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  bool at_end() const { return p_ >= s_.size(); }
  char peek() const { return p_ < s_.size() ? s_[p_] : '\0'; }
  bool take(char c) {
    skip_space();
    if (peek() != c) return false;
    ++p_;
    return true;
  }
  void expect(char c, const char* what) {
    if (!take(c)) fail(std::string("expected ") + what);
  }
  // 'text' or "text"; numpy never writes escapes in these strings.
  std::string string_literal(const char* what) {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(std::string("expected a quoted ") + what);
    const size_t end = s_.find(quote, p_ + 1);
    if (end == std::string::npos) fail(std::string("unterminated ") + what);
    std::string out = s_.substr(p_ + 1, end - p_ - 1);
    p_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_space();
    if (s_.compare(p_, 4, "True") == 0) return p_ += 4, true;
    if (s_.compare(p_, 5, "False") == 0) return p_ += 5, false;
    fail("fortran_order is neither True nor False");
  }
  // (), (3,), (3, 4) — Python 2 numpy wrote longs as 3L.
  std::vector<int64_t> shape_tuple() {
    expect('(', "'(' after 'shape':");
    std::vector<int64_t> shape;
    while (!take(')')) {
      skip_space();
      if (peek() < '0' || peek() > '9') fail("shape is not a tuple of non-negative integers");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) fail("shape dimension is too large");
        v = v * 10 + digit;
        ++p_;
      }
      if (peek() == 'L') ++p_;
      shape.push_back(v);
      if (take(')')) break;
      expect(',', "',' or ')' in the shape");
    }
    return shape;
  }
  [[noreturn]] void fail(const std::string& problem) const {
    throw file_error(name_, "bad .npy header (" + problem + ")");
  }

 private:
  const std::string& s_;
  const std::string& name_;
  size_t p_ = 0;
};

}  // namespace

NpyHeader parse_npy_header(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    throw file_error(name, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw file_error(name, "truncated .npy header");
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
    offset = 12;
  } else {
    throw file_error(name, "unsupported .npy version " + std::to_string(major));
  }
  if (header_len > bytes.size() - offset) throw file_error(name, "truncated .npy header");
  const std::string dict = bytes.substr(offset, header_len);

  NpyHeader h;
  bool have_descr = false, have_shape = false, have_order = false, fortran = false;
  DictParser in(dict, name);
  in.expect('{', "'{'");
  while (!in.take('}')) {
    const std::string key = in.string_literal("key");
    in.expect(':', "':' after a key");
    bool* seen = nullptr;
    if (key == "descr") {
      seen = &have_descr;
      h.descr = in.string_literal("descr");
    } else if (key == "fortran_order") {
      seen = &have_order;
      fortran = in.boolean();
    } else if (key == "shape") {
      seen = &have_shape;
      h.shape = in.shape_tuple();
    } else {
      in.fail("unexpected key '" + key.substr(0, 40) + "'");
    }
    if (*seen) in.fail("key '" + key + "' appears twice");
    *seen = true;
    if (in.take('}')) break;
    in.expect(',', "',' or '}' after a value");
  }
  in.skip_space();
  if (!in.at_end()) in.fail("bytes after the closing '}'");
  if (!have_descr) throw file_error(name, "no dtype in .npy header");
  if (!have_shape) throw file_error(name, "no shape in .npy header");
  if (fortran) throw file_error(name, "Fortran-ordered arrays are not supported");

  h.data_offset = offset + header_len;
  if (h.descr == "|O") {
    if (!h.shape.empty()) throw file_error(name, "object arrays other than a single pickled object are not supported");
    h.pickled_object = true;
    h.data_bytes = bytes.size() - h.data_offset;
    return h;
  }
  for (const auto& d : kDtypes)
    if (h.descr == d.descr) h.item_size = d.size;
  if (h.item_size == 0) throw file_error(name, "unsupported .npy dtype " + h.descr.substr(0, 40));

  const size_t available = bytes.size() - h.data_offset;
  // Overflow-safe size: the product of the dimensions (zeros counted as 1, so
  // that e.g. (0, 2**62, 4) — whose strides would overflow in torch — is
  // refused too) times the item size must fit in 63 bits.
  auto shape_text = [&] {
    std::string t;
    for (size_t i = 0; i < h.shape.size(); ++i) t += (i ? ", " : "") + std::to_string(h.shape[i]);
    return "(" + t + (h.shape.size() == 1 ? ",)" : ")");
  };
  uint64_t nbytes = h.item_size;
  bool empty = false;
  for (int64_t dim : h.shape) {
    empty = empty || dim == 0;
    if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(dim == 0 ? 1 : dim), &nbytes) ||
        nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw file_error(name, "shape " + shape_text() + " is too large");
  }
  if (empty) nbytes = 0;
  if (nbytes > available)
    throw file_error(name, "truncated .npy data (" + std::to_string(available) + " of " + std::to_string(nbytes) +
                               " bytes for shape " + shape_text() + ")");
  h.data_bytes = static_cast<size_t>(nbytes);
  return h;
}

std::string npy_header_bytes(const std::string& descr, const std::vector<int64_t>& shape) {
  // numpy's tuple syntax: "()", "(3,)", "(3, 4)".
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Pad with spaces so that magic+len+header+'\n' is a multiple of 64.
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>((dict.size() >> 8) & 0xff));
  return out + dict;
}

}  // namespace clipes

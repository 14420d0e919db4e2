// safetensors header → checked tensor entries, without torch (see
// safetensors_header.h). Every size that comes from the file is checked
// before it is used: the header length against the file, each tensor's shape
// product (overflow-safe) against its byte range, the range against the data.
#include "clipes/model/safetensors_header.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>

#include "clipes/util/error.h"

namespace clipes {
namespace {

struct DtypeSize {
  const char* name;
  size_t size;
};
// The dtypes parse_safetensors maps to torch types.
constexpr DtypeSize kDtypes[] = {{"F16", 2}, {"BF16", 2}, {"F32", 4}, {"F64", 8}, {"I64", 8},
                                 {"I32", 4}, {"I8", 1},   {"U8", 1},  {"BOOL", 1}};

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  return n;
}

// Names from the file go into messages: keep them short and on one line.
std::string brief(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 80)) out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  return s.size() > 80 ? out + "..." : out;
}

uint64_t non_negative(const nlohmann::json& v, const std::string& path, const std::string& what) {
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
    throw file_error(path, what + " is not a non-negative integer");
  return v.get<uint64_t>();
}

}  // namespace

bool looks_like_safetensors(const std::string& bytes) {
  if (bytes.size() < 10) return false;
  const uint64_t n = header_length(bytes);
  return n >= 2 && n <= bytes.size() - 8 && bytes[8] == '{';
}

uint64_t safetensors_data_start(const std::string& bytes) { return 8 + header_length(bytes); }

std::vector<SafetensorsEntry> parse_safetensors_header(const std::string& bytes, const std::string& path) {
  if (!looks_like_safetensors(bytes)) throw file_error(path, "not a safetensors file (bad header)");
  const uint64_t n = header_length(bytes);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + static_cast<std::ptrdiff_t>(8 + n));
  } catch (const nlohmann::json::exception& e) {
    throw file_error(path, "corrupt safetensors header (" + brief(e.what()) + ")");
  }
  if (!header.is_object()) throw file_error(path, "corrupt safetensors header (not a JSON object)");
  const uint64_t data_size = bytes.size() - 8 - n;
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string what = "tensor " + brief(name);
    SafetensorsEntry e;
    e.name = name;
    if (!info.is_object()) throw file_error(path, "corrupt safetensors entry for " + what);
    const auto dtype = info.find("dtype"), shape = info.find("shape"), offsets = info.find("data_offsets");
    if (dtype == info.end() || shape == info.end() || offsets == info.end())
      throw file_error(path, "corrupt safetensors entry for " + what + " (needs dtype, shape, data_offsets)");
    if (!dtype->is_string()) throw file_error(path, what + ": dtype is not a string");
    e.dtype = dtype->get<std::string>();
    for (const auto& d : kDtypes)
      if (e.dtype == d.name) e.item_size = d.size;
    if (e.item_size == 0) throw file_error(path, what + " has unsupported dtype " + brief(e.dtype));
    if (!shape->is_array()) throw file_error(path, what + ": shape is not a list");
    // The product of the dimensions (zeros counted as 1, so that the strides
    // torch derives cannot overflow either) times the item size must fit in 63 bits.
    uint64_t nbytes = e.item_size;
    bool empty = false;
    for (const auto& dim_json : *shape) {
      const uint64_t dim = non_negative(dim_json, path, what + ": a shape dimension");
      if (__builtin_mul_overflow(nbytes, dim == 0 ? 1 : dim, &nbytes) ||
          nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw file_error(path, what + " has a shape too large for any file");
      empty = empty || dim == 0;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (empty) nbytes = 0;
    if (!offsets->is_array() || offsets->size() != 2)
      throw file_error(path, what + ": data_offsets is not [begin, end]");
    e.begin = non_negative((*offsets)[0], path, what + ": data_offsets[0]");
    e.end = non_negative((*offsets)[1], path, what + ": data_offsets[1]");
    if (e.begin > e.end || e.end > data_size)
      throw file_error(path, what + " lies outside the file (truncated?)");
    if (nbytes != e.end - e.begin)
      throw file_error(path, what + " has " + std::to_string(e.end - e.begin) + " bytes, its shape needs " +
                                 std::to_string(nbytes));
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace clipes

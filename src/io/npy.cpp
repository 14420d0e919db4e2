#include "clipes/io/npy.h"

#include <torch/torch.h>

#include <cstring>
#include <regex>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

struct DtypeCode {
  const char* descr;
  at::ScalarType type;
};
// Little-endian only: every platform LibTorch supports is little-endian.
constexpr DtypeCode kDtypes[] = {
    {"<f2", at::kHalf}, {"<f4", at::kFloat}, {"<f8", at::kDouble}, {"<i8", at::kLong},
    {"<i4", at::kInt},  {"|u1", at::kByte},  {"|b1", at::kBool},   {"<u1", at::kByte},
};

}  // namespace

at::Tensor read_npy(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    throw file_error(path, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw file_error(path, "truncated .npy header");
    uint32_t n;
    std::memcpy(&n, bytes.data() + 8, 4);
    header_len = n;
    offset = 12;
  } else {
    throw file_error(path, "unsupported .npy version " + std::to_string(major));
  }
  if (offset + header_len > bytes.size()) throw file_error(path, "truncated .npy header");
  const std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']+)'")))
    throw file_error(path, "no dtype in .npy header");
  const std::string descr = m[1];
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True")))
    throw file_error(path, "Fortran-ordered arrays are not supported");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    throw file_error(path, "no shape in .npy header");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  const std::regex digits("\\d+");
  std::sregex_iterator it(dims.begin(), dims.end(), digits), end;
  for (; it != end; ++it) shape.push_back(std::stoll(it->str()));

  const DtypeCode* code = nullptr;
  for (const auto& d : kDtypes)
    if (descr == d.descr) code = &d;
  if (!code) throw file_error(path, "unsupported .npy dtype " + descr);

  at::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(code->type));
  const size_t nbytes = t.numel() * t.element_size();
  const size_t data_off = offset + header_len;
  if (bytes.size() - data_off < nbytes)
    throw file_error(path, "truncated .npy data (" + std::to_string(bytes.size() - data_off) +
                               " of " + std::to_string(nbytes) + " bytes)");
  std::memcpy(t.data_ptr(), bytes.data() + data_off, nbytes);
  return t;
}

std::vector<char> encode_npy(const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const char* descr = nullptr;
  for (const auto& d : kDtypes)
    if (t.scalar_type() == d.type) {
      descr = d.descr;
      break;
    }
  if (!descr) throw Error(std::string("cannot write dtype ") + c10::toString(t.scalar_type()) + " to .npy");
  // numpy's tuple syntax: "()", "(3,)", "(3, 4)".
  std::string shape;
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  if (t.dim() == 1) shape += ",";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" +
                       shape + "), }";
  // Pad with spaces so that magic+len+header+'\n' is a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<char> out = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out.insert(out.end(), header.begin(), header.end());
  const char* data = static_cast<const char*>(t.data_ptr());
  out.insert(out.end(), data, data + t.numel() * t.element_size());
  return out;
}

void write_npy(const std::string& path, const at::Tensor& tensor) {
  const std::vector<char> bytes = encode_npy(tensor);
  write_file_atomic(path, std::string_view(bytes.data(), bytes.size()));
}

}  // namespace clipes

#include "clipes/io/npy.h"

#include <torch/torch.h>

#include <cstring>

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
  const NpyHeader header = parse_npy_header(bytes, path);  // sizes checked against the bytes
  const DtypeCode* code = nullptr;
  for (const auto& d : kDtypes)
    if (header.descr == d.descr) code = &d;
  if (!code) throw file_error(path, "unsupported .npy dtype " + header.descr);
  at::Tensor t = torch::empty(header.shape, torch::TensorOptions().dtype(code->type));
  if (static_cast<size_t>(t.numel()) * t.element_size() != header.data_bytes)
    throw file_error(path, "internal error: .npy size disagrees with the tensor's");
  std::memcpy(t.data_ptr(), bytes.data() + header.data_offset, header.data_bytes);
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

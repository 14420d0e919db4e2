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
  if (header.pickled_object)
    throw file_error(path, "holds a pickled Python object (np.save of a dict, e.g. the official CLIP-ES CAM layout), "
                           "not an array");
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
  const std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  const std::string header = npy_header_bytes(descr, shape);
  std::vector<char> out(header.begin(), header.end());
  const char* data = static_cast<const char*>(t.data_ptr());
  out.insert(out.end(), data, data + t.numel() * t.element_size());
  return out;
}

void write_npy(const std::string& path, const at::Tensor& tensor) {
  const std::vector<char> bytes = encode_npy(tensor);
  write_file_atomic(path, std::string_view(bytes.data(), bytes.size()));
}

}  // namespace clipes

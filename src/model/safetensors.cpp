#include "clipes/model/safetensors.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstring>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeName kDtypes[] = {{"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F32", at::kFloat},
                                 {"F64", at::kDouble}, {"I64", at::kLong},     {"I32", at::kInt},
                                 {"I8", at::kChar},   {"U8", at::kByte},      {"BOOL", at::kBool}};

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian platforms only (as LibTorch)
  return n;
}

}  // namespace

bool looks_like_safetensors(const std::string& bytes) {
  if (bytes.size() < 10) return false;
  const uint64_t n = header_length(bytes);
  return n >= 2 && n <= bytes.size() - 8 && bytes[8] == '{';
}

TensorMap parse_safetensors(const std::string& bytes, const std::string& path) {
  if (!looks_like_safetensors(bytes)) throw file_error(path, "not a safetensors file (bad header)");
  const uint64_t n = header_length(bytes);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, n));
  } catch (const std::exception& e) {
    throw file_error(path, "corrupt safetensors header (" + std::string(e.what()).substr(0, 80) + ")");
  }
  const size_t data_start = 8 + n;
  const size_t data_size = bytes.size() - data_start;
  TensorMap out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      const std::string dtype = info.at("dtype");
      const std::vector<int64_t> shape = info.at("shape");
      const std::vector<uint64_t> offsets = info.at("data_offsets");
      const DtypeName* d = nullptr;
      for (const auto& k : kDtypes)
        if (dtype == k.name) d = &k;
      if (!d) throw file_error(path, "tensor " + name + " has unsupported dtype " + dtype);
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
        throw file_error(path, "tensor " + name + " lies outside the file (truncated?)");
      at::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(d->type));
      const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
      if (nbytes != offsets[1] - offsets[0])
        throw file_error(path, "tensor " + name + " has " + std::to_string(offsets[1] - offsets[0]) +
                                   " bytes, its shape needs " + std::to_string(nbytes));
      std::memcpy(t.data_ptr(), bytes.data() + data_start + offsets[0], nbytes);
      out[name] = t;
    } catch (const nlohmann::json::exception&) {
      throw file_error(path, "corrupt safetensors entry for tensor " + name);
    }
  }
  return out;
}

void write_safetensors(const std::string& path, const TensorMap& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const DtypeName* d = nullptr;
    for (const auto& k : kDtypes)
      if (t.scalar_type() == k.type) d = &k;
    if (!d) throw file_error(path, "cannot store dtype of tensor " + name);
    const size_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    header[name] = {{"dtype", d->name}, {"shape", t.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data like the reference writer
  const uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  write_file_atomic(path, out + h + data);
}

}  // namespace clipes

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

}  // namespace

TensorMap parse_safetensors(const std::string& bytes, const std::string& path) {
  const std::vector<SafetensorsEntry> entries = parse_safetensors_header(bytes, path);
  const uint64_t data_start = safetensors_data_start(bytes);
  TensorMap out;
  for (const SafetensorsEntry& e : entries) {
    const DtypeName* d = nullptr;
    for (const auto& k : kDtypes)
      if (e.dtype == k.name) d = &k;
    if (!d) throw file_error(path, "tensor " + e.name + " has unsupported dtype " + e.dtype);
    at::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(d->type));
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (nbytes != e.end - e.begin)  // the header check used the same sizes; a mismatch is our bug
      throw file_error(path, "internal error: tensor " + e.name + " size disagrees with its header entry");
    std::memcpy(t.data_ptr(), bytes.data() + data_start + e.begin, nbytes);
    out[e.name] = t;
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

#include "clipes/io/clip_es_cams.h"

#include <torch/torch.h>

#include <cstring>

#include "clipes/io/npy_pickle.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

struct Code {
  const char* dtype;
  at::ScalarType type;
};
constexpr Code kCodes[] = {{"f2", at::kHalf}, {"f4", at::kFloat}, {"f8", at::kDouble}, {"i8", at::kLong},
                           {"i4", at::kInt},  {"u1", at::kByte},  {"b1", at::kBool}};

at::Tensor to_tensor(const PickledArray& a) {
  for (const auto& c : kCodes)
    if (a.dtype == c.dtype) {
      at::Tensor t = torch::empty(a.shape, torch::TensorOptions().dtype(c.type));
      std::memcpy(t.data_ptr(), a.data.data(), a.data.size());  // sizes checked by the parser
      return t;
    }
  throw Error("unsupported dtype " + a.dtype);  // the parser lets through only the codes above
}

PickledArray from_tensor(const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  PickledArray a;
  for (const auto& c : kCodes)
    if (t.scalar_type() == c.type) a.dtype = c.dtype;
  if (a.dtype.empty()) throw Error(std::string("cannot pickle dtype ") + c10::toString(t.scalar_type()));
  a.byte_order = t.element_size() == 1 ? '|' : '<';
  a.shape.assign(t.sizes().begin(), t.sizes().end());
  a.data.assign(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel() * t.element_size()));
  return a;
}

}  // namespace

ClipEsCams read_clip_es_cams(const std::string& path) {
  ClipEsCams out;
  for (const auto& [key, array] : parse_npy_pickled_dict(read_file(path), path)) {
    if (key == "keys") out.keys = to_tensor(array);
    else if (key == "attn_highres") out.attn_highres = to_tensor(array);
    else if (key == "highres") out.highres = to_tensor(array);
  }
  if (!out.keys.defined()) throw file_error(path, "CLIP-ES CAM dict has no 'keys'");
  if (!out.attn_highres.defined()) throw file_error(path, "CLIP-ES CAM dict has no 'attn_highres'");
  if (out.keys.dim() != 1) throw file_error(path, "'keys' must be one-dimensional");
  // The official code builds keys with torch.tensor(list): an image without
  // labels gives an empty float32 array. Any integer-valued keys are accepted.
  if (out.keys.is_floating_point() && out.keys.numel() &&
      !torch::equal(out.keys, out.keys.round()))
    throw file_error(path, "'keys' are not integers");
  out.keys = out.keys.to(torch::kLong);
  for (const at::Tensor* cams : {&out.attn_highres, &out.highres}) {
    if (!cams->defined()) continue;
    const char* name = cams == &out.attn_highres ? "'attn_highres'" : "'highres'";
    if (cams->dim() != 3 || cams->size(0) != out.keys.size(0))
      throw file_error(path, std::string(name) + " must be [K, H, W] with K = " + std::to_string(out.keys.size(0)) +
                                 " (the length of 'keys')");
  }
  if (out.highres.defined() && out.highres.sizes() != out.attn_highres.sizes())
    throw file_error(path, "'highres' and 'attn_highres' differ in shape");
  return out;
}

void write_clip_es_cams(const std::string& path, const at::Tensor& keys, const at::Tensor& attn_highres,
                        const at::Tensor& highres) {
  PickledArrays arrays;
  arrays.emplace_back("keys", from_tensor(keys.to(torch::kLong)));
  // The order of the official code's dict, whose 'highres' line is commented out.
  if (highres.defined()) arrays.emplace_back("highres", from_tensor(highres.to(torch::kHalf)));
  arrays.emplace_back("attn_highres", from_tensor(attn_highres.to(torch::kHalf)));
  write_file_atomic(path, encode_npy_pickled_dict(arrays));
}

}  // namespace clipes

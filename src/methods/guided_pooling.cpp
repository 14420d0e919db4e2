#include "clipes/methods/guided_pooling.h"

#include <torch/torch.h>

#include "clipes/model/checkpoint.h"
#include "clipes/util/error.h"
#include "clipes/util/shape_text.h"
#include "clipes/util/l2_normalize.h"

namespace clipes {
namespace {

at::Tensor take(const TensorMap& t, const std::string& path, const std::string& name,
                const std::vector<int64_t>& shape) {
  auto it = t.find(name);
  if (it == t.end()) throw file_error(path, "missing tensor " + name + " (not a CLIP-DINOiser heads file?)");
  if (it->second.sizes().vec() != shape) {
    throw file_error(path, "tensor " + name + " has shape " + shape_text(it->second.sizes().vec()) + ", expected " +
                               shape_text(shape) + " for this backbone (width " +
                               std::to_string(shape.size() > 1 ? shape[1] : 0) + ")");
  }
  if (!it->second.is_floating_point()) throw file_error(path, "tensor " + name + " is not floating point");
  return it->second.to(torch::kFloat).contiguous();
}

}  // namespace

DinoiserHeads DinoiserHeads::load(const std::string& path, int backbone_width) {
  const TensorMap t = read_torch_save_tensors(path);
  DinoiserHeads h;
  h.path_ = path;
  h.width_ = backbone_width;
  auto obj = t.find("obj_proj.weight");
  if (obj == t.end()) throw file_error(path, "missing tensor obj_proj.weight (not a CLIP-DINOiser heads file?)");
  const int64_t k = obj->second.dim() == 4 ? obj->second.size(0) : 256;
  h.obj_weight_ = take(t, path, "obj_proj.weight", {k, backbone_width, 3, 3});
  h.obj_bias_ = take(t, path, "obj_proj.bias", {k});
  h.bkg_weight_ = take(t, path, "bkg_decoder.weight", {1, backbone_width, 1, 1});
  h.bkg_bias_ = take(t, path, "bkg_decoder.bias", {1});
  return h;
}

at::Tensor DinoiserHeads::project(const at::Tensor& tap) const {
  const at::Tensor x = tap.to(torch::kFloat).unsqueeze(0);
  const at::Tensor padded = at::replication_pad2d(x, {1, 1, 1, 1});  // padding_mode='replicate'
  const at::Tensor y = at::conv2d(padded, obj_weight_.to(x.device()), obj_bias_.to(x.device()));
  return l2_normalize(y, 1, 1e-12).squeeze(0);
}

at::Tensor DinoiserHeads::objectness(const at::Tensor& tap) const {
  const at::Tensor x = l2_normalize(tap.to(torch::kFloat).unsqueeze(0), 1, 1e-12);
  return at::sigmoid(at::conv2d(x, bkg_weight_.to(x.device()), bkg_bias_.to(x.device()))).squeeze(0).squeeze(0);
}

at::Tensor guided_pooling(const at::Tensor& projections, const at::Tensor& features,
                          const GuidedPoolingOptions& options) {
  const int64_t k = projections.size(0), h = projections.size(1), w = projections.size(2), e = features.size(0);
  const at::Tensor p = projections.reshape({k, h * w});
  at::Tensor corr = at::matmul(p.t(), p);  // [n, n] cosines
  corr = corr.masked_fill(corr < options.correlation_threshold, 0.0);
  const at::Tensor f = features.to(torch::kFloat).reshape({e, h * w});
  const at::Tensor pooled = at::matmul(f, corr.t()) / (corr.sum(1).unsqueeze(0) + 1e-6);
  return pooled.reshape({e, h, w});
}

}  // namespace clipes

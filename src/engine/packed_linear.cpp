#include "packed_linear.h"

#include <ATen/Functions.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "clipes/util/error.h"

namespace clipes::engine {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dt to_dnnl(LinearType t) { return t == LinearType::BF16 ? dt::bf16 : dt::f32; }

dt tensor_dnnl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return dt::f32;
    case at::kBFloat16: return dt::bf16;
    default: throw Error("engine: weights must be float32 or bfloat16");
  }
}

}  // namespace

struct PackedLinear::Impl {
  at::Tensor weight, bias;  // as given ([out, in]); bias converted to float32
  LinearType type;
  PostActivation activation;
  int64_t out = 0, in = 0;
  bool transposed = false;
  memory::desc plain() const {
    return memory::desc({in, out}, tensor_dnnl_type(weight), transposed ? tag::ab : tag::ba);
  }

  struct Entry {
    dnnl::matmul primitive;
    memory::desc src, dst;
    memory weights;
  };
  mutable std::mutex mutex;
  mutable std::map<std::tuple<int64_t, bool, bool>, std::shared_ptr<Entry>> primitives;
  // Weights in each layout a primitive asked for (usually one), packed once.
  mutable std::vector<std::pair<memory::desc, memory>> packed;

  memory weights_for(const memory::desc& want) const {
    for (const auto& p : packed)
      if (p.first == want) return p.second;
    const memory::desc source_md = plain();
    memory source(source_md, cpu_engine(), weight.data_ptr());
    if (source_md == want) {  // the model's own tensor, no copy
      packed.emplace_back(want, source);
      return source;
    }
    memory dst(want, cpu_engine());
    dnnl::stream stream(cpu_engine());
    dnnl::reorder(source, dst).execute(stream, source, dst);
    stream.wait();
    packed.emplace_back(want, dst);
    return dst;
  }

  std::shared_ptr<Entry> get(int64_t m, bool dst_bf16, bool accumulate) const {
    std::lock_guard<std::mutex> lock(mutex);
    const auto key = std::make_tuple(m, dst_bf16, accumulate);
    auto it = primitives.find(key);
    if (it != primitives.end()) return it->second;
    const memory::desc src_md({m, in}, to_dnnl(type), tag::ab);
    const memory::desc dst_md({m, out}, dst_bf16 ? dt::bf16 : dt::f32, tag::ab);
    const memory::desc bias_md({1, out}, dt::f32, tag::ab);
    // fp32: the model's tensor as it is; bf16: whatever blocked layout oneDNN prefers.
    const memory::desc w_md = type == LinearType::F32 ? plain() : memory::desc({in, out}, dt::bf16, tag::any);
    dnnl::post_ops ops;
    // Activation before the residual add: MLP(x) = c_proj(act(c_fc x)); the
    // activation belongs to c_fc, the add to c_proj, never both on one product.
    if (activation == PostActivation::QuickGelu)
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_swish, 1.702f, 0.0f);  // x·σ(1.702x)
    else if (activation == PostActivation::Gelu)
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    if (accumulate) ops.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::matmul::primitive_desc pd;
    try {
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, bias_md, dst_md), attr, cpu_engine());
    } catch (const dnnl::error& e) {
      // oneDNN 2.6 has no bf16 matmul below AVX-512: say so in one line instead of aborting.
      throw Error(std::string("engine: oneDNN cannot run this ") + (type == LinearType::BF16 ? "bf16" : "fp32") +
                  " matmul on this CPU (" + e.what() + "); use the reference engine or fp32");
    }
    auto entry = std::make_shared<Entry>();
    entry->primitive = dnnl::matmul(pd);
    entry->src = src_md;
    entry->dst = dst_md;
    entry->weights = weights_for(pd.weights_desc());
    primitives.emplace(key, entry);
    return entry;
  }
};

PackedLinear::PackedLinear(const at::Tensor& weight, const at::Tensor& bias, LinearType type,
                           PostActivation activation, bool transposed)
    : impl_(std::make_unique<Impl>()) {
  if (weight.dim() != 2 || !weight.device().is_cpu()) throw Error("engine: a linear weight must be a 2-D CPU tensor");
  impl_->transposed = transposed;
  impl_->out = weight.size(transposed ? 1 : 0);
  impl_->in = weight.size(transposed ? 0 : 1);
  impl_->type = type;
  impl_->activation = activation;
  // fp32 runs on the tensor itself; bf16 packs from it (any float type).
  impl_->weight = type == LinearType::F32 ? weight.to(at::kFloat).contiguous() : weight.contiguous();
  if (impl_->weight.scalar_type() != at::kFloat && impl_->weight.scalar_type() != at::kBFloat16)
    impl_->weight = impl_->weight.to(at::kFloat);
  impl_->bias = bias.defined() ? bias.to(at::kFloat).contiguous() : at::zeros({impl_->out}, at::kFloat);
  if (impl_->bias.numel() != impl_->out) throw Error("engine: bias size does not match the weight");
}

PackedLinear::~PackedLinear() = default;
PackedLinear::PackedLinear(PackedLinear&&) noexcept = default;

void PackedLinear::run(const void* src, int64_t m, void* dst, bool dst_bf16, bool accumulate) const {
  if (m <= 0) return;
  const auto entry = impl_->get(m, dst_bf16, accumulate);
  dnnl::stream stream(cpu_engine());
  memory src_m(entry->src, cpu_engine(), const_cast<void*>(src));
  memory dst_m(entry->dst, cpu_engine(), dst);
  memory bias_m(memory::desc({1, impl_->out}, dt::f32, tag::ab), cpu_engine(), impl_->bias.data_ptr());
  entry->primitive.execute(stream, {{DNNL_ARG_SRC, src_m},
                                    {DNNL_ARG_WEIGHTS, entry->weights},
                                    {DNNL_ARG_BIAS, bias_m},
                                    {DNNL_ARG_DST, dst_m}});
  stream.wait();
}

int64_t PackedLinear::in_features() const { return impl_->in; }
int64_t PackedLinear::out_features() const { return impl_->out; }
LinearType PackedLinear::type() const { return impl_->type; }

double measure_onednn_matmul_gflops(LinearType type, int n) {
  const at::Tensor w = at::randn({n, n}, at::kFloat);
  const at::Tensor weight = type == LinearType::BF16 ? w.to(at::kBFloat16) : w;
  const PackedLinear linear(weight, {}, type, PostActivation::None);
  const at::Tensor src = at::randn({n, n}, at::kFloat).to(type == LinearType::BF16 ? at::kBFloat16 : at::kFloat);
  std::vector<float> dst(static_cast<size_t>(n) * n);
  linear.run(src.data_ptr(), n, dst.data(), false, false);  // warm-up: primitive creation, packing
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t = std::chrono::steady_clock::now();
    linear.run(src.data_ptr(), n, dst.data(), false, false);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
  }
  return 2.0 * n * static_cast<double>(n) * n / (best * 1e9);
}

}  // namespace clipes::engine

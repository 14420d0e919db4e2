// NACLIP (segment-spec §2): the last block attends key-to-key plus a Gaussian
// over the patch grid, without residual or FFN; its channels are the cosines
// per query, turned into class probabilities only after upsampling, as its
// postprocess_result does.
#include <torch/torch.h>

#include <memory>

#include "clipes/methods/dense_method.h"

namespace clipes {
namespace {

class Naclip final : public DenseMethod {
 public:
  explicit Naclip(const DenseMethodArgs& args)
      : sigma_(args.number("sigma")), min_probability_(args.number("min_probability")) {}

  DenseForwardOptions forward_options() const override {
    DenseForwardOptions o;
    o.last_block.kind = LastBlockKind::NeighbourAware;
    o.last_block.gaussian_std = sigma_;
    o.position = PositionResize::BicubicNaclip;
    return o;
  }
  double default_logit_scale() const override { return 40.0; }
  bool channels_per_query() const override { return true; }

  at::Tensor channels(const at::Tensor& cosines, const DenseQueries&, const PatchScores&) const override {
    return cosines;
  }

  at::Tensor class_probabilities(const at::Tensor& channels, const DenseQueries& q) const override {
    at::Tensor probs = q.per_class_max(at::softmax(channels * q.logit_scale, 0));
    const at::Tensor low = std::get<0>(probs.max(0)) < min_probability_;
    probs = probs / probs.sum(0, /*keepdim=*/true);
    // NACLIP labels a pixel whose best probability is below the threshold as
    // background; the probability is kept, so the confidence says it was unsure.
    if (q.background >= 0) {
      // Background wins there, with a probability no higher than the top one.
      const at::Tensor top = std::get<0>(probs.max(0));
      probs[q.background] = at::where(low, at::clamp_max(top + 1e-6, 1.0), probs[q.background]);
    }
    return probs;
  }

 private:
  double sigma_, min_probability_;
};

const bool registered = register_dense_method(
    {"naclip",
     {},
     "NACLIP: neighbour-aware key-key attention in the last block",
     {{"sigma", "5", "σ of the Gaussian over the patch grid, in patches"},
      {"min_probability", "0.1", "a pixel whose best class probability is below this becomes background"}},
     [](const DenseMethodArgs& a) { return std::make_unique<Naclip>(a); }});

}  // namespace
}  // namespace clipes

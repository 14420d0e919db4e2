// CLIP-DINOiser (segment-spec §3): MaskCLIP's features pooled over patches
// whose learned projections correlate (guided pooling), and an objectness
// head that sends uncertain non-object patches to background. Both heads
// read the ln_2 output of an earlier block (tap) and come from the released
// checkpoints/last.pt.
#include <torch/torch.h>

#include <memory>

#include "clipes/methods/dense_method.h"
#include "clipes/methods/dense_segmenter.h"
#include "clipes/methods/guided_pooling.h"

namespace clipes {
namespace {

class Dinoiser final : public DenseMethod {
 public:
  explicit Dinoiser(const DenseMethodArgs& args)
      : heads_(DinoiserHeads::load(args.text("heads"), args.vision_width())),
        residual_(args.flag("residual")),
        tap_(args.integer("tap")),
        correlation_(args.number("correlation")),
        confidence_(args.number("confidence")),
        objectness_(args.number("objectness")) {}

  DenseForwardOptions forward_options() const override {
    DenseForwardOptions o;
    o.last_block.kind = residual_ ? LastBlockKind::ValuePath : LastBlockKind::ValueOnly;
    o.position = PositionResize::BicubicToSize;
    o.ln2_taps = {tap_};
    return o;
  }

  at::Tensor dense_features(const DenseForward& dense, PatchScores& out) const override {
    const int64_t h = dense.grid_h, w = dense.grid_w;
    const at::Tensor features = DenseMethod::dense_features(dense, out);  // [h·w, E]
    const at::Tensor& tap_tokens = dense.ln2_taps.begin()->second[0];      // [L, D]
    const at::Tensor tap = tap_tokens.slice(0, 1).to(torch::kFloat).t().reshape({-1, h, w});
    out.projections = heads_.project(tap);
    out.objectness = heads_.objectness(tap);
    GuidedPoolingOptions pooling;
    pooling.correlation_threshold = correlation_;
    const at::Tensor pooled = guided_pooling(out.projections, features.t().reshape({-1, h, w}), pooling);  // [E, h, w]
    return pooled.reshape({pooled.size(0), h * w}).t();
  }

  at::Tensor channels(const at::Tensor& cosines, const DenseQueries& q, const PatchScores& out) const override {
    at::Tensor probs = DenseMethod::channels(cosines, q, out);
    if (q.background >= 0) {
      // Uncertain patches that are not objects become background (segment-spec §3).
      const at::Tensor uncertain = std::get<0>(probs.max(0)) < confidence_;
      const at::Tensor not_object = out.objectness.le(objectness_);
      probs[q.background] =
          at::where(uncertain.logical_and(not_object), torch::ones_like(probs[q.background]), probs[q.background]);
    }
    return probs;
  }

 private:
  DinoiserHeads heads_;
  bool residual_;
  int tap_;
  double correlation_, confidence_, objectness_;
};

const bool registered = register_dense_method(
    {"dinoiser",
     {"clip-dinoiser"},
     "CLIP-DINOiser: MaskCLIP features, guided pooling and objectness (needs its heads file)",
     {{"heads", "", "CLIP-DINOiser's heads (its released checkpoints/last.pt)", /*required=*/true, /*file=*/true},
      {"residual", "true", "keep the residual and FFN around the value path"},
      {"tap", "-3", "block whose ln_2 output the heads read (<0 counts from the end)"},
      {"correlation", "0.2", "projection correlations below this count as 0 in the pooling"},
      {"confidence", "0.99", "a patch whose best probability is below this …"},
      {"objectness", "0.5", "… and whose objectness is at most this becomes background"}},
     [](const DenseMethodArgs& a) { return std::make_unique<Dinoiser>(a); }});

}  // namespace
}  // namespace clipes

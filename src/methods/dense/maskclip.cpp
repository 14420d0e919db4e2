// MaskCLIP (segment-spec §1): the last block's attention is dropped and the
// value path kept; the head is the default one (softmax over the queries at
// scale 100, max over a class's queries).
#include <memory>

#include "clipes/methods/dense_method.h"

namespace clipes {
namespace {

class MaskClip final : public DenseMethod {
 public:
  explicit MaskClip(const DenseMethodArgs& args) : residual_(args.flag("residual")) {}

  DenseForwardOptions forward_options() const override {
    DenseForwardOptions o;
    // The official code keeps residual + FFN (ValuePath); some papers run the
    // value projection alone (ValueOnly).
    o.last_block.kind = residual_ ? LastBlockKind::ValuePath : LastBlockKind::ValueOnly;
    o.position = PositionResize::BicubicToSize;  // mmseg's bicubic resize
    return o;
  }

 private:
  bool residual_;
};

const bool registered = register_dense_method(
    {"maskclip",
     {},
     "MaskCLIP: the last block's value path, no attention",
     {{"residual", "true", "keep the residual and FFN around the value path (false: the value projection alone)"}},
     [](const DenseMethodArgs& a) { return std::make_unique<MaskClip>(a); }});

}  // namespace
}  // namespace clipes

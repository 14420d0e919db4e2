// DenseMethod — one open-vocabulary dense method (MaskCLIP, NACLIP,
// CLIP-DINOiser, …) as a plug-in of DenseSegmenter (methods/dense_segmenter.h).
//
// A method says three things and nothing else:
//   1. how the trunk runs for it: the last-block variant, the position
//      embedding resize and the taps (forward_options, model/last_block.h);
//   2. its head: dense features from the forward pass, then the channels the
//      runner upsamples (per class probabilities, or per query cosines);
//   3. its rule turning upsampled channels into class probabilities.
// The runner (DenseSegmenter) owns everything shared: preprocessing, sliding
// windows, the cosine with the text queries, upsampling in bands, labels and
// confidence. Like pytorch-grad-cam's CAM classes, a method is one file:
//
//   class MyMethod final : public DenseMethod { ... };
//   const bool registered = register_dense_method({"mine", {}, "what it is", {params…},
//       [](const DenseMethodArgs& a) { return std::make_unique<MyMethod>(a); }});
//
// Parameters are data (open_clip's configs, whisper.cpp's nested params):
// each method declares its keys, defaults and help; the registry checks the
// keys a caller passes, so a typo is an error naming the method's keys.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "clipes/model/last_block.h"

namespace clipes {

struct PatchScores;

// The text side a head scores against, prepared by the runner.
struct DenseQueries {
  at::Tensor features;           // [Q, E] unit text features
  std::vector<int> query_class;  // class of each query, in [0, num_classes)
  int num_classes = 0;
  int background = -1;           // class index of background, or -1
  double logit_scale = 100.0;    // the run's scale (the method's default unless overridden)

  // [Q, ...] per-query values → [C, ...]: the max over each class's queries.
  at::Tensor per_class_max(const at::Tensor& per_query) const;
};

class DenseMethod {
 public:
  virtual ~DenseMethod();

  // How ClipModel::dense_forward runs the network for this method.
  virtual DenseForwardOptions forward_options() const = 0;
  // The logit scale the method's official code uses.
  virtual double default_logit_scale() const { return 100.0; }
  // True when the channels are one per text query (their class rule applied
  // only after upsampling, as NACLIP does); false: one per class.
  virtual bool channels_per_query() const { return false; }

  // [h·w, E] dense features (not normalised) from the forward pass. Default:
  // the projected patch tokens. A method may fill extras of `out` here
  // (CLIP-DINOiser: objectness, projections).
  virtual at::Tensor dense_features(const DenseForward& forward, PatchScores& out) const;
  // cosines [Q, h, w] (unit features · unit queries) → the channels the runner
  // upsamples. Default: softmax over the queries at the logit scale, then the
  // max over each class's queries (MaskCLIP).
  virtual at::Tensor channels(const at::Tensor& cosines, const DenseQueries& queries, const PatchScores& out) const;
  // Channels (at any resolution) → [C, ...] class probabilities. Default: the
  // channels are the probabilities already.
  virtual at::Tensor class_probabilities(const at::Tensor& channels, const DenseQueries& queries) const;
};

// One declared parameter: its key, default (as text) and help line.
struct DenseMethodParam {
  std::string key;
  std::string default_value;  // "" with required = true: must be given
  std::string help;
  bool required = false;
  bool file = false;          // a path: settings record its SHA-256, not the path
};

// What a method's factory receives: its parameters with the defaults filled
// in, and the backbone's vision width (for heads trained on it).
class DenseMethodArgs {
 public:
  DenseMethodArgs(std::string method, std::map<std::string, std::string> values, int vision_width);
  const std::string& method() const { return method_; }
  int vision_width() const { return vision_width_; }
  // Typed reads; a value that does not parse is an error naming the method and the key.
  std::string text(const std::string& key) const;
  double number(const std::string& key) const;
  int integer(const std::string& key) const;
  bool flag(const std::string& key) const;  // true/false/1/0/yes/no

 private:
  std::string method_;
  std::map<std::string, std::string> values_;
  int vision_width_;
};

struct DenseMethodInfo {
  std::string name;                  // what `segment --method` takes
  std::vector<std::string> aliases;  // also accepted ("clip-dinoiser")
  std::string summary;               // one line for --help
  std::vector<DenseMethodParam> params;
  std::function<std::unique_ptr<DenseMethod>(const DenseMethodArgs&)> create;
};

// Called from a static initialiser in each method's file; a second method of
// the same name (or alias) is an error at registration.
bool register_dense_method(DenseMethodInfo info);
// Every registered method, in name order.
std::vector<const DenseMethodInfo*> dense_methods();
// The method called `name` (or with that alias); throws clipes::Error listing the names.
const DenseMethodInfo& find_dense_method(const std::string& name);
// Checks `values` against the method's declared keys (unknown key, missing
// required one: clipes::Error naming the method and its keys) and builds it.
std::unique_ptr<DenseMethod> create_dense_method(const std::string& name,
                                                 const std::map<std::string, std::string>& values, int vision_width);
// The values that differ from the method's defaults, for settings.json (a
// file parameter as "<key>_sha256"): a method run with its defaults records
// nothing, so outputs made before a parameter existed still resume. An
// unknown key is the same error as in create_dense_method (checked before any
// work, although a required key may still be missing here).
nlohmann::json non_default_params(const std::string& name, const std::map<std::string, std::string>& values);

}  // namespace clipes

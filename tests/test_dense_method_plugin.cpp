// A dense method is one file and one registration (methods/dense_method.h):
// this file defines a toy method, registers it, and runs it through the
// pipeline `clipes segment` uses (DenseSegmenter + segment_images), with
// nothing else in the code base knowing it exists.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "clipes/io/indexed_png.h"
#include "clipes/model/clip_model.h"
#include "clipes/pipeline/segment.h"
#include "clipes/methods/dense_method.h"
#include "clipes/methods/dense_segmenter.h"
#include "clipes/methods/segment_classes.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/text/text_features.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

// The toy: CLIP's own last block, and a head that ignores the image and puts
// every pixel in the class its `pick` parameter names. What it writes is
// therefore known in advance, so the test sees the method's rule, not CLIP's.
class PickOneClass final : public DenseMethod {
 public:
  explicit PickOneClass(const DenseMethodArgs& args) : pick_(args.integer("pick")) {}
  DenseForwardOptions forward_options() const override {
    DenseForwardOptions o;
    o.last_block.kind = LastBlockKind::Standard;
    return o;
  }
  at::Tensor channels(const at::Tensor& cosines, const DenseQueries& q, const PatchScores&) const override {
    at::Tensor probs = torch::zeros({q.num_classes, cosines.size(1), cosines.size(2)});
    probs[pick_] = 1.0;
    return probs;
  }

 private:
  int pick_;
};

const bool registered = register_dense_method(
    {"pick-one-class", {}, "test only: every pixel is the class `pick`", {{"pick", "1", "the class index"}},
     [](const DenseMethodArgs& a) { return std::make_unique<PickOneClass>(a); }});

TEST(DenseMethodPlugin, TheRegistryListsTheBuiltInsAndAMethodDefinedInATestFile) {
  ASSERT_TRUE(registered);
  std::vector<std::string> names;
  for (const DenseMethodInfo* m : dense_methods()) names.push_back(m->name);
  for (const char* n : {"dinoiser", "maskclip", "naclip", "pick-one-class"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  EXPECT_EQ(find_dense_method("clip-dinoiser").name, "dinoiser");  // aliases resolve
  // A wrong name or key is one line naming what is accepted.
  try {
    find_dense_method("maskclap");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("maskclip, naclip"), std::string::npos) << e.what();
  }
  try {
    create_dense_method("naclip", {{"sigmaa", "3"}}, 128);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sigma, min_probability"), std::string::npos) << e.what();
  }
  EXPECT_THROW(create_dense_method("pick-one-class", {{"pick", "one"}}, 128), Error);
  EXPECT_THROW(create_dense_method("dinoiser", {}, 128), Error);  // its heads file is required
  // Settings record only what moved off the defaults.
  EXPECT_TRUE(non_default_params("naclip", {{"sigma", "5"}}).empty());
  EXPECT_EQ(non_default_params("naclip", {{"sigma", "3"}}).dump(), R"({"sigma":"3"})");
}

TEST(DenseMethodPlugin, AMethodDefinedInATestFileRunsThroughTheSegmentPipeline) {
  const auto model = ClipModel::load(test::tiny_clip_path());
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(test::vocab_path());
  const SegmentClasses classes = SegmentClasses::from_class_config(class_config_from_list("background,cat,dog"));
  ASSERT_EQ(classes.num_classes(), 3);
  const at::Tensor queries = TextEncoder(*model, tokenizer).encode_classes(classes.queries, {"a photo of a {}."});
  const std::string image = test::shared("fixtures/parity/coco6/images/000000020992.jpg");

  for (int pick : {1, 2}) {
    const DenseSegmenter segmenter(*model,
                                   create_dense_method("pick-one-class", {{"pick", std::to_string(pick)}},
                                                       model->config().vision.width),
                                   queries, classes.query_class, classes.num_classes(), classes.background, {});
    SegmentRunOptions options;
    options.batch.out_dir = test::make_temp_dir("dense-plugin") + "/out";
    options.save_scores = true;
    const BatchSummary s = segment_images(segmenter, classes, {{"img", image, {}, ""}}, options).batch;
    ASSERT_EQ(s.failed, 0);
    ASSERT_EQ(s.processed, 1);
    const cv::Mat mask = read_label_png(options.batch.out_dir + "/masks/img.png");
    double lo = 0, hi = 0;
    cv::minMaxLoc(mask, &lo, &hi);
    EXPECT_EQ(lo, classes.mask_values[static_cast<size_t>(pick)]) << "pick " << pick;
    EXPECT_EQ(hi, classes.mask_values[static_cast<size_t>(pick)]) << "pick " << pick;
    EXPECT_TRUE(std::filesystem::is_regular_file(options.batch.out_dir + "/cams/img_scores.npy"));
  }
}

}  // namespace
}  // namespace clipes

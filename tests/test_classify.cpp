#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "clipes/io/image_decode.h"
#include "clipes/io/preprocess.h"
#include "clipes/model/clip_model.h"
#include "clipes/methods/zero_shot.h"
#include "clipes/text/text_features.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {

std::string image_path() { return test::shared("data/coco-tiny/val2017/000000005001.jpg"); }

std::string classify_command(const std::string& extra) {
  return test::clipes_binary() + " classify --model '" + test::tiny_clip_path() + "' --vocab '" + test::vocab_path() +
         "' " + extra;
}

// The JSON object printed on stdout (spdlog, if anything, goes to stderr, which
// run_command merges: take from the first '{').
nlohmann::json parse_json_output(const std::string& output) {
  return nlohmann::json::parse(output.substr(output.find('{')));
}

}  // namespace

TEST(ZeroShot, FillTemplateReplacesEveryPlaceholder) {
  EXPECT_EQ(fill_template("a photo of a {}.", "dog"), "a photo of a dog.");
  EXPECT_EQ(fill_template("{} or {}", "cat"), "cat or cat");
  EXPECT_THROW(fill_template("no placeholder", "cat"), Error);
}

TEST(ZeroShot, ProbabilitiesAreSoftmaxOfScaledCosines) {
  const auto model = ClipModel::load(test::tiny_clip_path());
  const BpeTokenizer tokenizer = BpeTokenizer::from_file(test::vocab_path());
  const cv::Mat rgb = decode_image_rgb(image_path());
  const std::vector<std::string> classes = {"person", "dog", "cat", "car", "pizza"};
  const auto ranked = zero_shot_classify(*model, tokenizer, rgb, classes);
  ASSERT_EQ(ranked.size(), classes.size());
  double sum = 0;
  for (size_t i = 0; i < ranked.size(); ++i) {
    sum += ranked[i].probability;
    if (i) {
      EXPECT_GE(ranked[i - 1].probability, ranked[i].probability);
    }
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);

  // Independently: softmax(logit_scale * cosine) over the same prompts.
  torch::NoGradGuard no_grad;
  at::Tensor tokens = torch::zeros({5, 77}, torch::kLong);
  for (int64_t i = 0; i < 5; ++i)
    tokens[i].copy_(torch::tensor(tokenizer.encode_for_model("a photo of a " + classes[static_cast<size_t>(i)] + "."),
                                  torch::kLong));
  namespace F = torch::nn::functional;
  const at::Tensor img = F::normalize(model->encode_image(preprocess_224(rgb).unsqueeze(0)),
                                      F::NormalizeFuncOptions().dim(-1));
  const at::Tensor txt = F::normalize(model->encode_text(tokens), F::NormalizeFuncOptions().dim(-1));
  const at::Tensor probs = torch::softmax(model->logit_scale_exp() * img.matmul(txt.t()), -1)[0];
  for (const auto& r : ranked) {
    const auto index = std::find(classes.begin(), classes.end(), r.name) - classes.begin();
    EXPECT_NEAR(r.probability, probs[index].item<double>(), 1e-6) << r.name;
  }
}

TEST(ClassifyCommand, JsonIsRankedAndSumsToOne) {
  std::string output;
  ASSERT_EQ(test::run_command(classify_command("--image '" + image_path() + "' --classes 'person, dog,cat,car,pizza' --json"),
                              &output),
            0)
      << output;
  const nlohmann::json j = parse_json_output(output);
  const auto& predictions = j.at("predictions");
  ASSERT_EQ(predictions.size(), 5u);
  double sum = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    sum += predictions[i].at("probability").get<double>();
    if (i) {
      EXPECT_GE(predictions[i - 1].at("probability").get<double>(), predictions[i].at("probability").get<double>());
    }
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_EQ(j.at("template"), "a photo of a {}.");
}

TEST(ClassifyCommand, TopkAndTableOutput) {
  std::string all, top2;
  ASSERT_EQ(test::run_command(classify_command("--image '" + image_path() + "' --classes dog,cat,car,pizza --json"), &all), 0);
  ASSERT_EQ(test::run_command(classify_command("--image '" + image_path() +
                                                "' --classes dog,cat,car,pizza --topk 2 --json --template 'a {} photo.'"),
                              &top2),
            0)
      << top2;
  EXPECT_EQ(parse_json_output(top2).at("predictions").size(), 2u);
  EXPECT_EQ(parse_json_output(all).at("predictions").size(), 4u);

  std::string table;
  ASSERT_EQ(test::run_command(classify_command("--image '" + image_path() + "' --classes dog,cat,car --topk 1"), &table),
            0);
  // Header + one row.
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 2) << table;
  EXPECT_NE(table.find("probability"), std::string::npos);
}

TEST(ClassifyCommand, BadImageIsOneLineNamingIt) {
  const std::string dir = test::make_temp_dir("classify");
  std::string output;
  EXPECT_EQ(test::run_command(classify_command("--image '" + dir + "/missing.jpg' --classes dog,cat"), &output), 2);
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_NE(output.find(dir + "/missing.jpg"), std::string::npos) << output;
}

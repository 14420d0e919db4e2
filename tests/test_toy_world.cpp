// The offline toy world (issue #6): renderer determinism and consistency, the
// VOC tree the dataset tool writes, the committed vocabulary and model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "clipes/data/toy_world.h"
#include "clipes/io/indexed_png.h"
#include "clipes/model/clip_model.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

std::string tool(const std::string& name) { return std::string(CLIPES_TOOL_DIR) + "/" + name; }
std::string committed_vocab() { return test::source_dir() + "/models/toy-vocab.txt.gz"; }
std::string committed_model() { return test::source_dir() + "/models/toy-clip.pt"; }

TEST(ToyWorld, SameSeedAndIndexGiveTheSameSample) {
  const ToySample a = render_toy_sample(7, 42), b = render_toy_sample(7, 42);
  EXPECT_TRUE(same_pixels(a.rgb, b.rgb));
  EXPECT_TRUE(same_pixels(a.mask, b.mask));
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.caption, b.caption);
}

TEST(ToyWorld, DifferentIndexOrSeedGiveDifferentSamples) {
  const ToySample a = render_toy_sample(7, 42), b = render_toy_sample(7, 43), c = render_toy_sample(8, 42);
  EXPECT_FALSE(same_pixels(a.rgb, b.rgb));
  EXPECT_FALSE(same_pixels(a.rgb, c.rgb));
}

TEST(ToyWorld, RenderingIsThreadSafe) {
  std::vector<ToySample> serial, parallel(16);
  for (int i = 0; i < 16; ++i) serial.push_back(render_toy_sample(3, i));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = t; i < 16; i += 4) parallel[i] = render_toy_sample(3, i);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(same_pixels(serial[i].rgb, parallel[i].rgb)) << i;
    EXPECT_TRUE(same_pixels(serial[i].mask, parallel[i].mask)) << i;
  }
}

TEST(ToyWorld, LabelsMasksAndCaptionsAgree) {
  const ToyWorldOptions options;
  std::set<int> classes_seen, backgrounds_seen;
  for (int i = 0; i < 120; ++i) {
    const ToySample s = render_toy_sample(1, i);
    ASSERT_EQ(s.rgb.type(), CV_8UC3);
    ASSERT_EQ(s.mask.type(), CV_8UC1);
    ASSERT_EQ(s.rgb.size(), s.mask.size());
    EXPECT_GE(s.rgb.rows, options.min_size);
    EXPECT_LE(s.rgb.rows, options.max_size);
    EXPECT_GE(s.rgb.cols, options.min_size);
    EXPECT_LE(s.rgb.cols, options.max_size);
    ASSERT_GE(s.labels.size(), 1u);
    ASSERT_LE(s.labels.size(), 3u);
    // Every listed label has pixels; every mask value is background, ignore or a listed label.
    for (int c : s.labels) {
      EXPECT_GT(cv::countNonZero(s.mask == c + 1), 0.01 * s.mask.total()) << "image " << i << " class " << c;
      classes_seen.insert(c);
    }
    for (int v = 1; v < 255; ++v) {
      if (std::find(s.labels.begin(), s.labels.end(), v - 1) != s.labels.end()) continue;
      EXPECT_EQ(cv::countNonZero(s.mask == v), 0) << "image " << i << " has unlisted value " << v;
    }
    EXPECT_GT(cv::countNonZero(s.mask == 0), 0) << i;
    // The caption names every object (by its name or a synonym).
    for (int c : s.labels) {
      bool named = false;
      for (const auto& w : toy_class_words()[c]) named |= s.caption.find(w) != std::string::npos;
      EXPECT_TRUE(named) << s.caption << " misses " << toy_class_names()[c];
    }
    backgrounds_seen.insert(s.background);
  }
  EXPECT_EQ(classes_seen.size(), toy_class_names().size());
  EXPECT_EQ(backgrounds_seen.size(), toy_background_names().size());
}

TEST(ToyWorld, ObjectsAreNotSinglePatchSpecks) {
  // CLIP-ES localises on a 16-px grid: every object must cover several patches.
  for (int i = 0; i < 60; ++i) {
    const ToySample s = render_toy_sample(2, i);
    for (int c : s.labels) EXPECT_GT(cv::countNonZero(s.mask == c + 1), 4 * 16 * 16) << i;
  }
}

TEST(ToyWorldTool, WritesAReadableVocTree) {
  const std::string dir = test::make_temp_dir("toy-voc"), dir1 = test::make_temp_dir("toy-voc-1job");
  std::string log;
  ASSERT_EQ(test::run_command(tool("make_toy_dataset") + " --out " + dir + " --count 6 --seed 2 --split val --start 3 --jobs 3", &log), 0) << log;
  ASSERT_EQ(test::run_command(tool("make_toy_dataset") + " --out " + dir1 + " --count 6 --seed 2 --split val --start 3 --jobs 1", &log), 0) << log;

  std::istringstream list(read_file(dir + "/ImageSets/Segmentation/val.txt"));
  std::vector<std::string> ids;
  for (std::string line; std::getline(list, line);) ids.push_back(line);
  ASSERT_EQ(ids.size(), 6u);
  EXPECT_EQ(ids[0], "val_000003");
  const auto labels = nlohmann::json::parse(read_file(dir + "/labels.json"));
  const std::string captions = read_file(dir + "/captions.txt");
  for (size_t k = 0; k < ids.size(); ++k) {
    const std::string& id = ids[k];
    const ToySample s = render_toy_sample(2, 3 + k);
    cv::Mat bgr = cv::imread(dir + "/JPEGImages/" + id + ".png", cv::IMREAD_COLOR), rgb;
    ASSERT_FALSE(bgr.empty()) << id;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    EXPECT_TRUE(same_pixels(rgb, s.rgb)) << id;  // lossless
    EXPECT_TRUE(same_pixels(read_label_png(dir + "/SegmentationClass/" + id + ".png"), s.mask)) << id;
    const std::string xml = read_file(dir + "/Annotations/" + id + ".xml");
    std::vector<std::string> names;
    for (int c : s.labels) {
      names.push_back(toy_class_names()[c]);
      EXPECT_NE(xml.find("<name>" + toy_class_names()[c] + "</name>"), std::string::npos) << xml;
    }
    EXPECT_EQ(labels.at(id).get<std::vector<std::string>>(), names);
    EXPECT_NE(captions.find(id + "\t" + s.caption + "\n"), std::string::npos);
    // Thread count does not change a byte.
    for (const char* sub : {"/JPEGImages/", "/SegmentationClass/"})
      EXPECT_EQ(read_file(dir + sub + id + ".png"), read_file(dir1 + sub + id + ".png")) << id;
  }
  fs::remove_all(dir);
  fs::remove_all(dir1);
}

TEST(ToyWorldTool, VocabularyToolLearnsFromCaptions) {
  const std::string dir = test::make_temp_dir("toy-vocab");
  std::string log;
  ASSERT_EQ(test::run_command(tool("make_toy_dataset") + " --out " + dir + " --count 40 --seed 5 --split train", &log), 0) << log;
  ASSERT_EQ(test::run_command(tool("make_toy_vocab") + " --captions " + dir + "/captions.txt --prompts " +
                                  test::source_dir() + "/prompts/toy.json --out " + dir + "/vocab.txt.gz", &log), 0)
      << log;
  const BpeTokenizer tok = BpeTokenizer::from_file(dir + "/vocab.txt.gz");
  EXPECT_LT(tok.vocab_size(), 1000);
  std::istringstream lines(read_file(dir + "/captions.txt"));
  for (std::string line; std::getline(lines, line);) {
    const std::string caption = line.substr(line.find('\t') + 1);
    // Learned to the end: every word is a single token.
    EXPECT_EQ(tok.encode(caption).size(), BpeTokenizer::pre_tokenize(BpeTokenizer::clean(caption)).size()) << caption;
  }
  fs::remove_all(dir);
}

TEST(ToyWorldModel, CommittedVocabularyEncodesEveryCaptionWord) {
  if (!fs::exists(committed_vocab())) GTEST_SKIP() << committed_vocab() << " not present";
  const BpeTokenizer tok = BpeTokenizer::from_file(committed_vocab());
  EXPECT_LT(tok.vocab_size(), 1000);  // keeps the token embedding small
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) texts.push_back(render_toy_sample(1, 100000 + i).caption);
  const auto prompts = nlohmann::json::parse(read_file(test::source_dir() + "/prompts/toy.json"));
  for (const auto& c : prompts.at("classes")) texts.push_back("a photo of a " + c.at("prompt").get<std::string>() + ".");
  for (const auto& b : prompts.at("background")) texts.push_back("a photo of a " + b.get<std::string>() + ".");
  for (const auto& t : texts) {
    const auto ids = tok.encode(t);
    // One token per word: no word falls back to byte pieces (ids < 256 are
    // bytes inside a word; 256..511 are whole one-character words like "a").
    EXPECT_EQ(ids.size(), BpeTokenizer::pre_tokenize(BpeTokenizer::clean(t)).size()) << t;
    for (auto id : ids) EXPECT_GE(id, 256) << t;
  }
}

TEST(ToyWorldModel, CommittedModelLoadsAndRecognisesObjects) {
  if (!fs::exists(committed_model()) || !fs::exists(committed_vocab()))
    GTEST_SKIP() << committed_model() << " not present";
  torch::NoGradGuard no_grad;
  const auto model = ClipModel::load(committed_model());
  const BpeTokenizer tok = BpeTokenizer::from_file(committed_vocab());
  EXPECT_EQ(model->patch_size(), 16);
  EXPECT_EQ(model->config().text.vocab_size, tok.vocab_size());
  EXPECT_EQ(model->context_length(), 77);
  std::vector<at::Tensor> rows;
  for (const auto& name : toy_class_names())
    rows.push_back(torch::tensor(tok.encode_for_model("a photo of a " + name + "."), torch::kLong));
  at::Tensor text = model->encode_text(torch::stack(rows));
  text = text / text.norm(2, -1, true);
  // Held-out images (the val seed): the best-matching class is present in most.
  int hits = 0;
  const int n = 40;
  for (int i = 0; i < n; ++i) {
    const ToySample s = render_toy_sample(2, i);
    cv::Mat resized;
    cv::resize(s.rgb, resized, cv::Size(s.rgb.cols / 16 * 16, s.rgb.rows / 16 * 16), 0, 0, cv::INTER_AREA);
    cv::Mat f;
    resized.convertTo(f, CV_32FC3, 1.0 / 255);
    at::Tensor img = torch::from_blob(f.data, {f.rows, f.cols, 3}, torch::kFloat).permute({2, 0, 1}).clone();
    img = (img - torch::tensor({0.48145466, 0.4578275, 0.40821073}).view({3, 1, 1})) /
          torch::tensor({0.26862954, 0.26130258, 0.27577711}).view({3, 1, 1});
    // CLIP-ES's image embedding: mean of ln_post over the patch tokens (spec §5).
    at::Tensor x = model->vision_ln_post(model->run_blocks(model->embed_image(img.unsqueeze(0).to(torch::kFloat)), 0,
                                                           model->num_vision_layers()));
    at::Tensor g = model->vision_project(x.slice(1, 1).mean(1))[0];
    const int best = static_cast<int>(torch::matmul(text, g / g.norm()).argmax().item<int64_t>());
    hits += std::find(s.labels.begin(), s.labels.end(), best) != s.labels.end();
  }
  EXPECT_GE(hits, 0.85 * n);
}

}  // namespace
}  // namespace clipes

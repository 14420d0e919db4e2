// train_toy_clip — trains the toy CLIP (issue #6) contrastively on toy-world
// images rendered on the fly, and saves it in OpenAI's TorchScript layout
// (fp16 weights) so `clipes` loads it like ViT-B-16.pt. See docs/toy-world.md.
//
// Design choices (why):
//  * Same family as OpenAI's ViT: patch 16, pre-LN, QuickGELU (our ClipModel
//    modules with trainable weights), only narrower and shallower.
//  * The image embedding is trained through TWO poolings: the CLS token
//    (standard CLIP; `classify` uses it) and proj(mean over the PATCH tokens
//    of ln_post), which is exactly the embedding CLIP-ES takes GradCAM
//    gradients through (spec §5). Training the mean-pooled path makes each
//    patch token carry the concepts present at its location, which is what
//    the CAMs need. Every loss term is averaged over the two poolings.
//  * Captions repeat within a batch (few classes), so InfoNCE uses soft
//    targets: caption j is a positive for image i when it names exactly i's
//    classes and either names i's background or none.
//  * A second, class-prompt term compares each image with the class file's
//    prompts (classes + background words), as CLIP-ES does at inference.
//    Only image-level labels are used; masks never reach the trainer.
//  * Text sequences are cut to the longest caption of the batch: with the
//    causal mask, positions after EOT never influence the EOT feature, so this
//    changes nothing but the cost.
//  * Deterministic: images come from render_toy_sample(seed, i), weights from
//    random_clip_weights(init seed), fixed thread count, no dropout.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include "clipes/cam/softmax_gradcam.h"
#include "clipes/data/toy_world.h"
#include "clipes/io/preprocess.h"
#include "clipes/model/checkpoint.h"
#include "clipes/model/clip_model.h"
#include "clipes/pipeline/bounded_queue.h"
#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Batch {
  at::Tensor images;  // [B,3,S,S] normalised
  at::Tensor tokens;  // [B,L] int64, L = longest caption + 2
  at::Tensor positive;  // [B,B] float: image i ↔ caption j match
  at::Tensor prompt_positive;  // [B, classes + backgrounds]: what image i contains
};

Batch make_batch(uint64_t seed, int64_t first, int size, int image_size, const clipes::BpeTokenizer& tok,
                 int context) {
  clipes::ToyWorldOptions o;
  o.min_size = o.max_size = image_size;
  std::vector<clipes::ToySample> samples;
  std::vector<at::Tensor> images;
  std::vector<std::vector<int64_t>> ids;
  size_t longest = 0;
  for (int i = 0; i < size; ++i) {
    samples.push_back(clipes::render_toy_sample(seed, static_cast<uint64_t>(first + i), o));
    images.push_back(clipes::normalize_clip(samples.back().rgb));
    ids.push_back(tok.encode_for_model(samples.back().caption, context));
    size_t n = 0;
    while (n < ids.back().size() && ids.back()[n]) ++n;
    longest = std::max(longest, n);
  }
  Batch b;
  b.images = torch::stack(images);
  b.tokens = torch::zeros({size, static_cast<int64_t>(longest)}, torch::kLong);
  b.positive = torch::zeros({size, size});
  const int n_cls = static_cast<int>(clipes::toy_class_names().size());
  b.prompt_positive = torch::zeros({size, n_cls + static_cast<int>(clipes::toy_background_names().size())});
  auto prompt_pos = b.prompt_positive.accessor<float, 2>();
  auto tokens = b.tokens.accessor<int64_t, 2>();
  auto pos = b.positive.accessor<float, 2>();
  for (int i = 0; i < size; ++i) {
    for (size_t k = 0; k < longest; ++k) tokens[i][k] = ids[i][k];
    for (int c : samples[i].labels) prompt_pos[i][c] = 1;
    prompt_pos[i][n_cls + samples[i].background] = 1;
    for (int j = 0; j < size; ++j)
      pos[i][j] = samples[i].labels == samples[j].labels &&
                  (!samples[j].caption_names_background || samples[i].background == samples[j].background);
  }
  return b;
}

// Cross-entropy of each row against the normalised positives of that row.
at::Tensor multi_positive_ce(const at::Tensor& logits, const at::Tensor& positive) {
  return -(positive / positive.sum(1, true) * torch::log_softmax(logits, 1)).sum(1).mean();
}

// Patch-level multiple-instance term (image-level labels only): every patch
// token, projected like the pooled embedding, picks among the class-file
// prompts (softmax over classes + background words); a prompt's image score is
// the mean of its top-k patch probabilities, trained with BCE against
// presence. Absent classes may win no patch, present ones must win some, so
// patch tokens become class-discriminative AT their location — what the
// GradCAM (spec §5) and the attention affinity (spec §6) read.
at::Tensor patch_mil_loss(const at::Tensor& patch_logits, const at::Tensor& positive, int64_t top_k) {
  const at::Tensor prob = torch::softmax(patch_logits, 2);  // [B,N,P]
  const int64_t k = std::min<int64_t>(top_k, prob.size(1));
  const at::Tensor score = std::get<0>(prob.topk(k, 1)).mean(1).clamp(1e-6, 1 - 1e-6);  // [B,P]
  return torch::binary_cross_entropy(score, positive);
}

// Attention self-distillation (images only, no labels, no masks): the
// patch-to-patch part of a block's head-averaged attention, rows renormalised,
// is pulled towards softmax_j(cos(f_i, f_j) / τ) of the model's OWN final patch
// embeddings f (gradient stopped). Real CLIP's later blocks attend within an
// object (what CAA, spec §6, averages over blocks L−7..L); a small model trained
// only contrastively links objects to each other instead, so CAA spreads the
// CAM. Teaching the later blocks to attend where the features agree is a
// self-distillation target in the spirit of DINO's: the teacher is the model
// itself, and nothing pixel-level reaches the trainer.
at::Tensor attention_distillation_loss(const std::vector<at::Tensor>& attention, const at::Tensor& patch_features,
                                       double temperature) {
  const at::Tensor f = patch_features.detach();                        // [B,N,E], unit rows
  const at::Tensor target = torch::softmax(torch::matmul(f, f.transpose(1, 2)) / temperature, -1);  // [B,N,N]
  at::Tensor loss = torch::zeros({});
  for (const at::Tensor& a : attention) {
    at::Tensor p = a.slice(1, 1).slice(2, 1);  // drop the CLS row and column, as CAA does
    p = p / p.sum(-1, true);
    // KL(target ‖ p): the cross-entropy minus the target's (constant) entropy.
    loss = loss + (target * (torch::log(target.clamp_min(1e-12)) - torch::log(p.clamp_min(1e-12)))).sum(-1).mean();
  }
  return loss / static_cast<double>(attention.size());
}

// Symmetric cross-entropy against soft targets (rows of `positive`, normalised).
at::Tensor soft_infonce(const at::Tensor& logits, const at::Tensor& positive) {
  const at::Tensor t_i = positive / positive.sum(1, true);
  const at::Tensor t_t = positive.t() / positive.t().sum(1, true);
  const at::Tensor l_i = -(t_i * torch::log_softmax(logits, 1)).sum(1).mean();
  const at::Tensor l_t = -(t_t * torch::log_softmax(logits.t(), 1)).sum(1).mean();
  return (l_i + l_t) / 2;
}

at::Tensor unit(const at::Tensor& x) { return x / x.norm(2, -1, true); }

struct Prompts {
  std::vector<std::string> class_words, class_prompts, background;
  std::string templ;
};

Prompts read_prompts(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(clipes::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw clipes::file_error(path, e.what());
  }
  Prompts p;
  p.templ = j.value("template", "a photo of a {}.");
  for (const auto& c : j.at("classes")) {
    p.class_words.push_back(c.at("name").get<std::string>());
    p.class_prompts.push_back(c.value("prompt", p.class_words.back()));
  }
  p.background = j.value("background", std::vector<std::string>{});
  if (p.class_words != clipes::toy_class_names())
    throw clipes::file_error(path, "classes differ from the toy world's (order matters)");
  return p;
}

at::Tensor text_features(const clipes::ClipModel& model, const clipes::BpeTokenizer& tok, const std::string& templ,
                         const std::vector<std::string>& words) {
  std::vector<at::Tensor> rows;
  for (const auto& w : words) {
    std::string t = templ;
    t.replace(t.find("{}"), 2, w);
    rows.push_back(torch::tensor(tok.encode_for_model(t, static_cast<int>(model.context_length())), torch::kLong));
  }
  return unit(model.encode_text(torch::stack(rows)).to(torch::kFloat));
}

// Zero-shot multi-label ranking and a CAM-only segmentation check on held-out
// images at their native sizes (CLIP-ES ceil-16 input, spec §3).
void evaluate(const clipes::ClipModel& model, const clipes::BpeTokenizer& tok, const Prompts& prompts,
              uint64_t seed, int count, int cam_count) {
  if (count <= 0) return;
  torch::NoGradGuard no_grad;
  const at::Tensor cls_text = text_features(model, tok, prompts.templ, prompts.class_words);
  const at::Tensor bg_text = text_features(model, tok, prompts.templ, prompts.background);
  const int n_cls = static_cast<int>(prompts.class_words.size());
  int64_t pairs = 0, pairs_ok_mean = 0, pairs_ok_cls = 0, exact_mean = 0, top1_mean = 0;
  std::vector<int64_t> inter(n_cls + 1, 0), uni(n_cls + 1, 0);
  clipes::SoftmaxGradCamOptions cam_options;
  cam_options.affinity_blocks = 1;
  const clipes::SoftmaxGradCam gradcam(model, cam_options);
  for (int i = 0; i < count; ++i) {
    const clipes::ToySample s = clipes::render_toy_sample(seed, static_cast<uint64_t>(i));
    const at::Tensor image = clipes::preprocess_to_patch_multiple(s.rgb, model.patch_size()).unsqueeze(0);
    at::Tensor x = model.run_blocks(model.embed_image(image), 0, model.num_vision_layers());
    x = model.vision_ln_post(x);
    const at::Tensor g_mean = unit(model.vision_project(x.slice(1, 1).mean(1)).to(torch::kFloat))[0];
    const at::Tensor g_cls = unit(model.vision_project(x.select(1, 0)).to(torch::kFloat))[0];
    const at::Tensor sm = torch::matmul(cls_text, g_mean), sc = torch::matmul(cls_text, g_cls);
    std::vector<bool> present(n_cls, false);
    for (int c : s.labels) present[c] = true;
    float min_present = 1e9f, max_absent = -1e9f;
    for (int p = 0; p < n_cls; ++p) {
      if (present[p]) min_present = std::min(min_present, sm[p].item<float>());
      else max_absent = std::max(max_absent, sm[p].item<float>());
      if (!present[p]) continue;
      for (int a = 0; a < n_cls; ++a) {
        if (present[a]) continue;
        ++pairs;
        pairs_ok_mean += sm[p].item<float>() > sm[a].item<float>();
        pairs_ok_cls += sc[p].item<float>() > sc[a].item<float>();
      }
    }
    exact_mean += min_present > max_absent;
    top1_mean += present[sm.argmax().item<int64_t>()];

    if (i < cam_count) {
      // GradCAM with the ground-truth labels (as CLIP-ES does), no CAA; pixel
      // label = argmax of [1 - max cam, cams] (spec §7 with α = 1).
      std::vector<int64_t> idx(s.labels.begin(), s.labels.end());
      const at::Tensor feats = torch::cat({cls_text.index({torch::tensor(idx)}), bg_text});
      at::Tensor cams;
      {
        torch::AutoGradMode grad(true);
        cams = gradcam.compute(image[0], feats, static_cast<int>(idx.size())).cams;
      }
      cams = torch::upsample_bilinear2d(cams.unsqueeze(0), {s.rgb.rows, s.rgb.cols}, false)[0];
      const at::Tensor scores = torch::cat({(1 - std::get<0>(cams.max(0))).unsqueeze(0), cams});
      const at::Tensor arg = scores.argmax(0);
      auto a = arg.accessor<int64_t, 2>();
      for (int y = 0; y < s.mask.rows; ++y)
        for (int xx = 0; xx < s.mask.cols; ++xx) {
          const int gt = s.mask.at<uchar>(y, xx);
          if (gt == 255) continue;
          const int64_t k = a[y][xx];
          const int pred = k == 0 ? 0 : s.labels[k - 1] + 1;
          if (pred == gt) ++inter[gt], ++uni[gt];
          else ++uni[gt], ++uni[pred];
        }
    }
  }
  std::fprintf(stderr,
               "eval (%d held-out images, seed %llu): pairwise present>absent mean-pool %.4f, CLS %.4f; "
               "all present ranked first %.4f; top-1 present %.4f\n",
               count, static_cast<unsigned long long>(seed), double(pairs_ok_mean) / pairs, double(pairs_ok_cls) / pairs,
               double(exact_mean) / count, double(top1_mean) / count);
  if (cam_count > 0) {
    double miou = 0;
    std::string per;
    for (int c = 0; c <= n_cls; ++c) {
      const double iou = uni[c] ? double(inter[c]) / uni[c] : 0;
      miou += iou;
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.3f", c ? prompts.class_words[c - 1].c_str() : "bg", iou);
      per += buf;
    }
    std::fprintf(stderr, "eval GradCAM-only (no CAA) mIoU on %d images: %.4f |%s\n", cam_count, miou / (n_cls + 1),
                 per.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train the toy CLIP contrastively on the synthetic toy world"};
  std::string out = "models/toy-clip.pt", vocab = "models/toy-vocab.txt.gz", prompts_path = "prompts/toy.json";
  int64_t images = 20000;
  int epochs = 1;
  int batch = 32, image_size = 160, threads = 2;
  int vision_width = 128, vision_layers = 4, text_width = 64, text_layers = 2, embed_dim = 64;
  double lr = 2e-3, weight_decay = 0.05, warmup = 0.05, prompt_weight = 1.0, patch_weight = 0.0;
  double patch_top_fraction = 0.05;
  double attention_weight = 0.0, attention_temperature = 0.1;
  int attention_blocks = 8;
  std::vector<int> image_sizes;
  uint64_t data_seed = 1, init_seed = 0, eval_seed = 2;
  int eval_images = 500, cam_images = 100;
  bool eval_only = false;
  app.add_option("--out", out, "output model (.pt, OpenAI TorchScript layout)");
  app.add_option("--vocab", vocab, "toy BPE vocabulary (make_toy_vocab)");
  app.add_option("--prompts", prompts_path, "toy class file (for the zero-shot evaluation)");
  app.add_option("--images", images, "training images (rendered on the fly)");
  app.add_option("--epochs", epochs, "passes over the --images training images");
  app.add_option("--batch", batch, "batch size");
  app.add_option("--image-size", image_size, "training resolution (square, multiple of 16)");
  app.add_option("--threads", threads, "torch intra-op threads");
  app.add_option("--vision-width", vision_width);
  app.add_option("--vision-layers", vision_layers);
  app.add_option("--text-width", text_width);
  app.add_option("--text-layers", text_layers);
  app.add_option("--embed-dim", embed_dim);
  app.add_option("--lr", lr, "peak AdamW learning rate");
  app.add_option("--weight-decay", weight_decay, "AdamW weight decay (matrices only)");
  app.add_option("--prompt-weight", prompt_weight, "weight of the class-prompt term (0: captions only)");
  app.add_option("--patch-weight", patch_weight, "weight of the patch-level multiple-instance prompt term");
  app.add_option("--patch-top-fraction", patch_top_fraction, "fraction of patches pooled per prompt by that term");
  app.add_option("--attention-weight", attention_weight,
                 "weight of the attention self-distillation term on the later blocks (0: off)");
  app.add_option("--attention-blocks", attention_blocks,
                 "last blocks that term applies to (CAA averages the last 8, spec §6)");
  app.add_option("--attention-temperature", attention_temperature,
                 "temperature of that term's feature-similarity target");
  app.add_option("--image-sizes", image_sizes,
                 "training resolutions drawn per batch (multiples of 16; overrides --image-size)");
  app.add_option("--warmup", warmup, "warm-up fraction of the steps (then cosine to 0)");
  app.add_option("--seed", data_seed, "training data seed");
  app.add_option("--init-seed", init_seed, "weight initialisation seed");
  app.add_option("--eval-seed", eval_seed, "held-out data seed (the val split uses 2)");
  app.add_option("--eval-images", eval_images, "held-out images for the zero-shot report");
  app.add_option("--cam-images", cam_images, "held-out images for the GradCAM-only mIoU check");
  app.add_flag("--eval-only", eval_only, "evaluate --out instead of training");
  CLI11_PARSE(app, argc, argv);

  try {
    torch::set_num_threads(threads);
    torch::manual_seed(init_seed);
    const clipes::BpeTokenizer tok = clipes::BpeTokenizer::from_file(vocab);
    const Prompts prompts = read_prompts(prompts_path);
    if (eval_only) {
      const auto model = clipes::ClipModel::load(out);
      std::fprintf(stderr, "%s\n", model->config().describe().c_str());
      evaluate(*model, tok, prompts, eval_seed, eval_images, cam_images);
      return 0;
    }
    if (image_sizes.empty()) image_sizes = {image_size};
    image_size = image_sizes[0];
    for (int size : image_sizes)
      if (size % 16) throw clipes::Error("--image-size(s) must be multiples of 16");

    clipes::ClipConfig config;
    config.vision = {vision_width, vision_layers, std::max(1, vision_width / 64), 16, image_size / 16};
    config.text = {text_width, text_layers, std::max(1, text_width / 64), 77, static_cast<int>(tok.vocab_size())};
    config.embed_dim = embed_dim;
    clipes::ModelOptions mo;
    mo.trainable = true;
    auto model = std::make_shared<clipes::ClipModel>(clipes::random_clip_weights(config, init_seed), config, mo);
    std::fprintf(stderr, "train_toy_clip: %s; %lld parameters\n", config.describe().c_str(),
                 static_cast<long long>(config.parameter_count()));

    // Weight decay on matrices only (not LayerNorms, biases, embeddings, logit scale).
    std::vector<at::Tensor> decay, no_decay;
    at::Tensor logit_scale;
    for (const auto& item : model->named_parameters(true)) {
      const std::string& name = item.key();
      if (name == "logit_scale") logit_scale = item.value();
      const bool matrix = item.value().dim() >= 2 && name.find("embedding") == std::string::npos;
      (matrix ? decay : no_decay).push_back(item.value());
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(lr).betas({0.9, 0.98}).eps(1e-6).weight_decay(weight_decay)));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(lr).betas({0.9, 0.98}).eps(1e-6).weight_decay(0)));
    torch::optim::AdamW optimizer(groups);

    // Token rows of every prompt variant, cut to the longest (causal: same features).
    std::map<std::string, at::Tensor> prompt_tokens;
    {
      std::vector<std::string> words = prompts.background;
      for (size_t c = 0; c < prompts.class_words.size(); ++c) {
        for (const auto& w : clipes::toy_class_words()[c]) words.push_back(w);
        words.push_back(prompts.class_prompts[c]);
      }
      for (const auto& w : words) {
        std::string t = prompts.templ;
        t.replace(t.find("{}"), 2, w);
        prompt_tokens[w] = torch::tensor(tok.encode_for_model(t, 77), torch::kLong).slice(0, 0, 24);
      }
    }
    // The dataset is images 0..N-1 of the seed's stream, seen `epochs` times
    // (re-rendered each time: rendering is deterministic and cheaper than
    // holding 20k images in memory).
    const int64_t steps_per_epoch = images / batch, steps = steps_per_epoch * epochs;
    const int64_t warmup_steps = std::max<int64_t>(1, static_cast<int64_t>(warmup * steps));
    // Batches are rendered ahead by one thread while torch computes.
    clipes::BoundedQueue<Batch> queue(3);
    std::thread producer([&] {
      for (int64_t s = 0; s < steps; ++s)
        // The size cycles with the step so inference sizes (spec §3.5 resizes
        // the position embedding) are seen in training; deterministic.
        if (!queue.push(make_batch(data_seed, (s % steps_per_epoch) * batch, batch,
                                   image_sizes[s % image_sizes.size()], tok, 77)))
          break;
      queue.close();
    });
    const auto t0 = Clock::now();
    double ema = 0;
    const double max_log_scale = std::log(100.0);
    for (int64_t step = 0; step < steps; ++step) {
      Batch b = *queue.pop();
      const double f = step < warmup_steps ? double(step + 1) / warmup_steps
                                           : 0.5 * (1 + std::cos(M_PI * double(step - warmup_steps) /
                                                                 std::max<int64_t>(1, steps - warmup_steps)));
      for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr * f);

      std::vector<at::Tensor> attention;
      const int attention_from = std::max(0, config.vision.layers - attention_blocks);
      at::Tensor x = model->run_blocks(model->embed_image(b.images), 0, config.vision.layers,
                                       attention_weight > 0 ? &attention : nullptr, attention_from);
      x = model->vision_ln_post(x);
      const at::Tensor img_cls = unit(model->vision_project(x.select(1, 0)));
      const at::Tensor img_mean = unit(model->vision_project(x.slice(1, 1).mean(1)));
      const at::Tensor txt = unit(model->encode_text(b.tokens));
      const at::Tensor scale = logit_scale.exp();
      const at::Tensor caption_loss = (soft_infonce(scale * torch::matmul(img_mean, txt.t()), b.positive) +
                                       soft_infonce(scale * torch::matmul(img_cls, txt.t()), b.positive)) /
                                      2;
      // The prompt term: each image against the class-file prompts (classes
      // then background words, spec §4 template), all present ones positive.
      // This is the comparison CLIP-ES makes at inference; it gives every
      // step a label-dense signal. Prompt variants rotate over the steps:
      // class name, a synonym, the joint "a,b" string (spec §4 parity mode).
      std::vector<at::Tensor> prompt_rows;
      for (size_t c = 0; c < prompts.class_words.size(); ++c) {
        const auto& words = clipes::toy_class_words()[c];
        const std::string word = step % 3 == 0 ? words[0]
                                 : step % 3 == 1 ? words[words.size() > 1 ? 1 : 0]
                                                 : prompts.class_prompts[c];
        prompt_rows.push_back(prompt_tokens[word]);
      }
      for (const auto& bg : prompts.background) prompt_rows.push_back(prompt_tokens[bg]);
      const at::Tensor prompt_txt = unit(model->encode_text(torch::stack(prompt_rows)));
      const at::Tensor prompt_loss =
          (multi_positive_ce(scale * torch::matmul(img_mean, prompt_txt.t()), b.prompt_positive) +
           multi_positive_ce(scale * torch::matmul(img_cls, prompt_txt.t()), b.prompt_positive)) /
          2;
      at::Tensor loss = caption_loss + prompt_weight * prompt_loss;
      at::Tensor patch_loss = torch::zeros({}), attention_loss = torch::zeros({});
      const at::Tensor patches =
          patch_weight > 0 || attention_weight > 0 ? unit(model->vision_project(x.slice(1, 1))) : at::Tensor();  // [B,N,E]
      if (attention_weight > 0) {
        attention_loss = attention_distillation_loss(attention, patches, attention_temperature);
        loss = loss + attention_weight * attention_loss;
      }
      if (patch_weight > 0) {
        const int64_t top_k = std::max<int64_t>(1, std::lround(patch_top_fraction * patches.size(1)));
        patch_loss = patch_mil_loss(scale * torch::matmul(patches, prompt_txt.t()), b.prompt_positive, top_k);
        loss = loss + patch_weight * patch_loss;
      }
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      {
        torch::NoGradGuard no_grad;
        logit_scale.clamp_(0, max_log_scale);  // OpenAI clamps the scale at 100
      }
      const double l = loss.item<double>();
      ema = step ? 0.95 * ema + 0.05 * l : l;
      if (step % 10 == 0 || step + 1 == steps) {
        const double el = seconds_since(t0), ips = (step + 1) * batch / el;
        std::fprintf(stderr, "step %lld/%lld loss %.4f (ema %.4f; captions %.3f, prompts %.3f, patches %.3f, attention %.3f) scale %.1f lr %.2e | %.1f img/s, %.0fs, ETA %.0fs\n",
                     static_cast<long long>(step + 1), static_cast<long long>(steps), l, ema,
                     caption_loss.item<double>(), prompt_loss.item<double>(), patch_loss.item<double>(),
                     attention_loss.item<double>(),
                     std::exp(logit_scale.item<double>()), lr * f, ips, el, (steps - step - 1) * batch / ips);
      }
    }
    producer.join();
    const double train_s = seconds_since(t0);

    // OpenAI ships fp16 weights; so do we (the loader converts back).
    clipes::TensorMap state = model->state();
    for (auto& [name, t] : state) t = t.to(torch::kHalf);
    clipes::save_openai_torchscript(out, state, config);
    std::fprintf(stderr, "train_toy_clip: trained %lld images in %.0f s, final loss (ema) %.4f → %s\n",
                 static_cast<long long>(steps * batch), train_s, ema, out.c_str());
    const auto saved = clipes::ClipModel::load(out);
    evaluate(*saved, tok, prompts, eval_seed, eval_images, cam_images);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "train_toy_clip: error: " << e.what() << "\n";
    return 2;
  }
}

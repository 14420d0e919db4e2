#include "clipes/methods/tag_clip.h"

#include <torch/torch.h>

#include <algorithm>

#include "clipes/cam/box_mask.h"
#include "clipes/model/clip_model.h"
#include "clipes/model/last_block.h"
#include "clipes/util/error.h"
#include "clipes/util/l2_normalize.h"

namespace clipes {
namespace {

// The official code embeds at the CLIP-ES position resize (bilinear, stored
// as float16: upsample_pos_emb in its clip_model.py), except at the native
// grid, where it adds the position embedding as stored, unrounded
// (segment-spec §5 quirk b; the official test is H == W == 224, the native
// size of the ViT-B/16 it was written for). CLIP-ES itself always resizes
// and rounds (clip_es.h keeps that).
DenseForwardOptions tagclip_forward(const ClipModel& model, LastBlockKind last, int64_t height, int64_t width) {
  const int64_t native = static_cast<int64_t>(model.config().vision.grid) * model.patch_size();
  DenseForwardOptions o;
  o.last_block.kind = last;
  o.position = PositionResize::Bilinear;
  o.round_pos_to_fp16 = !(height == native && width == native);
  return o;
}

// The official numbering (segment-spec §5 quirk c) exists for 10 to 12 blocks:
// it masks block 11 when there is one and averages blocks [8, L−1), which is
// empty below 10 blocks (a NaN mean in the official code); deeper models put
// block 11 inside the trunk, which the official code (fixed to patch 16, i.e.
// OpenAI's ViT-B/16) never meets.
constexpr int kOfficialMaskedBlock = 11, kOfficialFirstAveraged = 8;

}  // namespace

at::Tensor attention_vote_affinity(const std::vector<at::Tensor>& patch_attention, int first, int end, int min_votes) {
  const int blocks = static_cast<int>(patch_attention.size());
  if (blocks == 0 || first < 0 || end > blocks || first >= end)
    throw Error("TagCLIP affinity: blocks [" + std::to_string(first) + ", " + std::to_string(end) + ") of " +
                std::to_string(blocks));
  const at::Tensor stack = torch::stack(patch_attention).to(torch::kFloat);  // [L, n, n]
  const at::Tensor means = stack.flatten(1).mean(1).view({blocks, 1, 1});
  const at::Tensor votes = (stack > means).sum(0) >= min_votes;
  return stack.slice(0, first, end).mean(0) * votes.to(torch::kFloat);
}

at::Tensor box_masked_refinement(const at::Tensor& coarse, const at::Tensor& propagated, const at::Tensor& affinity,
                                 int64_t grid_h, int64_t grid_w) {
  const int64_t n = grid_h * grid_w;
  if (coarse.dim() != 2 || coarse.size(0) != n || propagated.sizes() != coarse.sizes() || affinity.dim() != 2 ||
      affinity.size(0) != n || affinity.size(1) != n)
    throw Error("TagCLIP refinement: expected [n, Q] maps and an [n, n] affinity for a " + std::to_string(grid_h) +
                "x" + std::to_string(grid_w) + " grid");
  at::Tensor refined = propagated.clone();
  for (int64_t q = 0; q < coarse.size(1); ++q) {
    const at::Tensor column = propagated.select(1, q);
    if (column.max().item<float>() <= 0) continue;  // the official code refines classes with a positive max
    at::Tensor t = column - column.min();
    const float range = t.max().item<float>();
    if (range <= 0) {
      // A flat map: 0/0 in the official code, which leaves no contour and so
      // an empty box mask, i.e. a zero column.
      refined.select(1, q).zero_();
      continue;
    }
    t = t / range;
    // scoremap2bbox at threshold = the map's mean, every contour (its
    // RETR_EXTERNAL and our RETR_TREE give the same union of boxes: a hole's
    // box lies inside its outer contour's).
    const at::Tensor box = box_mask(t.view({grid_h, grid_w}), t.mean().item<double>()).view({1, n});
    refined.select(1, q).copy_(torch::matmul(affinity * box, coarse.select(1, q)));
  }
  return refined;
}

CropPlan crop_plan(const at::Tensor& class_map, int64_t grid_h, int64_t grid_w, int64_t crop_grid) {
  CropPlan plan;
  at::Tensor t = class_map.to(torch::kFloat) - class_map.min().to(torch::kFloat);
  t = t / t.max();  // NaN for a flat map: nothing exceeds 0.5 then, as in the official code
  const at::Tensor mask = (t > 0.5).view({grid_h, grid_w});
  const at::Tensor cols = mask.any(0).nonzero().flatten(), rows = mask.any(1).nonzero().flatten();
  int64_t x1 = 0, x2 = 0, y1 = 0, y2 = 0;
  if (cols.numel() > 0) {
    x1 = cols[0].item<int64_t>();
    x2 = cols[-1].item<int64_t>() + 1;
    y1 = rows[0].item<int64_t>();
    y2 = rows[-1].item<int64_t>() + 1;
  }
  // The official clamp: the box's end may not pass grid − 1, so a region
  // touching the right or bottom edge loses that column or row.
  y2 = std::min(y2, grid_h - 1);
  x2 = std::min(x2, grid_w - 1);
  if (x1 == x2 || y1 == y2) return plan;
  plan.valid = true;
  plan.x0 = static_cast<int>(x1), plan.x1 = static_cast<int>(x2), plan.y0 = static_cast<int>(y1),
  plan.y1 = static_cast<int>(y2);
  const at::Tensor region = mask.slice(0, y1, y2).slice(1, x1, x2).to(torch::kFloat).unsqueeze(0).unsqueeze(0);
  plan.keep = at::upsample_nearest2d(region, {crop_grid, crop_grid}).flatten() > 0.5;
  return plan;
}

std::vector<int> relative_tags(const std::vector<float>& scores, double relative) {
  if (scores.empty()) return {};
  // float32 arithmetic and the FIRST maximum, as torch / numpy compute them.
  const auto lo = std::min_element(scores.begin(), scores.end());
  const auto hi = std::max_element(scores.begin(), scores.end());
  const float threshold = *lo + static_cast<float>(relative) * (*hi - *lo);
  std::vector<int> tags;
  for (size_t c = 0; c < scores.size(); ++c)
    if (scores[c] > threshold) tags.push_back(static_cast<int>(c));
  if (tags.empty()) tags.push_back(static_cast<int>(hi - scores.begin()));
  return tags;
}

int TagClip::patch_size() const { return model_.patch_size(); }

TagClip::TagClip(const ClipModel& model, at::Tensor text, int num_classes, TagClipConfig config)
    : model_(model), text_(std::move(text)), num_classes_(num_classes), config_(config) {
  if (text_.dim() != 2 || num_classes_ <= 0 || num_classes_ > text_.size(0))
    throw Error("TagCLIP: " + std::to_string(num_classes_) + " classes but " +
                std::to_string(text_.dim() == 2 ? text_.size(0) : 0) + " text queries");
  if (config_.crop_size % model_.patch_size()) throw Error("TagCLIP: the crop size must be a multiple of the patch size");
  const int layers = model_.num_vision_layers();
  if (config_.block_numbers == TagBlockNumbers::Official &&
      (layers <= kOfficialFirstAveraged + 1 || layers > kOfficialMaskedBlock + 1))
    throw Error("TagCLIP: the official block numbers (self-masked block 11, blocks 8.." + std::to_string(layers - 2) +
                " averaged) are defined for models of 10 to 12 vision blocks; this one has " + std::to_string(layers));
  if (config_.block_numbers == TagBlockNumbers::FromEnd && (config_.affinity_blocks < 1 || layers < 2))
    throw Error("TagCLIP: at least one averaged block and a model of two vision blocks are needed");
  text_ = text_.to(torch::kFloat);
}

TagClip::Blocks TagClip::blocks() const {
  const int layers = model_.num_vision_layers();
  Blocks b;
  b.end = layers - 1;  // both numberings stop before the last block ([..:-1])
  if (config_.block_numbers == TagBlockNumbers::Official) {
    b.last = layers == kOfficialMaskedBlock + 1 ? LastBlockKind::SelfMasked : LastBlockKind::Standard;
    b.first = kOfficialFirstAveraged;
  } else {
    b.last = LastBlockKind::SelfMasked;
    b.first = std::max(0, b.end - config_.affinity_blocks);
  }
  return b;
}

TagResult TagClip::classify(const at::Tensor& image) const {
  torch::NoGradGuard no_grad;
  const Blocks blocks = this->blocks();
  DenseForwardOptions options = tagclip_forward(model_, blocks.last, image.size(2), image.size(3));
  options.keep_attention_from = 0;  // the vote counts every block
  const DenseForward f = model_.dense_forward(image, options);
  const int64_t h = f.grid_h, w = f.grid_w;
  const at::Tensor text = text_.to(f.patch_features.device());
  const double scale = model_.logit_scale_exp();

  const at::Tensor patches = l2_normalize(f.patch_features[0].to(torch::kFloat));       // [n, E]
  const at::Tensor coarse = torch::softmax(scale * torch::matmul(patches, text.t()), -1);  // [n, Q]
  std::vector<at::Tensor> attention;
  for (const at::Tensor& a : f.attention) attention.push_back(a[0].slice(0, 1).slice(1, 1).to(torch::kFloat));
  const at::Tensor affinity = attention_vote_affinity(attention, blocks.first, blocks.end, config_.min_votes);
  const at::Tensor refined = box_masked_refinement(coarse, torch::matmul(affinity, coarse), affinity, h, w);
  const at::Tensor best = std::get<0>(refined.max(0)).slice(0, 0, num_classes_).to(torch::kCPU).contiguous();
  TagResult result;
  result.scores.assign(best.data_ptr<float>(), best.data_ptr<float>() + num_classes_);

  if (config_.crop_rescoring) {
    // Candidates: classes above the relative threshold of the WHOLE refined
    // map (every patch and query), chosen before any re-scoring.
    const float lo = refined.min().item<float>(), hi = refined.max().item<float>();
    const float threshold = lo + static_cast<float>(config_.relative_threshold) * (hi - lo);
    std::vector<int> candidates;
    for (int c = 0; c < num_classes_; ++c)
      if (result.scores[static_cast<size_t>(c)] > threshold) candidates.push_back(c);
    const int p = model_.patch_size();
    const int64_t g = config_.crop_size / p;
    for (int c : candidates) {
      const CropPlan plan = crop_plan(refined.select(1, c), h, w, g);
      if (!plan.valid) break;  // the official cwr() returns here, skipping the remaining classes
      const at::Tensor cut = image.slice(2, plan.y0 * p, plan.y1 * p).slice(3, plan.x0 * p, plan.x1 * p);
      const at::Tensor crop = at::upsample_bilinear2d(cut.to(torch::kFloat), {config_.crop_size, config_.crop_size},
                                                      /*align_corners=*/false);
      // The CLS token may attend only to the region's patches (−1000 elsewhere), in every block.
      at::Tensor mask = torch::zeros({1 + g * g, 1 + g * g});
      mask.select(0, 0).slice(0, 1).masked_fill_(plan.keep.logical_not(), -1000.0);
      DenseForwardOptions crop_options =
          tagclip_forward(model_, LastBlockKind::Standard, config_.crop_size, config_.crop_size);
      crop_options.attention_mask = mask;
      const DenseForward fc = model_.dense_forward(crop, crop_options);
      const at::Tensor cls = l2_normalize(fc.cls_feature[0].to(torch::kFloat));
      const float score = torch::softmax(scale * torch::matmul(text, cls), 0)[c].item<float>();
      float& s = result.scores[static_cast<size_t>(c)];
      s = static_cast<float>((1 - config_.crop_weight) * s + config_.crop_weight * score);
    }
  }
  result.tags = relative_tags(result.scores, config_.relative_threshold);
  return result;
}

}  // namespace clipes

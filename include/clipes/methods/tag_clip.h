// TagCLIP (segment-spec §5): image-level tags from CLIP alone, for datasets
// without labels — the first half of the label-free route (tags, then
// CLIP-ES on them).
//
// One dense pass with the self-masked last block (model/last_block.h), then:
//   coarse   = softmax over classes+background words of 100·cos(patch, text)  [n, Q]
//   affinity = mean attention of the blocks before the last (ViT-B/16: 8..10),
//              kept where ≥ 4 of all blocks attend above their own mean (the
//              vote; the last block votes with its UNMASKED attention, quirk a)
//   refined  = box-masked refinement: per query, affinity·(box ⊙ coarse)
//   scores   = max over patches of refined, the dataset classes only
//   crop re-scoring: classes above the relative threshold are cropped to their
//              region, resized to 224, scored by CLS attention restricted to
//              the region, and averaged half-and-half with the old score
//   tags     = classes with score > min + 0.5·(max − min); at least the best.
// Each stage is a free function, tested alone on hand-worked cases
// (tests/test_tag_clip.cpp). The official code (linyq2117/TagCLIP) was run
// side by side outside this machine (issue 25); its four departures from the
// paper are reproduced and listed in segment-spec §5: (a) the vote's
// unmasked last-block attention, (b) the unrounded position embedding at
// 224×224, (c) fixed block numbers (TagBlockNumbers), (d) VOC-style COCO
// names (pipeline/tag.h, TagNames).
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace clipes {

class ClipModel;
enum class LastBlockKind;

// Which blocks TagCLIP masks and averages (segment-spec §5 quirk c).
// FromEnd: the last block self-masked, the `affinity_blocks` blocks before it
// averaged — what the method means, on any depth. Official: the official
// code's fixed numbers, block 11 self-masked (when the model has one) and
// blocks [8, L−1) averaged; the same as FromEnd on a 12-block ViT-B/16, and
// only defined for 10 to 12 blocks (the constructor refuses others).
enum class TagBlockNumbers { FromEnd, Official };

struct TagClipConfig {
  TagBlockNumbers block_numbers = TagBlockNumbers::FromEnd;
  int affinity_blocks = 3;            // FromEnd: averaged blocks, counted back from the one before the last ([8:-1] of 12)
  int min_votes = 4;                  // a pair survives when ≥ this many blocks attend above their mean
  double relative_threshold = 0.5;    // tags and crop candidates: > min + r·(max − min)
  bool crop_rescoring = true;
  int crop_size = 224;                // the crop is resized to this square (pixels)
  double crop_weight = 0.5;           // new score = (1 − w)·old + w·crop score
};

struct TagResult {
  std::vector<float> scores;  // one per dataset class (background words dropped)
  std::vector<int> tags;      // class indices in ascending order, never empty
};

// --- the stages ---
// patch_attention: each block's head-averaged attention among the patches
// [n, n] (CLS row and column dropped), block order. Mean of blocks
// [first, end) times the vote mask: pair (i, j) kept where attention[b](i, j)
// exceeds block b's mean attention in at least `min_votes` of ALL blocks.
at::Tensor attention_vote_affinity(const std::vector<at::Tensor>& patch_attention, int first, int end, int min_votes);

// TagCLIP's box-masked refinement. coarse: [n, Q] patch probabilities;
// propagated = affinity·coarse. For each query whose propagated column has a
// positive max: min-max normalise that column, take the union of the boxes
// of its contours at threshold = its mean (cam/box_mask.h arithmetic), and
// return affinity·(box ⊙ coarse column) in its place. [n, Q].
at::Tensor box_masked_refinement(const at::Tensor& coarse, const at::Tensor& propagated, const at::Tensor& affinity,
                                 int64_t grid_h, int64_t grid_w);

// Where a class is re-scored: the bounding box (in patches) of the
// min-max-normalised map > 0.5, its end clamped to grid − 1 as the official
// code does; `keep` is the region inside the box, nearest-resized to
// crop_grid × crop_grid and flattened. valid = false for an empty box (the
// official code then stops re-scoring any further class).
struct CropPlan {
  bool valid = false;
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // patches, end exclusive
  at::Tensor keep;                     // bool [crop_grid²]
};
CropPlan crop_plan(const at::Tensor& class_map, int64_t grid_h, int64_t grid_w, int64_t crop_grid);

// Classes scoring above min + relative·(max − min); the argmax when none does.
std::vector<int> relative_tags(const std::vector<float>& scores, double relative);

class TagClip {
 public:
  // text: unit query features [num_classes + background words, E], the
  // dataset's classes first.
  TagClip(const ClipModel& model, at::Tensor text, int num_classes, TagClipConfig config = {});
  int patch_size() const;  // the model's: inputs are rounded up to multiples of it
  // image: [1, 3, H, W] normalised, H and W multiples of the patch size
  // (the CLIP-ES ceil-16 preprocessing, io/preprocess.h).
  TagResult classify(const at::Tensor& image) const;

 private:
  struct Blocks {
    int first = 0, end = 0;  // averaged blocks [first, end)
    LastBlockKind last{};    // how the last block runs
  };
  Blocks blocks() const;

  const ClipModel& model_;
  at::Tensor text_;
  int num_classes_;
  TagClipConfig config_;
};

}  // namespace clipes

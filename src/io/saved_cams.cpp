#include "clipes/io/saved_cams.h"

#include <algorithm>

#include <torch/torch.h>

#include <filesystem>

#include "clipes/io/clip_es_cams.h"
#include "clipes/io/npy.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

struct Layout {
  fs::path cam, refined, keys, clip_es;
  Layout(const std::string& dir, const std::string& stem)
      : cam(fs::path(dir) / (stem + "_cam.npy")),
        refined(fs::path(dir) / (stem + "_refined.npy")),
        keys(fs::path(dir) / (stem + "_keys.npy")),
        clip_es(fs::path(dir) / (stem + ".npy")) {}
  bool arrays() const { return is_file(refined) && is_file(keys); }
};

}  // namespace

bool saved_cams_exist(const std::string& cams_dir, const std::string& stem) {
  const Layout l(cams_dir, stem);
  return l.arrays() || is_file(l.clip_es);
}

std::string saved_cams_file(const std::string& cams_dir, const std::string& stem) {
  const Layout l(cams_dir, stem);
  if (l.arrays()) return l.refined.string();
  return is_file(l.clip_es) ? l.clip_es.string() : "";
}

SavedCams read_saved_cams(const std::string& cams_dir, const std::string& stem) {
  const Layout l(cams_dir, stem);
  SavedCams out;
  if (l.arrays()) {
    out.keys_file = l.keys.string();
    out.refined_file = l.refined.string();
    out.keys = read_npy(out.keys_file);
    out.refined = read_npy(out.refined_file);
    if (is_file(l.cam)) {
      out.cam_file = l.cam.string();
      out.cams = read_npy(out.cam_file);
    }
    if (out.keys.dim() != 1) throw file_error(out.keys_file, "expected a one-dimensional array of class indices");
    out.keys = out.keys.to(torch::kLong);
  } else if (is_file(l.clip_es)) {
    out.keys_file = out.refined_file = l.clip_es.string();
    ClipEsCams dict = read_clip_es_cams(out.keys_file);  // checks its own shapes
    out.keys = dict.keys;
    out.refined = dict.attn_highres;
    if (dict.highres.defined()) {
      out.cam_file = out.keys_file;
      out.cams = dict.highres;
    }
    return out;
  } else {
    throw file_error((fs::path(cams_dir) / stem).string(),
                     "no saved CAMs (neither <stem>_refined.npy + <stem>_keys.npy nor a CLIP-ES <stem>.npy)");
  }
  const int64_t k = out.keys.size(0);
  if (out.refined.dim() != 3 || out.refined.size(0) != k)
    throw file_error(out.refined_file, "expected " + std::to_string(k) + " CAMs [K, H, W], one per entry of " +
                                           l.keys.filename().string());
  if (out.cams.defined() && out.cams.sizes() != out.refined.sizes())
    throw file_error(out.cam_file, "shape differs from " + l.refined.filename().string());
  return out;
}

bool saved_scores_exist(const std::string& cams_dir, const std::string& stem) {
  return is_file(fs::path(cams_dir) / (stem + "_scores.npy")) && is_file(fs::path(cams_dir) / (stem + "_keys.npy"));
}

namespace {

// The two files, read and checked: channels float32 [S, h, w], keys int64 [S].
void read_score_files(SavedScores& out, const std::string& cams_dir, const std::string& stem, at::Tensor& channels,
                      at::Tensor& keys) {
  out.scores_file = (fs::path(cams_dir) / (stem + "_scores.npy")).string();
  out.keys_file = (fs::path(cams_dir) / (stem + "_keys.npy")).string();
  channels = read_npy(out.scores_file).to(torch::kFloat32);
  keys = read_npy(out.keys_file).to(torch::kLong).contiguous();
  if (keys.dim() != 1) throw file_error(out.keys_file, "expected a one-dimensional array of class indices");
  if (channels.dim() != 3 || channels.size(0) != keys.size(0))
    throw file_error(out.scores_file, "expected " + std::to_string(keys.size(0)) + " score maps [S, h, w], one per "
                                      "entry of " + fs::path(out.keys_file).filename().string());
  if (keys.size(0) == 0) throw file_error(out.keys_file, "holds no channels");
  const int64_t* key = keys.data_ptr<int64_t>();
  out.classes.assign(key, key + keys.size(0));
  std::sort(out.classes.begin(), out.classes.end());
  out.classes.erase(std::unique(out.classes.begin(), out.classes.end()), out.classes.end());
  if (out.classes.front() < 0)
    throw file_error(out.keys_file, "class index " + std::to_string(out.classes.front()) + " is negative");
}

// [S, ...] → [classes, ...]: the max over each class's channels.
at::Tensor per_class_max(const at::Tensor& channels, const at::Tensor& keys, const std::vector<int64_t>& classes) {
  std::vector<at::Tensor> per_class;
  for (const int64_t c : classes) per_class.push_back(channels.index({keys.eq(c)}).amax(0));
  return torch::stack(per_class);
}

}  // namespace

SavedScores read_saved_scores(const std::string& cams_dir, const std::string& stem) {
  SavedScores out;
  at::Tensor channels, keys;
  read_score_files(out, cams_dir, stem, channels, keys);
  out.scores = per_class_max(channels, keys, out.classes);
  return out;
}

at::Tensor saved_score_probabilities(const std::string& cams_dir, const std::string& stem, const SavedScoreRule& rule,
                                     int64_t height, int64_t width, std::vector<int64_t>& classes) {
  SavedScores files;
  at::Tensor channels, keys;
  read_score_files(files, cams_dir, stem, channels, keys);
  const at::Tensor up =
      at::upsample_bilinear2d(channels.unsqueeze(0), {height, width}, /*align_corners=*/false).squeeze(0);
  at::Tensor probabilities = per_class_max(up, keys, files.classes);
  if (rule.query_cosines) probabilities = at::softmax(probabilities * rule.logit_scale, 0);
  classes = files.classes;
  return probabilities;
}

}  // namespace clipes

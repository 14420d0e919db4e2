#include "clipes/eval/evaluate.h"

#include <c10/util/Half.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "clipes/eval/confusion_matrix.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/io/saved_cams.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/error.h"

namespace fs = std::filesystem;

namespace clipes {

namespace {

// Runs body(index, worker) for index in [0, n) on `threads` workers; the first
// exception stops the others and is rethrown.
void parallel_for(size_t n, int threads, const std::function<void(size_t, int)>& body) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::max<size_t>(1, std::min<size_t>(threads, n)));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&](int t) {
    while (!failed) {
      const size_t i = next++;
      if (i >= n) break;
      try {
        body(i, t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

int effective_threads(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct ClassSetup {
  LabelSet labels;
  int num_classes;                          // confusion matrix size
  std::vector<std::string> names_by_value;  // for the report
};

ClassSetup class_setup(const GtSource& gt, const EvalOptions& options) {
  ClassSetup setup;
  setup.labels = options.labels.empty() ? gt.default_labels() : options.labels;
  if (setup.labels.empty()) {
    // A folder of masks with no class list: every value but 255 may be a class.
    setup.num_classes = 255;
    setup.names_by_value = {"background"};
  } else {
    setup.names_by_value = setup.labels.names_by_value();
    setup.num_classes = static_cast<int>(setup.names_by_value.size());
  }
  return setup;
}

void check_same_size(const cv::Mat& prediction, const cv::Mat& truth, const std::string& pred_file,
                     const GtSource& gt, const std::string& id) {
  if (prediction.size() == truth.size()) return;
  throw file_error(pred_file, "prediction is " + std::to_string(prediction.cols) + "x" +
                                  std::to_string(prediction.rows) + " but the ground truth " + gt.describe(id) +
                                  " is " + std::to_string(truth.cols) + "x" + std::to_string(truth.rows));
}

// The header fields every report shares.
EvalReport new_report(const std::string& mode, const std::string& pred_dir, const GtSource& gt,
                      const std::vector<std::string>& ids) {
  EvalReport report;
  report.mode = mode;
  report.pred_dir = pred_dir;
  report.gt_path = gt.path();
  report.gt_kind = gt.kind_name();
  report.num_images = ids.size();
  return report;
}

}  // namespace

EvalReport evaluate_masks(const std::string& pred_dir, const GtSource& gt, const std::vector<std::string>& ids,
                          const EvalOptions& options) {
  const ClassSetup setup = class_setup(gt, options);
  const fs::path masks = is_dir(fs::path(pred_dir) / "masks") ? fs::path(pred_dir) / "masks" : fs::path(pred_dir);
  if (!is_dir(masks)) throw file_error(pred_dir, "prediction folder does not exist");

  EvalReport report = new_report("masks", pred_dir, gt, ids);
  std::vector<std::string> present;
  for (const auto& id : ids) {
    gt.require(id);  // an id without ground truth is a list/GT problem, not a missing prediction
    if (is_file(masks / (id + ".png"))) present.push_back(id);
    else report.missing.push_back(id);
  }
  report.num_evaluated = present.size();

  const int threads = effective_threads(options.threads);
  std::vector<ConfusionMatrix> matrices(threads, ConfusionMatrix(setup.num_classes));
  report.per_image.resize(present.size());
  parallel_for(present.size(), threads, [&](size_t i, int worker) {
    const std::string& id = present[i];
    const std::string pred_file = (masks / (id + ".png")).string();
    const cv::Mat truth = gt.mask(id);
    const cv::Mat prediction = read_label_png(pred_file);
    check_same_size(prediction, truth, pred_file, gt, id);
    ConfusionMatrix image(setup.num_classes);
    image.add(prediction, truth);
    report.per_image[i] = score_image(id, image);
    matrices[worker].merge(image);
  });
  for (int t = 1; t < threads; ++t) matrices[0].merge(matrices[t]);
  fill_scores(report, matrices[0], setup.names_by_value);
  return report;
}

namespace {

// One image's maps for the CAM sweep.
struct SweepPlanes {
  at::Tensor foreground;    // float32 [K, H, W], contiguous
  std::vector<int> values;  // mask value of each row
  at::Tensor background;    // float32 [H, W] (a segment run's background class), or undefined
  bool half = false;        // the maps were float16: reproduce numpy's float16 arithmetic
};

// generate's CAMs (either layout), or a segment run's CLIP-ES dicts.
SweepPlanes saved_cam_planes(const std::string& cams, const std::string& id, const cv::Mat& truth, const GtSource& gt,
                             const ClassSetup& setup, const EvalOptions& options) {
  SavedCams saved = read_saved_cams(cams, id);  // either layout, shapes checked
  const bool unrefined = options.cam_suffix == "cam";
  if (unrefined && !saved.cams.defined())
    throw file_error(saved.refined_file, "holds no unrefined CAMs ('highres'; the official code saves only "
                                         "'attn_highres'): evaluate the refined ones");
  const std::string cam_file = unrefined ? saved.cam_file : saved.refined_file;
  const at::Tensor cam = unrefined ? saved.cams : saved.refined;
  const int64_t K = cam.size(0), H = cam.size(1), W = cam.size(2);
  if (H != truth.rows || W != truth.cols)
    throw file_error(cam_file, "CAMs are " + std::to_string(W) + "x" + std::to_string(H) + " but the ground truth " +
                                   gt.describe(id) + " is " + std::to_string(truth.cols) + "x" +
                                   std::to_string(truth.rows));
  const at::Tensor keys = saved.keys.to(torch::kInt64).contiguous();
  SweepPlanes planes;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t key = keys.data_ptr<int64_t>()[k];
    const int64_t classes = setup.labels.empty() ? 254 : static_cast<int64_t>(setup.labels.values.size());
    if (key < 0 || key >= classes)
      throw file_error(saved.keys_file, "class index " + std::to_string(key) + " is out of range");
    planes.values.push_back(setup.labels.empty() ? static_cast<int>(key) + 1 : setup.labels.values[key]);
  }
  planes.half = cam.scalar_type() == torch::kHalf;
  planes.foreground = cam.to(torch::kFloat32).contiguous();
  return planes;
}

// A segment run's cams/<stem>_scores.npy as class probabilities at the ground
// truth's size, split into foreground rows and the background class.
SweepPlanes segment_score_planes(const std::string& cams, const std::string& id, const cv::Mat& truth,
                                 const SegmentScoreSource& source) {
  std::vector<int64_t> classes;
  const at::Tensor probabilities =
      saved_score_probabilities(cams, id, source.rule, truth.rows, truth.cols, classes);
  SweepPlanes planes;
  std::vector<int64_t> rows;
  for (size_t r = 0; r < classes.size(); ++r) {
    const int64_t c = classes[r];
    if (c >= static_cast<int64_t>(source.mask_values.size()))
      throw file_error((std::filesystem::path(cams) / (id + "_keys.npy")).string(),
                       "class index " + std::to_string(c) + " is out of range: the run's class set has " +
                           std::to_string(source.mask_values.size()) + " classes");
    if (c == source.background) {
      planes.background = probabilities[static_cast<int64_t>(r)].contiguous();
    } else {
      rows.push_back(static_cast<int64_t>(r));
      planes.values.push_back(source.mask_values[static_cast<size_t>(c)]);
    }
  }
  planes.foreground = probabilities.index_select(0, torch::tensor(rows, torch::kLong)).contiguous();
  return planes;
}

}  // namespace

EvalReport evaluate_cams(const std::string& pred_dir, const GtSource& gt, const std::vector<std::string>& ids,
                         const EvalOptions& options) {
  const ClassSetup setup = class_setup(gt, options);
  const fs::path cams = is_dir(fs::path(pred_dir) / "cams") ? fs::path(pred_dir) / "cams" : fs::path(pred_dir);
  if (!is_dir(cams)) throw file_error(pred_dir, "CAM folder does not exist");
  if (options.cam_suffix != "refined" && options.cam_suffix != "cam")
    throw Error("CAM kind must be refined or cam, not '" + options.cam_suffix + "'");
  const bool segment = options.segment.has_value();
  if (segment && options.cam_suffix == "cam")
    throw Error(pred_dir + " is a segment run: its saved scores have no unrefined kind (evaluate them as refined)");

  EvalReport report = new_report("cams", pred_dir, gt, ids);
  report.cam_kind = segment ? "probabilities" : options.cam_suffix;
  std::vector<std::string> present;
  bool any_background_plane = false;
  for (const auto& id : ids) {
    gt.require(id);
    const bool scores = segment && saved_scores_exist(cams.string(), id);
    any_background_plane |= scores && options.segment->background >= 0;
    if (scores || saved_cams_exist(cams.string(), id)) present.push_back(id);
    else report.missing.push_back(id);
  }
  report.num_evaluated = present.size();

  // The sweep: α ∈ {1, 2} for refined CAMs, α ∈ 1..10 for unrefined ones
  // (eval_cam.py's lists for 'attn_highres' and 'highres'), then constant
  // backgrounds 0.05 … 0.95. A segment run's probabilities: its own
  // background class first (when saved), then the constants; (1 − max)^α is
  // a CAM rule that no segment option applies.
  std::vector<SweepResult> settings;
  if (segment) {
    if (any_background_plane) settings.push_back({"method", 0, 0, false});
  } else {
    const int max_alpha = options.cam_suffix == "cam" ? 10 : 2;
    for (int alpha = 1; alpha <= max_alpha; ++alpha)
      settings.push_back({"alpha", static_cast<double>(alpha), 0, false});
  }
  for (int i = 1; i <= 19; ++i) settings.push_back({"threshold", i / 20.0, 0, false});
  const size_t num_settings = settings.size();

  const int threads = effective_threads(options.threads);
  std::vector<std::vector<double>> image_miou(present.size());  // [image][setting]
  std::vector<std::vector<ConfusionMatrix>> matrices(
      threads, std::vector<ConfusionMatrix>(num_settings, ConfusionMatrix(setup.num_classes)));
  parallel_for(present.size(), threads, [&](size_t i, int worker) {
    const std::string& id = present[i];
    const cv::Mat truth = gt.mask(id);
    const SweepPlanes planes = segment && saved_scores_exist(cams.string(), id)
                                   ? segment_score_planes(cams.string(), id, truth, *options.segment)
                                   : saved_cam_planes(cams.string(), id, truth, gt, setup, options);
    // The reference evaluates the float16 arrays it saved with numpy float16
    // arithmetic: 1 − max, the power and the padded constant are all rounded
    // to float16. Reproduce that rounding when the CAMs are float16.
    const bool half = planes.half;
    auto round = [half](float x) { return half ? static_cast<float>(c10::Half(x)) : x; };
    const int64_t K = planes.foreground.size(0), H = truth.rows, W = truth.cols;
    const float* data = planes.foreground.data_ptr<float>();
    const float* background = planes.background.defined() ? planes.background.data_ptr<float>() : nullptr;
    const int64_t plane = H * W;

    enum Kind { Threshold, Alpha, Method };
    std::vector<float> parameter(num_settings);
    std::vector<Kind> kind(num_settings, Threshold);
    for (size_t s = 0; s < num_settings; ++s) {
      parameter[s] = round(static_cast<float>(settings[s].parameter));
      if (settings[s].background == "alpha") kind[s] = Alpha;
      if (settings[s].background == "method") kind[s] = Method;
    }
    std::vector<cv::Mat> predictions(num_settings);
    for (auto& p : predictions) p.create(static_cast<int>(H), static_cast<int>(W), CV_8UC1);
    for (int64_t y = 0; y < H; ++y) {
      for (int64_t x = 0; x < W; ++x) {
        const int64_t offset = y * W + x;
        float best = 0;
        int best_k = -1;
        for (int64_t k = 0; k < K; ++k) {
          const float v = data[k * plane + offset];
          if (best_k < 0 || v > best) {
            best = v;
            best_k = static_cast<int>(k);
          }
        }
        const int fg = best_k < 0 ? 0 : planes.values[static_cast<size_t>(best_k)];
        // Background wins ties (it is index 0 of the argmax); no labels → background.
        // numpy's float16 power is the float32 one rounded (α = 2: x·x rounded).
        const float bg1 = round(1.0f - best);
        for (size_t s = 0; s < num_settings; ++s) {
          float bg = parameter[s];  // Threshold
          if (kind[s] == Alpha) bg = parameter[s] == 1 ? bg1 : round(std::pow(bg1, parameter[s]));
          // Method on an image saved without a background class: never background.
          else if (kind[s] == Method) bg = background ? background[offset] : -INFINITY;
          predictions[s].at<uint8_t>(static_cast<int>(y), static_cast<int>(x)) =
              static_cast<uint8_t>(best_k < 0 || bg >= best ? 0 : fg);
        }
      }
    }
    image_miou[i].resize(num_settings);
    for (size_t s = 0; s < num_settings; ++s) {
      ConfusionMatrix image(setup.num_classes);
      image.add(predictions[s], truth);
      image_miou[i][s] = score_image(id, image).mean_iou;
      matrices[worker][s].merge(image);
    }
  });

  for (int t = 1; t < threads; ++t)
    for (size_t s = 0; s < num_settings; ++s) matrices[0][s].merge(matrices[t][s]);
  size_t best = 0;
  for (size_t s = 0; s < num_settings; ++s) {
    settings[s].mean_iou = matrices[0][s].mean_iou();
    if (!std::isnan(settings[s].mean_iou) &&
        (std::isnan(settings[best].mean_iou) || settings[s].mean_iou > settings[best].mean_iou))
      best = s;
  }
  settings[best].best = true;
  for (size_t i = 0; i < present.size(); ++i) report.per_image.push_back({present[i], image_miou[i][best], {}});
  fill_scores(report, matrices[0][best], setup.names_by_value);
  report.best_setting = sweep_setting_name(settings[best]);
  report.sweep = std::move(settings);
  return report;
}

}  // namespace clipes

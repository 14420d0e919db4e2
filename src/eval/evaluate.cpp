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

EvalReport evaluate_cams(const std::string& pred_dir, const GtSource& gt, const std::vector<std::string>& ids,
                         const EvalOptions& options) {
  const ClassSetup setup = class_setup(gt, options);
  const fs::path cams = is_dir(fs::path(pred_dir) / "cams") ? fs::path(pred_dir) / "cams" : fs::path(pred_dir);
  if (!is_dir(cams)) throw file_error(pred_dir, "CAM folder does not exist");
  if (options.cam_suffix != "refined" && options.cam_suffix != "cam")
    throw Error("CAM kind must be refined or cam, not '" + options.cam_suffix + "'");

  // The sweep: α ∈ {1, 2} for refined CAMs, α ∈ 1..10 for unrefined ones
  // (eval_cam.py's lists for 'attn_highres' and 'highres'), then constant
  // backgrounds 0.05 … 0.95.
  std::vector<SweepResult> settings;
  const int max_alpha = options.cam_suffix == "cam" ? 10 : 2;
  for (int alpha = 1; alpha <= max_alpha; ++alpha) settings.push_back({"alpha", static_cast<double>(alpha), 0, false});
  for (int i = 1; i <= 19; ++i) settings.push_back({"threshold", i / 20.0, 0, false});
  const size_t num_settings = settings.size();

  EvalReport report = new_report("cams", pred_dir, gt, ids);
  report.cam_kind = options.cam_suffix;
  std::vector<std::string> present;
  for (const auto& id : ids) {
    gt.require(id);
    if (saved_cams_exist(cams.string(), id)) present.push_back(id);
    else report.missing.push_back(id);
  }
  report.num_evaluated = present.size();

  const int threads = effective_threads(options.threads);
  std::vector<std::vector<double>> image_miou(present.size());  // [image][setting]
  std::vector<std::vector<ConfusionMatrix>> matrices(
      threads, std::vector<ConfusionMatrix>(num_settings, ConfusionMatrix(setup.num_classes)));
  parallel_for(present.size(), threads, [&](size_t i, int worker) {
    const std::string& id = present[i];
    const cv::Mat truth = gt.mask(id);
    SavedCams saved = read_saved_cams(cams.string(), id);  // either layout, shapes checked
    const bool unrefined = options.cam_suffix == "cam";
    if (unrefined && !saved.cams.defined())
      throw file_error(saved.refined_file, "holds no unrefined CAMs ('highres'; the official code saves only "
                                           "'attn_highres'): evaluate the refined ones");
    const std::string cam_file = unrefined ? saved.cam_file : saved.refined_file;
    const std::string& keys_file = saved.keys_file;
    const at::Tensor cam = unrefined ? saved.cams : saved.refined;
    at::Tensor keys = saved.keys;
    const int64_t K = cam.size(0), H = cam.size(1), W = cam.size(2);
    if (H != truth.rows || W != truth.cols)
      throw file_error(cam_file, "CAMs are " + std::to_string(W) + "x" + std::to_string(H) + " but the ground truth " +
                                     gt.describe(id) + " is " + std::to_string(truth.cols) + "x" +
                                     std::to_string(truth.rows));
    keys = keys.to(torch::kInt64).contiguous();
    std::vector<int> values(K);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t key = keys.data_ptr<int64_t>()[k];
      const int64_t classes = setup.labels.empty() ? 254 : static_cast<int64_t>(setup.labels.values.size());
      if (key < 0 || key >= classes) throw file_error(keys_file, "class index " + std::to_string(key) + " is out of range");
      values[k] = setup.labels.empty() ? static_cast<int>(key) + 1 : setup.labels.values[key];
    }
    // The reference evaluates the float16 arrays it saved with numpy float16
    // arithmetic: 1 − max, the power and the padded constant are all rounded
    // to float16. Reproduce that rounding when the CAMs are float16.
    const bool half = cam.scalar_type() == torch::kHalf;
    auto round = [half](float x) { return half ? static_cast<float>(c10::Half(x)) : x; };
    const at::Tensor cam32 = cam.to(torch::kFloat32).contiguous();
    const float* data = cam32.data_ptr<float>();
    const int64_t plane = H * W;

    std::vector<float> thresholds;
    for (const auto& s : settings)
      if (s.background == "threshold") thresholds.push_back(round(static_cast<float>(s.parameter)));
    const size_t alphas = num_settings - thresholds.size();
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
        const int fg = best_k < 0 ? 0 : values[best_k];
        // Background wins ties (it is index 0 of the argmax); no labels → background.
        // numpy's float16 power is the float32 one rounded (α = 2: x·x rounded).
        const float bg1 = round(1.0f - best);
        for (size_t a = 0; a < alphas; ++a) {
          const float bg = a == 0 ? bg1 : round(std::pow(bg1, static_cast<float>(a + 1)));
          predictions[a].at<uint8_t>(static_cast<int>(y), static_cast<int>(x)) =
              static_cast<uint8_t>(best_k < 0 || bg >= best ? 0 : fg);
        }
        for (size_t t = 0; t < thresholds.size(); ++t)
          predictions[alphas + t].at<uint8_t>(static_cast<int>(y), static_cast<int>(x)) =
              static_cast<uint8_t>(best_k < 0 || thresholds[t] >= best ? 0 : fg);
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
  char label[64];
  std::snprintf(label, sizeof label, settings[best].background == "alpha" ? "alpha=%g" : "threshold=%.2f",
                settings[best].parameter);
  report.best_setting = label;
  report.sweep = std::move(settings);
  return report;
}

}  // namespace clipes

#include "clipes/pipeline/generate.h"

#include <torch/torch.h>

#include <filesystem>
#include <mutex>

#include "clipes/io/contact_sheet.h"
#include "clipes/io/indexed_png.h"
#include "clipes/pipeline/image_batch.h"
#include "clipes/util/error.h"

namespace clipes {

ClipEsConfig clip_es_config_for(const ClassConfig& classes) {
  ClipEsConfig config;
  for (const auto& c : classes.classes) config.class_prompts.push_back(c.prompt);
  config.background_words = classes.background;
  config.templates = {classes.default_template};
  config.box_threshold = classes.box_threshold;
  return config;
}

GenerateStats generate_masks(const ClipEs& clip_es, const ClassConfig& classes,
                             const std::vector<ImageRecord>& records, const GenerateOptions& options,
                             const std::function<void(const BatchProgress&)>& progress) {
  GenerateStats stats;
  std::mutex stats_mutex;
  ImageBatchSpec spec;
  const std::filesystem::path vis_dir = std::filesystem::path(options.batch.out_dir) / "vis";
  const std::vector<std::string> names_by_id = classes.names_by_mask_value(options.label_ids);
  spec.output_files = [&](const std::string& id) {
    const MaskOutputPaths p = MaskOutputPaths::for_stem(options.batch.out_dir, id);
    return std::vector<std::string>{p.mask, p.confidence, p.cam, p.refined, p.keys, p.clip_es,
                                    (vis_dir / (id + ".jpg")).string()};  // `generate --vis` sheets
  };
  spec.is_complete = [&](const std::string& id) {
    return mask_outputs_complete(MaskOutputPaths::for_stem(options.batch.out_dir, id), options.write);
  };
  spec.compute = [&](const ImageRecord& record, const cv::Mat& rgb) -> std::function<void()> {
    if (!record.label_error.empty()) throw Error(record.label_error);
    if (record.labels.empty())
      throw Error(record.image_path + ": no image-level labels, skipped (CLIP-ES needs at least one)");
    const std::vector<int> class_indices = classes.resolve_labels(record.labels);
    auto result = std::make_shared<ClipEsResult>(clip_es.run(rgb, class_indices));
    // A model that yields non-finite features (e.g. a zero projection) makes
    // NaN CAMs, which would become an all-background mask: a failure instead.
    if (!at::isfinite(result->refined).all().item<bool>())
      throw Error(record.image_path + ": the CAMs hold NaN or infinite values (the model's features are not finite "
                                      "for this image)");
    std::vector<int> mask_values;
    std::vector<int64_t> keys;
    for (int c : result->class_indices) {
      mask_values.push_back(classes.label_id(c, options.label_ids));
      keys.push_back(c);
    }
    auto mask = std::make_shared<PseudoMask>(make_pseudo_mask(result->refined, mask_values, options.mask));
    {
      std::lock_guard<std::mutex> lock(stats_mutex);
      const ClipEsTimings& t = result->timings;
      stats.stage_ms_sum.preprocess_ms += t.preprocess_ms;
      stats.stage_ms_sum.trunk_ms += t.trunk_ms;
      stats.stage_ms_sum.last_block_ms += t.last_block_ms;
      stats.stage_ms_sum.affinity_ms += t.affinity_ms;
      stats.stage_ms_sum.resize_ms += t.resize_ms;
      ++stats.images_computed;
      stats.labels_computed += static_cast<int64_t>(keys.size());
    }
    const MaskOutputPaths paths = MaskOutputPaths::for_stem(options.batch.out_dir, record.id);
    // The write runs while the next image computes: hand it only what it
    // writes. Without --save-cams and --vis that is the mask (5 bytes a
    // pixel), not the K full-size CAMs (4·K or 8·K bytes a pixel).
    const bool needs_cams = options.write.save_cams || options.vis;
    if (!needs_cams) result.reset();
    return [&, paths, result, mask, keys, rgb = options.vis ? rgb : cv::Mat()]() {
      write_mask_outputs(paths, *mask, result ? &result->cams : nullptr, result ? &result->refined : nullptr, keys,
                         options.write);
      if (!options.vis) return;
      ContactSheetInput sheet;
      sheet.rgb = rgb;
      sheet.mask_ids = mask->labels;
      for (int c : result->class_indices) sheet.label_names.push_back(classes.classes[static_cast<size_t>(c)].name);
      sheet.cams = result->cams;
      sheet.refined = result->refined;
      sheet.class_name_by_id = names_by_id;
      sheet.palette = voc_palette();
      write_contact_sheet((vis_dir / (record.id + ".jpg")).string(), sheet);
    };
  };
  stats.batch = run_image_batch(records, options.batch, options.decode, spec, progress);
  return stats;
}

}  // namespace clipes

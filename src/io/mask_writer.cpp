#include "clipes/io/mask_writer.h"

#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>

#include "clipes/io/clip_es_cams.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/strings.h"
#include "clipes/util/option_error.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

void write_cams_npy(const std::string& path, const at::Tensor* cams, const char* what) {
  if (!cams || !cams->defined()) throw option_error(printable(path) + ": " + option_key("save_cams") + " needs the " + what + " CAMs");
  if (cams->dim() != 3) throw file_error(path, std::string(what) + " CAMs must be [K, H, W]");
  // float16 as the reference saves them (fixtures/parity/coco6/expected).
  write_npy(path, cams->detach().to(torch::kCPU, torch::kHalf).contiguous());
}

}  // namespace

CamFormat parse_cam_format(const std::string& text) {
  if (text == "npy") return CamFormat::Npy;
  if (text == "clip-es") return CamFormat::ClipEs;
  throw option_error(option_key("cam_format") + " must be npy or clip-es, not '" + printable(text) + "'");
}

const char* to_string(CamFormat format) { return format == CamFormat::ClipEs ? "clip-es" : "npy"; }

MaskOutputPaths MaskOutputPaths::for_stem(const std::string& out_dir, const std::string& stem) {
  const fs::path out(out_dir);
  const fs::path cams = out / "cams";
  return {(out / "masks" / (stem + ".png")).string(), (out / "confidence" / (stem + ".png")).string(),
          (cams / (stem + "_cam.npy")).string(), (cams / (stem + "_refined.npy")).string(),
          (cams / (stem + "_keys.npy")).string(), (cams / (stem + ".npy")).string()};
}

void write_mask_outputs(const MaskOutputPaths& paths, const PseudoMask& mask, const at::Tensor* cams,
                        const at::Tensor* refined, const std::vector<int64_t>& class_indices,
                        const MaskWriteOptions& options) {
  if (mask.labels.type() != CV_8UC1) throw file_error(paths.mask, "labels must be CV_8UC1");
  if (mask.confidence.type() != CV_32FC1) throw file_error(paths.confidence, "confidence must be CV_32FC1");
  // Files of this image written so far; removed again if a later one fails
  // (disk full), so that no cams or confidence map is left without its mask.
  std::vector<std::string> written;
  try {
    if (options.save_cams && options.cam_format == CamFormat::ClipEs) {
      for (const at::Tensor* t : {cams, refined})
        if (!t || !t->defined() || t->dim() != 3)
          throw option_error(printable(paths.clip_es) + ": " + option_key("save_cams") +
                             " needs the unrefined and refined CAMs as [K, H, W]");
      write_clip_es_cams(paths.clip_es, torch::tensor(class_indices, torch::kLong), *refined, *cams);
      written.push_back(paths.clip_es);
    } else if (options.save_cams) {
      write_cams_npy(paths.cam, cams, "unrefined");
      written.push_back(paths.cam);
      write_cams_npy(paths.refined, refined, "refined");
      written.push_back(paths.refined);
      write_npy(paths.keys, torch::tensor(class_indices, torch::kLong));
      written.push_back(paths.keys);
    }
    std::vector<uchar> png;
    if (!cv::imencode(".png", confidence_to_u8(mask.confidence), png))
      throw file_error(paths.confidence, "PNG encoding failed");
    write_file_atomic(paths.confidence, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
    written.push_back(paths.confidence);
    // Last: an existing mask means every other output of this image is there.
    if (options.palette) {
      write_indexed_png(paths.mask, mask.labels, voc_palette());
    } else {
      std::vector<uchar> grey;
      if (!cv::imencode(".png", mask.labels, grey)) throw file_error(paths.mask, "PNG encoding failed");
      write_file_atomic(paths.mask, std::string_view(reinterpret_cast<const char*>(grey.data()), grey.size()));
    }
  } catch (...) {
    std::error_code ignored;
    for (const auto& p : written) fs::remove(p, ignored);
    throw;
  }
}

bool mask_outputs_complete(const MaskOutputPaths& paths, const MaskWriteOptions& options) {
  if (!is_file(paths.mask) || !is_file(paths.confidence)) return false;
  if (options.save_cams && options.cam_format == CamFormat::ClipEs) return is_file(paths.clip_es);
  return !options.save_cams || (is_file(paths.cam) && is_file(paths.refined) && is_file(paths.keys));
}

}  // namespace clipes

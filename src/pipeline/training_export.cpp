#include "clipes/pipeline/training_export.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "clipes/data/dataset.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/option_error.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

std::string python_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

TrainingFramework parse_training_framework(const std::string& text) {
  if (text == "mmseg" || text == "mmsegmentation") return TrainingFramework::Mmseg;
  if (text == "deeplab" || text == "deeplab-pytorch") return TrainingFramework::Deeplab;
  throw Error("export " + text + ": expected mmseg or deeplab");
}

TrainingExport export_for_training(TrainingFramework framework, const TrainingExportInputs& in) {
  const fs::path masks = fs::path(in.run_dir) / "masks";
  std::error_code ec;
  if (!fs::is_directory(masks, ec)) throw file_error(in.run_dir, "no masks/ folder here (not a generate or segment output)");
  if (!fs::is_directory(in.images_dir, ec)) throw option_error(printable(in.images_dir) + ": image folder does not exist (" + option_key("images") + ")");
  std::vector<std::string> stems;
  for (const auto& e : fs::directory_iterator(masks, ec))
    if (e.path().extension() == ".png" && e.is_regular_file()) stems.push_back(e.path().stem().string());
  std::sort(stems.begin(), stems.end());
  if (stems.empty()) throw file_error(masks.string(), "no masks to export");

  TrainingExport out;
  // Each mask's image: the same stem with the first extension that exists.
  std::vector<std::pair<std::string, fs::path>> pairs;
  std::string suffix;  // mmseg needs one image suffix for the whole folder
  bool one_suffix = true;
  for (const auto& stem : stems) {
    const fs::path image = find_image_file(in.images_dir, stem);
    if (image.empty()) {
      ++out.masks_without_image;
      continue;
    }
    if (suffix.empty()) suffix = image.extension().string();
    one_suffix = one_suffix && image.extension().string() == suffix;
    pairs.emplace_back(stem, image);
  }
  if (pairs.empty()) throw file_error(in.images_dir, "none of the masks' images is in this folder");
  out.images = pairs.size();

  // Absolute, like every path written below: mmengine joins data_root '/'
  // with ann_file, so a relative OUT gave '/out/...' (issue 27 item 3).
  const fs::path dir = fs::absolute(in.run_dir).lexically_normal() / "export" /
                       (framework == TrainingFramework::Mmseg ? "mmseg" : "deeplab");
  fs::create_directories(dir, ec);
  if (ec) throw file_error(dir.string(), "cannot create folder: " + ec.message());
  const std::string images_abs = fs::absolute(in.images_dir).lexically_normal().string();
  const std::string masks_abs = fs::absolute(masks).lexically_normal().string();
  std::ostringstream list, config;
  if (framework == TrainingFramework::Mmseg) {
    if (!one_suffix) throw file_error(in.images_dir, "images with different extensions; mmseg takes one img_suffix");
    for (const auto& [stem, _] : pairs) list << stem << "\n";
    out.list_file = (dir / "train.txt").string();
    out.config_file = (dir / "clipes_pseudo_masks.py").string();
    // mmseg 1.x dataset config; BaseSegDataset reads img_path/seg_map_path
    // with one suffix each and the split file of stems.
    config << "# Written by clipes export mmseg: train a segmentation network on the pseudo masks.\n"
           << "# Paste into your config (mmsegmentation 1.x) or _base_ it.\n"
           << "train_dataloader = dict(\n"
           << "    dataset=dict(\n"
           << "        type='BaseSegDataset',\n"
           << "        data_root='/',\n"
           << "        data_prefix=dict(img_path=" << python_string(images_abs) << ", seg_map_path="
           << python_string(masks_abs) << "),\n"
           << "        img_suffix=" << python_string(suffix) << ",\n"
           << "        seg_map_suffix='.png',\n"
           << "        ann_file=" << python_string((dir / "train.txt").string()) << ",\n"
           << "        # 0 is background in these masks" << (in.has_background ? "" : " -- here there is none") << "\n"
           << "        reduce_zero_label=" << (in.has_background ? "False" : "True") << ",\n"
           << "        metainfo=dict(classes=(";
    for (size_t i = in.has_background ? 0 : 1; i < in.class_names.size(); ++i)
      config << python_string(in.class_names[i]) << ", ";
    config << ")),\n"
           << "        # 255 is ignore (uncertain pixels, --ignore-below): mmseg's default ignore_index.\n"
           << "    ))\n"
           << "num_classes = " << in.num_classes << "\n";
  } else {
    // deeplab-pytorch's VOCAug reads "<image> <label>" pairs relative to ROOT,
    // split on spaces with no quoting: a path with a space (or a line end)
    // would be read as other paths, so it is refused, not written.
    for (const auto& [stem, image] : pairs) {
      const std::string image_abs = fs::absolute(image).lexically_normal().string();
      const std::string mask_abs = masks_abs + "/" + stem + ".png";
      for (const std::string& path : {image_abs, mask_abs})
        if (path.find_first_of(" \t\r\n") != std::string::npos)
          throw file_error(path, "holds a space or line end, which deeplab-pytorch's list format cannot hold "
                                 "(it splits lines on spaces); link the data under a path without spaces");
      list << image_abs << " " << mask_abs << "\n";
    }
    out.list_file = (dir / "train_aug.txt").string();
    out.config_file = (dir / "clipes_pseudo_masks.yaml").string();
    config << "# Written by clipes export deeplab: for kazuto1011/deeplab-pytorch (VOCAug layout).\n"
           << "# The list holds absolute '<image> <mask>' pairs, so ROOT is '/'; copy train_aug.txt to\n"
           << "# <ROOT>/ImageSets/SegmentationAug/ or point the loader at it.\n"
           << "DATASET:\n"
           << "  NAME: vocaug\n"
           << "  ROOT: /\n"
           << "  SPLIT:\n"
           << "    TRAIN: train_aug\n"
           << "  N_CLASSES: " << in.num_classes << "\n"
           << "  IGNORE_LABEL: 255\n";
  }
  write_file_atomic(out.list_file, list.str());
  write_file_atomic(out.config_file, config.str());
  return out;
}

}  // namespace clipes

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

// A YAML single-quoted scalar: the only escape is '' for '.
std::string yaml_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// `link` made a symbolic link to the folder `target`; a link left by an
// earlier export is replaced, anything else at `link` is refused (never
// removed: it may be the user's data).
void link_folder(const std::string& target, const fs::path& link) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(link, ec);
  if (fs::is_symlink(st)) {
    fs::remove(link, ec);
  } else if (fs::exists(st)) {
    throw file_error(link.string(), "exists and is not a link clipes made; remove it to export again");
  }
  fs::create_directory_symlink(target, link, ec);
  if (ec) throw file_error(link.string(), "cannot link to " + target + ": " + ec.message());
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
    // deeplab-pytorch's VOCAug (libs/datasets/voc.py) reads
    // ROOT/VOC2012/ImageSets/SegmentationAug/<split>.txt and joins each path,
    // first character dropped, under ROOT/VOC2012 (issue 27 item 2: absolute
    // pairs with ROOT '/' became /VOC2012/work/...). So the export is such a
    // ROOT: VOC2012/JPEGImages and VOC2012/SegmentationClassAug are links to
    // the image and mask folders, and the list names "/JPEGImages/<file>
    // /SegmentationClassAug/<stem>.png". Lines are split on spaces with no
    // quoting: a file name with a space (or a line end) is refused.
    const fs::path voc = dir / "VOC2012";
    const fs::path lists = voc / "ImageSets" / "SegmentationAug";
    fs::create_directories(lists, ec);
    if (ec) throw file_error(lists.string(), "cannot create folder: " + ec.message());
    link_folder(images_abs, voc / "JPEGImages");
    link_folder(masks_abs, voc / "SegmentationClassAug");
    for (const auto& [stem, image] : pairs) {
      const std::string image_name = image.filename().string();
      for (const std::string& name : {image_name, stem + ".png"})
        if (name.find_first_of(" \t\r\n") != std::string::npos)
          throw file_error((fs::path(in.images_dir) / name).string(),
                           "holds a space or line end, which deeplab-pytorch's list format cannot hold "
                           "(it splits lines on spaces); rename it or leave it out");
      list << "/JPEGImages/" << image_name << " /SegmentationClassAug/" << stem << ".png\n";
    }
    out.list_file = (lists / "train_aug.txt").string();
    out.config_file = (dir / "clipes_pseudo_masks.yaml").string();
    // A class set without background writes 1..N and never 0: the network
    // still needs N+1 outputs for the values to be valid targets (output 0
    // is simply never a target).
    const int n_classes = in.has_background ? in.num_classes : in.num_classes + 1;
    std::ostringstream labels;
    for (size_t i = 0; i < in.class_names.size(); ++i)
      labels << i << " " << (i == 0 && !in.has_background ? std::string("unused") : in.class_names[i]) << "\n";
    write_file_atomic((dir / "labels.txt").string(), labels.str());
    config << "# Written by clipes export deeplab: for kazuto1011/deeplab-pytorch (VOCAug layout).\n"
           << "# ROOT is this folder: VOC2012/ImageSets/SegmentationAug/train_aug.txt lists the pairs,\n"
           << "# VOC2012/JPEGImages and VOC2012/SegmentationClassAug link to the images and the masks.\n"
           << "# Merge this DATASET block into configs/voc12.yaml (keep its VAL split pointing at real GT).\n"
           << "DATASET:\n"
           << "  NAME: vocaug\n"
           << "  ROOT: " << yaml_string(dir.string()) << "\n"
           << "  LABELS: " << yaml_string((dir / "labels.txt").string()) << "\n"
           << "  SPLIT:\n"
           << "    TRAIN: train_aug\n"
           << "  N_CLASSES: " << n_classes
           << (in.has_background ? "" : "  # masks hold 1..N (no background class); 0 is never a target") << "\n"
           << "  IGNORE_LABEL: 255\n";
  }
  write_file_atomic(out.list_file, list.str());
  write_file_atomic(out.config_file, config.str());
  return out;
}

}  // namespace clipes

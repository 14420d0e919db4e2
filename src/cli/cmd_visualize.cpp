// clipes visualize — contact sheets of what `generate` wrote (issue #4): for
// each image, the original, every label's CAM before and after refinement, and
// the final mask with a legend, as OUT/vis/<stem>.jpg.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "clipes/io/contact_sheet.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/text/class_config.h"
#include "clipes/data/safe_path.h"
#include "clipes/pipeline/run_settings.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"
#include "command.h"

namespace clipes::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string out, images, classes, label_ids, ids;  // empty: from the run's run.json
  int limit = 0;
  int64_t max_pixels = kDefaultMaxPixels;
};

std::vector<std::string> split_ids(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string id;
  while (std::getline(in, id, ','))
    if (!id.empty()) out.push_back(id);
  return out;
}

std::string find_image(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"}) {
    const fs::path p = fs::path(dir) / (stem + ext);
    if (fs::is_regular_file(p)) return p.string();
  }
  throw file_error((fs::path(dir) / stem).string() + ".{jpg,jpeg,png}", "no such image");
}

std::string write_sheet(const Options& o, const ClassConfig& classes, const std::vector<std::string>& names_by_id,
                        const std::string& id) {
  // Every id, from --ids or from the masks folder, names files under OUT:
  // the same check as dataset ids (no "..", separators, control characters).
  const std::string stem = safe_stem(id, "--ids");
  const fs::path out(o.out);
  const std::string cams_dir = (out / "cams").string() + "/";
  const cv::Mat rgb = decode_image_rgb(find_image(o.images, stem), DecodeLimits{o.max_pixels});
  const cv::Mat mask = read_label_png((out / "masks" / (stem + ".png")).string());
  const at::Tensor cams = read_npy(cams_dir + stem + "_cam.npy");
  const at::Tensor refined = read_npy(cams_dir + stem + "_refined.npy");
  const std::string keys_path = cams_dir + stem + "_keys.npy";
  const at::Tensor keys = read_npy(keys_path).to(at::kLong).reshape({-1});
  std::vector<std::string> labels;
  for (int64_t i = 0; i < keys.size(0); ++i) {
    const int64_t key = keys[i].item<int64_t>();
    if (key < 0 || key >= classes.num_classes())
      throw file_error(keys_path, "class index " + std::to_string(key) + " outside the " +
                                      std::to_string(classes.num_classes()) + " classes of '" + classes.name +
                                      "' (wrong --classes?)");
    labels.push_back(classes.classes[static_cast<size_t>(key)].name);
  }
  if (cams.dim() != 3 || cams.size(0) != keys.size(0))
    throw file_error(cams_dir + stem + "_cam.npy", "expected " + std::to_string(keys.size(0)) +
                                                     " CAMs [K,H,W], one per entry of " + stem + "_keys.npy");
  if (refined.sizes() != cams.sizes())
    throw file_error(cams_dir + stem + "_refined.npy", "shape differs from " + stem + "_cam.npy");
  const std::string path = (out / "vis" / (stem + ".jpg")).string();
  write_contact_sheet(path, rgb, labels, cams, refined, mask, names_by_id, voc_palette());
  return path;
}

int run_visualize(const Options& given) {
  // What generate recorded in run.json fills every option not given: the
  // class set itself (not just its name), the label ids, the image folder.
  Options o = given;
  const nlohmann::json record = read_run_record(o.out);
  const nlohmann::json config = record.is_object() ? record.value("config", nlohmann::json::object()) : nlohmann::json::object();
  if (o.label_ids.empty()) o.label_ids = config.value("label_ids", "consecutive");
  if (o.images.empty() && record.is_object() && record.contains("images_folder"))
    o.images = record["images_folder"].get<std::string>();
  if (o.images.empty()) throw Error("--images: give the folder of the input images (" + printable(o.out) + " has no run.json naming it)");
  const ClassConfig classes = !o.classes.empty()          ? ClassConfig::resolve(o.classes)
                              : config.contains("class_set") ? ClassConfig::parse(config["class_set"].dump(), o.out + "/run.json")
                                                             : ClassConfig::resolve("voc");
  // The legend must name mask values the way generate wrote them.
  const std::vector<std::string> names_by_id =
      classes.names_by_mask_value(ClassConfig::parse_label_ids(o.label_ids));

  std::vector<std::string> stems = split_ids(o.ids);
  if (stems.empty()) {
    const fs::path masks = fs::path(o.out) / "masks";
    std::error_code ec;
    if (!fs::is_directory(masks, ec)) throw file_error(masks.string(), "no such folder (run clipes generate first)");
    for (const auto& entry : fs::directory_iterator(masks))
      if (entry.path().extension() == ".png") stems.push_back(entry.path().stem().string());
    std::sort(stems.begin(), stems.end());
    if (stems.empty()) throw file_error(masks.string(), "no masks to visualise");
  }
  if (o.limit > 0 && stems.size() > static_cast<size_t>(o.limit)) stems.resize(static_cast<size_t>(o.limit));

  size_t failed = 0;
  for (const auto& stem : stems) {
    try {
      std::cout << printable(write_sheet(o, classes, names_by_id, stem)) << "\n";
    } catch (const std::exception& e) {  // one bad image does not stop the others
      spdlog::error("{}", printable(e.what()));
      ++failed;
    }
  }
  spdlog::info("{} contact sheet(s) in {}{}", stems.size() - failed, printable((fs::path(o.out) / "vis").string()),
               failed ? ", " + std::to_string(failed) + " failed" : "");
  if (failed == stems.size()) return 2;
  return failed ? 1 : 0;
}

const bool registered = register_command({
    "visualize", "contact sheets (image, CAMs, refined CAMs, mask) of a generate run", [](CLI::App& sub) {
      auto o = std::make_shared<Options>();
      sub.add_option("--out", o->out, "the folder `clipes generate` wrote (masks/, cams/)")->required();
      sub.add_option("--images", o->images, "folder with the input images (default: the one run.json names)");
      sub.add_option("--classes", o->classes, "class file generate used (default: the class set run.json records, else voc)");
      sub.add_option("--label-ids", o->label_ids, "mask values as generate wrote them: consecutive | dataset (default: run.json's)");
      sub.add_option("--ids", o->ids, "only these stems, comma-separated");
      sub.add_option("--limit", o->limit, "at most N images, N ≥ 1 (default: all)")->check(CLI::PositiveNumber);
      add_max_pixels_option(sub, o->max_pixels);
      return [o]() { return run_visualize(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

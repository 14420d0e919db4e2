// clipes visualize — contact sheets of what `generate` wrote (issue #4): for
// each image, the original, every label's CAM before and after refinement, and
// the final mask with a legend, as OUT/vis/<stem>.jpg.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "clipes/io/contact_sheet.h"
#include "clipes/io/image_decode.h"
#include "clipes/io/indexed_png.h"
#include "clipes/io/npy.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "command.h"

namespace clipes::cli {
namespace {

namespace fs = std::filesystem;

// ---- class names --------------------------------------------------------------
// Stand-in until clipes::ClassConfig (text/class_config.h) lands: reads only
// `classes[].name` / `classes[].id` from a prompts/<name>.json class file, or
// one name per line from a --names file. Replace this block with ClassConfig.
struct ClassNames {
  std::vector<std::string> by_index;  // 0-based class index (what <stem>_keys.npy holds) → name
  std::vector<std::string> by_id;     // mask value → name (0 = background)
};

std::string find_class_file(const std::string& name_or_path) {
  if (fs::is_regular_file(name_or_path)) return name_or_path;
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("CLIPES_PROMPTS_DIR")) candidates.push_back(fs::path(dir) / (name_or_path + ".json"));
  candidates.push_back(fs::path("prompts") / (name_or_path + ".json"));
  std::error_code ec;
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (!ec) {
    candidates.push_back(exe_dir / ".." / "prompts" / (name_or_path + ".json"));
    candidates.push_back(exe_dir / ".." / "share" / "clipes" / "prompts" / (name_or_path + ".json"));
  }
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) return c.string();
  throw Error("--classes " + name_or_path + ": neither a file nor a known class set (looked for prompts/" +
              name_or_path + ".json)");
}

ClassNames class_names_from_json(const std::string& path) {
  ClassNames names;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_file(path));
    const auto& classes = j.at("classes");
    for (size_t i = 0; i < classes.size(); ++i) {
      const std::string name = classes[i].at("name").get<std::string>();
      const int id = classes[i].contains("id") ? classes[i].at("id").get<int>() : static_cast<int>(i) + 1;
      if (id < 0 || id > 255) throw file_error(path, "class " + name + " has id " + std::to_string(id) + " outside 0..255");
      names.by_index.push_back(name);
      if (names.by_id.size() <= static_cast<size_t>(id)) names.by_id.resize(static_cast<size_t>(id) + 1);
      names.by_id[static_cast<size_t>(id)] = name;
    }
  } catch (const nlohmann::json::exception& e) {
    throw file_error(path, std::string("not a class file with classes[].name (") + e.what() + ")");
  }
  if (names.by_id.empty()) names.by_id.resize(1);
  names.by_id[0] = "background";
  return names;
}

// One name per line, in class-index order; mask id = index + 1.
ClassNames class_names_from_lines(const std::string& path) {
  ClassNames names;
  names.by_id.push_back("background");
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    names.by_index.push_back(line);
    names.by_id.push_back(line);
  }
  if (names.by_index.empty()) throw file_error(path, "no class names");
  return names;
}
// ---- end of the ClassConfig stand-in -------------------------------------------

struct Options {
  std::string out, images, classes, names_file, ids;
  int limit = 0;
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

std::string write_sheet(const Options& o, const ClassNames& names, const std::string& stem) {
  const fs::path out(o.out);
  const std::string cams_dir = (out / "cams").string() + "/";
  const cv::Mat rgb = decode_image_rgb(find_image(o.images, stem));
  const cv::Mat mask = read_label_png((out / "masks" / (stem + ".png")).string());
  const at::Tensor cams = read_npy(cams_dir + stem + "_cam.npy");
  const at::Tensor refined = read_npy(cams_dir + stem + "_refined.npy");
  const std::string keys_path = cams_dir + stem + "_keys.npy";
  const at::Tensor keys = read_npy(keys_path).to(at::kLong).reshape({-1});
  std::vector<std::string> labels;
  for (int64_t i = 0; i < keys.size(0); ++i) {
    const int64_t key = keys[i].item<int64_t>();
    if (key < 0) throw file_error(keys_path, "negative class index " + std::to_string(key));
    labels.push_back(static_cast<size_t>(key) < names.by_index.size() ? names.by_index[static_cast<size_t>(key)]
                                                                      : "class " + std::to_string(key));
  }
  if (cams.dim() != 3 || cams.size(0) != keys.size(0))
    throw file_error(cams_dir + stem + "_cam.npy", "expected " + std::to_string(keys.size(0)) +
                                                     " CAMs [K,H,W], one per entry of " + stem + "_keys.npy");
  if (refined.sizes() != cams.sizes())
    throw file_error(cams_dir + stem + "_refined.npy", "shape differs from " + stem + "_cam.npy");
  const cv::Mat sheet = make_contact_sheet(rgb, labels, cams, refined, mask, names.by_id, voc_palette());
  std::vector<uchar> jpeg;
  if (!cv::imencode(".jpg", sheet, jpeg, {cv::IMWRITE_JPEG_QUALITY, 90}))
    throw Error(stem + ": JPEG encoding of the contact sheet failed");
  const std::string path = (out / "vis" / (stem + ".jpg")).string();
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
  return path;
}

int run_visualize(const Options& o) {
  ClassNames names;
  if (!o.names_file.empty()) names = class_names_from_lines(o.names_file);
  else if (!o.classes.empty()) names = class_names_from_json(find_class_file(o.classes));
  else names.by_id = {"background"};

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
      std::cout << write_sheet(o, names, stem) << "\n";
    } catch (const std::exception& e) {  // one bad image does not stop the others
      spdlog::error("{}", e.what());
      ++failed;
    }
  }
  spdlog::info("{} contact sheet(s) in {}{}", stems.size() - failed, (fs::path(o.out) / "vis").string(),
               failed ? ", " + std::to_string(failed) + " failed" : "");
  if (failed == stems.size()) return 2;
  return failed ? 1 : 0;
}

const bool registered = register_command({
    "visualize", "contact sheets (image, CAMs, refined CAMs, mask) of a generate run", [](CLI::App& sub) {
      auto o = std::make_shared<Options>();
      sub.add_option("--out", o->out, "the folder `clipes generate` wrote (masks/, cams/)")->required();
      sub.add_option("--images", o->images, "folder with the input images (<stem>.jpg|jpeg|png)")->required();
      sub.add_option("--classes", o->classes, "class names: voc, coco or a prompts JSON file");
      sub.add_option("--names", o->names_file, "class names, one per line in class-index order (instead of --classes)");
      sub.add_option("--ids", o->ids, "only these stems, comma-separated");
      sub.add_option("--limit", o->limit, "at most N images (0 = all)")->capture_default_str();
      return [o]() { return run_visualize(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

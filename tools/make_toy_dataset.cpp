// make_toy_dataset — writes the offline toy world (issue #6) as a VOC tree:
//   JPEGImages/<id>.png            the RGB image (PNG: lossless, readers accept it)
//   SegmentationClass/<id>.png     indexed PNG, 0 background, class index + 1, 255 ignore band
//   Annotations/<id>.xml           VOC <object><name> entries (image labels) with boxes
//   ImageSets/Segmentation/<split>.txt, labels.json (id → class names), captions.txt (id<TAB>caption)
// Image i of the dataset is render_toy_sample(seed, i): the same arguments
// always give byte-identical files, whatever --jobs is.
//
//   make_toy_dataset --out DIR --count N --seed S --split val|train [--start I] [--jobs J]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "clipes/data/toy_world.h"
#include "clipes/io/indexed_png.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

namespace {

std::string voc_xml(const std::string& id, const clipes::ToySample& s) {
  std::string xml = "<annotation>\n  <folder>toy</folder>\n  <filename>" + id + ".png</filename>\n";
  xml += "  <size><width>" + std::to_string(s.rgb.cols) + "</width><height>" + std::to_string(s.rgb.rows) +
         "</height><depth>3</depth></size>\n  <segmented>1</segmented>\n";
  for (int cls : s.labels) {
    // Box of the visible pixels (VOC boxes are 1-based, inclusive).
    cv::Mat pixels = s.mask == cls + 1;
    const cv::Rect b = cv::boundingRect(pixels);
    xml += "  <object>\n    <name>" + clipes::toy_class_names()[cls] +
           "</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n    <difficult>0</difficult>\n";
    xml += "    <bndbox><xmin>" + std::to_string(b.x + 1) + "</xmin><ymin>" + std::to_string(b.y + 1) + "</ymin><xmax>" +
           std::to_string(b.x + b.width) + "</xmax><ymax>" + std::to_string(b.y + b.height) + "</ymax></bndbox>\n";
    xml += "  </object>\n";
  }
  return xml + "</annotation>\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Render the synthetic toy-world dataset (VOC layout)"};
  std::string out, split = "train";
  int64_t count = 0, start = 0;
  uint64_t seed = 1;
  int jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  clipes::ToyWorldOptions options;
  app.add_option("--out", out, "output folder (VOC root)")->required();
  app.add_option("--count", count, "number of images")->required()->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "dataset seed (the docs use 1 for train, 2 for val)");
  app.add_option("--split", split, "split name for ImageSets/Segmentation/<split>.txt");
  app.add_option("--start", start, "first image index (to extend a dataset)")->check(CLI::NonNegativeNumber);
  app.add_option("--jobs", jobs, "render threads")->check(CLI::PositiveNumber);
  app.add_option("--min-size", options.min_size, "smallest image side");
  app.add_option("--max-size", options.max_size, "largest image side");
  app.add_option("--ignore-band", options.ignore_band, "width of the 255 band on outlines (0: none)");
  CLI11_PARSE(app, argc, argv);

  try {
    namespace fs = std::filesystem;
    for (const char* sub : {"JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"})
      fs::create_directories(fs::path(out) / sub);
    std::vector<std::string> ids(count), captions(count);
    std::vector<std::vector<int>> labels(count);
    std::atomic<int64_t> next{0};
    std::mutex error_mutex;
    std::string first_error;
    auto worker = [&] {
      // One image per task, the index decides everything.
      for (int64_t k = next++; k < count; k = next++) {
        try {
          const int64_t index = start + k;
          char id[64];
          std::snprintf(id, sizeof id, "%s_%06lld", split.c_str(), static_cast<long long>(index));
          const clipes::ToySample s = clipes::render_toy_sample(seed, static_cast<uint64_t>(index), options);
          cv::Mat bgr;
          cv::cvtColor(s.rgb, bgr, cv::COLOR_RGB2BGR);
          std::vector<uchar> png;
          if (!cv::imencode(".png", bgr, png)) throw clipes::Error(std::string(id) + ".png: PNG encoding failed");
          const fs::path root(out);
          clipes::write_file_atomic((root / "JPEGImages" / (std::string(id) + ".png")).string(),
                                    std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
          clipes::write_indexed_png((root / "SegmentationClass" / (std::string(id) + ".png")).string(), s.mask);
          clipes::write_file_atomic((root / "Annotations" / (std::string(id) + ".xml")).string(), voc_xml(id, s));
          ids[k] = id, captions[k] = s.caption, labels[k] = s.labels;
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (first_error.empty()) first_error = e.what();
          next = count;
        }
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < jobs; ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    if (!first_error.empty()) throw clipes::Error(first_error);

    std::string list, caption_lines;
    nlohmann::ordered_json label_json = nlohmann::ordered_json::object();
    for (int64_t k = 0; k < count; ++k) {
      list += ids[k] + "\n";
      caption_lines += ids[k] + "\t" + captions[k] + "\n";
      auto names = nlohmann::ordered_json::array();
      for (int cls : labels[k]) names.push_back(clipes::toy_class_names()[cls]);
      label_json[ids[k]] = names;
    }
    const fs::path root(out);
    clipes::write_file_atomic((root / "ImageSets" / "Segmentation" / (split + ".txt")).string(), list);
    clipes::write_file_atomic((root / "labels.json").string(), label_json.dump(1) + "\n");
    clipes::write_file_atomic((root / "captions.txt").string(), caption_lines);
    std::cerr << "make_toy_dataset: wrote " << count << " images to " << out << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "make_toy_dataset: error: " << e.what() << "\n";
    return 2;
  }
}

// libFuzzer harness: folder labels files, CSV and JSON (parse_labels_text in
// src/data/labels_parser.cpp) and the id check every key then goes through.
// Byte 0 picks the format / the name the detection sees; the rest is the file.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/data/dataset.h"
#include "clipes/data/safe_path.h"
#include "clipes/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* const kNames[] = {"labels.csv", "labels.json", "labels.txt", "labels.csv"};
  static const clipes::LabelsFormat kFormats[] = {clipes::LabelsFormat::Auto, clipes::LabelsFormat::Auto,
                                                  clipes::LabelsFormat::Auto, clipes::LabelsFormat::Json};
  const int mode = data[0] % 4;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto entries = clipes::parse_labels_text(text, kNames[mode], kFormats[mode]);
    for (const auto& e : entries) {
      for (const auto& label : e.labels) {
        if (label.empty()) {
          std::fprintf(stderr, "property violated: an empty label\n");
          std::abort();
        }
      }
      try {
        clipes::safe_stem(e.image, kNames[mode]);
      } catch (const clipes::Error&) {
      }
    }
  } catch (const clipes::Error&) {
  }
  return 0;
}

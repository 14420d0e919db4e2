// The safetensors header (8-byte little-endian length + JSON), parsed and
// checked without torch: parse_safetensors (safetensors.h) builds tensors from
// these entries, and fuzz/fuzz_safetensors.cpp fuzzes this part alone.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace clipes {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // "F32", "BF16", ... (one parse_safetensors supports)
  std::vector<int64_t> shape;  // non-negative
  size_t item_size = 0;        // bytes per element of dtype
  uint64_t begin = 0, end = 0;  // data_offsets, relative to the end of the header
};

// True if the bytes look like safetensors (plausible header length, '{').
bool looks_like_safetensors(const std::string& bytes);

// Offset of the data section (8 + header length); only after looks_like_safetensors.
uint64_t safetensors_data_start(const std::string& bytes);

// Every tensor of the header, in the header's order, "__metadata__" skipped.
// Checks: valid JSON object; each entry an object with a supported dtype, a
// shape of non-negative integers, data_offsets [begin, end] with
// begin <= end <= data size and end - begin == product(shape) * item size
// (computed overflow-safe). Throws clipes::Error "<path>: <problem>".
std::vector<SafetensorsEntry> parse_safetensors_header(const std::string& bytes, const std::string& path);

}  // namespace clipes

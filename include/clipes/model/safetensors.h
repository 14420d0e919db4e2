// The safetensors format (Hugging Face): 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets: [begin, end]}}, raw data.
// Small enough to read and write by hand; offsets are checked against the file.
#pragma once
#include <string>

#include "clipes/model/clip_config.h"  // TensorMap
#include "clipes/model/safetensors_header.h"  // looks_like_safetensors, parse_safetensors_header

namespace clipes {

// Parses a whole file's bytes (header checked by parse_safetensors_header).
// `path` names the file in errors.
TensorMap parse_safetensors(const std::string& bytes, const std::string& path);

// Writes tensors (CPU copies are made as needed) atomically.
void write_safetensors(const std::string& path, const TensorMap& tensors);

}  // namespace clipes

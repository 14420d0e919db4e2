// NumPy .npy reading and writing (format version 1.0/2.0, little-endian,
// C order). Used to save CAM arrays users can open with numpy.load, and by the
// tests to read the reference outputs in ../shared/fixtures.
//
// Written by hand on purpose: the format is a 10-line header plus raw bytes,
// and no Debian package offers a C++ reader.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace at { class Tensor; }

namespace clipes {

// Reads float16/float32/float64/int64/int32/uint8/bool arrays into a CPU
// tensor of the same dtype. Throws clipes::Error naming the file on any problem.
at::Tensor read_npy(const std::string& path);

// Writes a CPU tensor (any of the dtypes above) atomically (temp file + rename).
void write_npy(const std::string& path, const at::Tensor& tensor);

// The bytes of an .npy file for `tensor` (header + data), for callers that
// write them somewhere themselves.
std::vector<char> encode_npy(const at::Tensor& tensor);

}  // namespace clipes

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

// What the header of an .npy file says, checked against the file's size.
struct NpyHeader {
  std::string descr;           // numpy dtype string, one of those read_npy supports ("<f4", "|u1", ...)
  std::vector<int64_t> shape;  // empty for a 0-d array
  size_t item_size = 0;        // bytes per element
  size_t data_offset = 0;      // where the array's bytes start
  size_t data_bytes = 0;       // product(shape) * item_size; the file holds at least this many after data_offset
  // descr '|O' with shape (): one pickled Python object follows (np.save of a
  // dict, io/npy_pickle.h); data_bytes is then everything after the header.
  bool pickled_object = false;
};

// Parses and validates the magic, version (1, 2, 3), header dict, dtype
// (little-endian/byte dtypes read_npy supports), C order and shape (dimension
// product checked for overflow and against the bytes present). No torch:
// fuzzed on its own. Throws clipes::Error "<name>: <problem>".
NpyHeader parse_npy_header(const std::string& bytes, const std::string& name);

// Reads float16/float32/float64/int64/int32/uint8/bool arrays into a CPU
// tensor of the same dtype. Throws clipes::Error naming the file on any problem.
at::Tensor read_npy(const std::string& path);

// Writes a CPU tensor (any of the dtypes above) atomically (temp file + rename).
void write_npy(const std::string& path, const at::Tensor& tensor);

// The version 1.0 header numpy writes for this descr and shape (magic,
// length, dict, space padding to a multiple of 64, '\n').
std::string npy_header_bytes(const std::string& descr, const std::vector<int64_t>& shape);

// The bytes of an .npy file for `tensor` (header + data), for callers that
// write them somewhere themselves.
std::vector<char> encode_npy(const at::Tensor& tensor);

}  // namespace clipes

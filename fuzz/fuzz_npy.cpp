// libFuzzer harness: the .npy header parser (parse_npy_header,
// src/io/npy_header.cpp) — what read_npy trusts before it allocates and copies.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/io/npy.h"
#include "clipes/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const clipes::NpyHeader h = clipes::parse_npy_header(bytes, "fuzz.npy");
    // What read_npy relies on: the data lies inside the bytes, sizes agree.
    uint64_t numel = 1;
    for (int64_t d : h.shape) {
      if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) std::abort();
    }
    if (h.data_offset > bytes.size() || h.data_bytes > bytes.size() - h.data_offset ||
        numel * h.item_size != h.data_bytes) {
      std::fprintf(stderr, "property violated: header sizes do not fit the bytes\n");
      std::abort();
    }
  } catch (const clipes::Error&) {
  }
  return 0;
}

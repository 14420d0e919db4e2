// libFuzzer harness: the .npy header parser (parse_npy_header,
// src/io/npy_header.cpp) — what read_npy trusts before it allocates and copies —
// and, for '|O' files, the restricted unpickler of CLIP-ES CAM dicts
// (src/io/npy_pickle.cpp): whatever it returns must be self-consistent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/io/npy.h"
#include "clipes/io/npy_pickle.h"
#include "clipes/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const clipes::NpyHeader h = clipes::parse_npy_header(bytes, "fuzz.npy");
    if (h.pickled_object) {
      if (h.data_offset + h.data_bytes != bytes.size()) std::abort();
      for (const auto& [key, a] : clipes::parse_npy_pickled_dict(bytes, "fuzz.npy")) {
        uint64_t count = 1;
        for (int64_t d : a.shape)
          if (d < 0 || __builtin_mul_overflow(count, static_cast<uint64_t>(d), &count)) std::abort();
        const uint64_t item = static_cast<uint64_t>(a.dtype.size() >= 2 ? a.dtype[1] - '0' : 0);
        if (a.data.size() != count * item) {
          std::fprintf(stderr, "property violated: pickled array bytes disagree with its shape\n");
          std::abort();
        }
        // What we parsed, written back and parsed again, is the same.
        const auto again = clipes::parse_npy_pickled_dict(clipes::encode_npy_pickled_dict({{key, a}}), "again");
        if (again.size() != 1 || again[0].second.data != a.data || again[0].second.shape != a.shape) std::abort();
      }
      return 0;
    }
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

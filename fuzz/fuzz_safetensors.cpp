// libFuzzer harness: the safetensors header parser (parse_safetensors_header,
// src/model/safetensors_header.cpp) — what parse_safetensors trusts before it
// allocates tensors and copies their bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/model/safetensors_header.h"
#include "clipes/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto entries = clipes::parse_safetensors_header(bytes, "fuzz.safetensors");
    const uint64_t start = clipes::safetensors_data_start(bytes);
    for (const auto& e : entries) {
      uint64_t numel = 1;
      for (int64_t d : e.shape)
        if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) std::abort();
      if (start > bytes.size() || e.begin > e.end || e.end > bytes.size() - start ||
          numel * e.item_size != e.end - e.begin) {
        std::fprintf(stderr, "property violated: tensor %s does not fit the bytes\n", e.name.c_str());
        std::abort();
      }
    }
  } catch (const clipes::Error&) {
  }
  return 0;
}

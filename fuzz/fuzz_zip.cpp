// libFuzzer harness: the checkpoint archive check (verify_zip_integrity,
// src/util/zip_integrity.cpp, libzip underneath): any bytes must give a
// clipes::Error (or ZipMemberCorrupt), never a crash or a hang.
#include <cstdint>
#include <string>

#include "clipes/util/error.h"
#include "clipes/util/zip_integrity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    clipes::verify_zip_integrity(bytes, "fuzz.pt");
  } catch (const clipes::Error&) {
  }
  return 0;
}

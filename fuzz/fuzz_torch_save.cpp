// libFuzzer harness: the torch.save pickle reader (torch_save_state_dict,
// src/model/torch_save_pickle.cpp on src/io/pickle_machine.cpp) — what every
// state-dict checkpoint clipes loads goes through before LibTorch allocates a
// byte. Whatever it returns must be safe to build tensors from: each view
// lies inside its storage, sizes and strides agree, element sizes are real.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/model/torch_save_pickle.h"
#include "clipes/util/error.h"
#include "fuzz_support.h"

using clipes::fuzz::violated;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    for (const clipes::TorchSaveTensor& t : clipes::torch_save_state_dict(bytes, "fuzz.pt")) {
      if (t.sizes.size() != t.strides.size()) violated("sizes and strides differ in length");
      if (t.element_size != 1 && t.element_size != 2 && t.element_size != 4 && t.element_size != 8)
        violated("element size");
      if (t.storage_key.empty() || t.storage_key.find('/') != std::string::npos) violated("storage key");
      if (t.offset < 0 || t.storage_numel < 0) violated("negative offset or storage size");
      bool empty = false;
      for (int64_t s : t.sizes) empty = empty || s == 0;
      if (empty) continue;
      // The last element reached, computed in 128 bits so overflow cannot hide it.
      __int128 last = t.offset;
      for (size_t d = 0; d < t.sizes.size(); ++d) {
        if (t.sizes[d] < 0 || t.strides[d] < 0) violated("negative size or stride");
        last += static_cast<__int128>(t.sizes[d] - 1) * t.strides[d];
      }
      if (last >= t.storage_numel) violated("a view reaches past its storage");
    }
  } catch (const clipes::Error&) {
  }
  return 0;
}

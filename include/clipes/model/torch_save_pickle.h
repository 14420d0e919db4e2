// What a torch.save file's pickle (`<archive>/data.pkl`) says about its
// tensors, read without LibTorch: names, dtypes, shapes, strides and the
// storage record ("data/<key>") each one views. model/checkpoint turns these
// into tensors; the split keeps the part a hostile file reaches first
// torch-free, so it is fuzzed on its own (fuzz/fuzz_torch_save.cpp).
//
// Tolerant the way a loader of other people's checkpoints must be
// (lseg-spec §9): OrderedDicts are dicts (every `torch.save(model.
// state_dict())`, OpenCLIP's .bin files), storages tagged "cuda:0" are just
// bytes, and what it does not know — PyTorch-Lightning callbacks keyed by a
// class object, optimizer states, hyper-parameter namespaces — stays an
// opaque value that is never executed and never needed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace clipes {

struct TorchSaveTensor {
  std::string name;         // key in the dict the weights were found in
  std::string storage_key;  // bytes in the zip record "data/<storage_key>"
  std::string dtype;        // LibTorch's scalar type name: "Float", "Half", "BFloat16", "Long", ...
  int element_size = 0;     // bytes per element of that dtype
  int64_t storage_numel = 0;  // elements in the storage (its record holds storage_numel * element_size bytes)
  int64_t offset = 0;       // in elements, into the storage
  std::vector<int64_t> sizes, strides;
  std::string location;     // as saved ("cpu", "cuda:0"); the bytes are loaded on the CPU regardless
};

// The tensors of the pickled dict: its top level, or the dict under
// "state_dict", "model" or "model_state_dict" when it has one (training
// checkpoints, PyTorch-Lightning). Entries that are not tensors, and keys
// that are not strings, are skipped. Every view is checked against its
// storage's size, and every reference to one storage must agree on its
// dtype and size. Throws clipes::Error "<name>: <problem>" otherwise.
std::vector<TorchSaveTensor> torch_save_state_dict(const std::string& pickle, const std::string& name);

}  // namespace clipes

// A restricted pickle machine: reads Python pickles (protocols 0–5) into a
// tree of plain values and never calls anything. Globals stay names
// ("module name"), `callable(*args)` stays an Object node holding both, and
// BUILD only records the state. The readers on top of it decide what a name
// means: io/npy_pickle (numpy's CAM dicts, the official CLIP-ES format) and
// model/torch_save_pickle (torch.save checkpoints, with unknown classes such
// as PyTorch-Lightning callbacks kept as opaque objects — lseg-spec §9).
//
// Written by hand because no Debian package has a C++ unpickler and
// LibTorch's only rebuilds the globals it knows: an OrderedDict (every
// `torch.save(model.state_dict())`) becomes None there and asserts.
// Hostile input is bounded: at most 2^20 values and memo slots, strings no
// longer than the input, and values that point at each other through an
// arena (a list appended to itself is a cycle, not a leak); readers that
// walk the tree must bound their depth themselves.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace clipes {

struct PickleValue {
  enum Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Set, Global, Object, PersistentId, Mark };
  Kind kind = None;
  int64_t number = 0;                // Bool, Int
  double real = 0;                   // Float
  std::string text;                  // Str, Bytes, Global ("module name")
  std::vector<PickleValue*> items;   // Tuple, List, Set; Dict as key, value, key, value ...;
                                     // Object: what APPENDS/SETITEMS added to it (list/dict subclasses)
  PickleValue* callable = nullptr;   // Object: the class or function
  PickleValue* args = nullptr;       // Object: its argument tuple; PersistentId: the id
  PickleValue* state = nullptr;      // Object/Dict: what BUILD gave it
};

struct PickleOptions {
  // Names the input in errors: "<file>: bad <what> at byte N: ...".
  std::string what = "pickle";
  // Accept PERSID/BINPERSID (torch.save refers to tensor storages this way);
  // the id is kept as a PersistentId node for the reader to resolve.
  bool persistent_ids = false;
  // `global()` calls that build a plain dict: an OrderedDict is a dict to us.
  std::vector<std::string> dict_globals = {"collections OrderedDict"};
};

class PickleMachine;

class PickleDocument {
 public:
  const PickleValue* root() const { return root_; }

 private:
  friend class PickleMachine;
  std::vector<std::unique_ptr<PickleValue>> arena_;
  PickleValue* root_ = nullptr;
};

// Runs the pickle starting at `begin` up to its STOP. Throws clipes::Error
// "<name>: bad <what> at byte N: <problem>" on anything malformed or
// unsupported (out-of-band buffers, the extension registry).
PickleDocument unpickle(const std::string& bytes, size_t begin, const std::string& name,
                        const PickleOptions& options = {});

}  // namespace clipes

#include "clipes/model/torch_save_pickle.h"

#include <limits>
#include <map>
#include <utility>

#include "clipes/io/pickle_machine.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"

namespace clipes {
namespace {

struct StorageType {
  const char* global;  // "module name" of the typed-storage class torch.save names
  const char* dtype;
  int element_size;
};
// torch/storage.py's legacy typed storages: torch.save still names these in
// the persistent id of every tensor, also in torch 2.x.
constexpr StorageType kStorageTypes[] = {
    {"torch FloatStorage", "Float", 4},   {"torch DoubleStorage", "Double", 8}, {"torch HalfStorage", "Half", 2},
    {"torch BFloat16Storage", "BFloat16", 2}, {"torch LongStorage", "Long", 8}, {"torch IntStorage", "Int", 4},
    {"torch ShortStorage", "Short", 2},   {"torch CharStorage", "Char", 1},     {"torch ByteStorage", "Byte", 1},
    {"torch BoolStorage", "Bool", 1},
};

constexpr int64_t kMaxStorageBytes = int64_t{1} << 40;

class Reader {
 public:
  explicit Reader(const std::string& name) : name_(name) {}

  [[noreturn]] void fail(const std::string& problem) const { throw file_error(name_, problem); }

  static bool is_global(const PickleValue* v, const char* name) {
    return v && v->kind == PickleValue::Global && v->text == name;
  }
  static const PickleValue* arg(const PickleValue* object, size_t i) {
    return object->args && object->args->kind == PickleValue::Tuple && i < object->args->items.size()
               ? object->args->items[i]
               : nullptr;
  }
  int64_t integer(const PickleValue* v, const std::string& what) const {
    if (!v || v->kind != PickleValue::Int) fail(what + " is not an integer");
    return v->number;
  }
  std::vector<int64_t> int_tuple(const PickleValue* v, const std::string& what) const {
    if (!v || v->kind != PickleValue::Tuple || v->items.size() > 16) fail(what + " is not a tuple of at most 16 integers");
    std::vector<int64_t> out;
    for (const PickleValue* d : v->items) {
      const int64_t n = integer(d, what);
      if (n < 0) fail(what + " holds a negative number");
      out.push_back(n);
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]),
  // possibly wrapped by _rebuild_parameter(data, requires_grad, hooks).
  bool tensor(const PickleValue* v, const std::string& key, TorchSaveTensor& out, int depth = 0) {
    if (!v || v->kind != PickleValue::Object || depth > 2) return false;
    const std::string what = "tensor '" + printable(key.substr(0, 60)) + "'";
    if (is_global(v->callable, "torch._utils _rebuild_parameter") ||
        is_global(v->callable, "torch._utils _rebuild_parameter_with_state"))
      return tensor(arg(v, 0), key, out, depth + 1);
    if (!is_global(v->callable, "torch._utils _rebuild_tensor_v2") &&
        !is_global(v->callable, "torch._utils _rebuild_tensor"))
      return false;
    const PickleValue* pid = arg(v, 0);
    if (!pid || pid->kind != PickleValue::PersistentId) fail(what + " is not backed by a storage record");
    storage(pid->args, what, out);
    out.name = key;
    out.offset = integer(arg(v, 1), what + "'s storage offset");
    out.sizes = int_tuple(arg(v, 2), what + "'s size");
    out.strides = int_tuple(arg(v, 3), what + "'s stride");
    if (out.sizes.size() != out.strides.size()) fail(what + " has " + std::to_string(out.sizes.size()) +
                                                     " sizes but " + std::to_string(out.strides.size()) + " strides");
    if (out.offset < 0) fail(what + " has a negative storage offset");
    // The last element the view reaches must lie inside the storage.
    bool empty = false;
    for (int64_t s : out.sizes) empty = empty || s == 0;
    if (!empty) {
      int64_t last = out.offset;
      for (size_t d = 0; d < out.sizes.size(); ++d) {
        int64_t reach = 0;
        if (__builtin_mul_overflow(out.sizes[d] - 1, out.strides[d], &reach) ||
            __builtin_add_overflow(last, reach, &last))
          fail(what + " has an impossible shape");
      }
      if (last >= out.storage_numel)
        fail(what + " reaches element " + std::to_string(last) + " of a storage of " +
             std::to_string(out.storage_numel));
    }
    return true;
  }

  // ('storage', <torch XStorage>, key, location, numel)
  void storage(const PickleValue* id, const std::string& what, TorchSaveTensor& out) {
    if (!id || id->kind != PickleValue::Tuple || id->items.size() != 5 || id->items[0]->kind != PickleValue::Str ||
        id->items[0]->text != "storage")
      fail(what + "'s storage id is not ('storage', type, key, location, size)");
    const PickleValue* type = id->items[1];
    const StorageType* found = nullptr;
    for (const StorageType& t : kStorageTypes)
      if (is_global(type, t.global)) found = &t;
    if (!found)
      fail(what + " has storage type " +
           (type->kind == PickleValue::Global ? printable(type->text.substr(0, 60)) : std::string("(not a class)")) +
           " (supported: float, double, half, bfloat16 and integer storages)");
    if (id->items[2]->kind != PickleValue::Str || id->items[2]->text.empty() || id->items[2]->text.size() > 64 ||
        id->items[2]->text.find_first_of("/\\") != std::string::npos || id->items[2]->text.find("..") != std::string::npos)
      fail(what + "'s storage key is not a plain record name");
    if (id->items[3]->kind != PickleValue::Str) fail(what + "'s storage location is not a string");
    out.dtype = found->dtype;
    out.element_size = found->element_size;
    out.storage_key = id->items[2]->text;
    out.location = printable(id->items[3]->text.substr(0, 32));
    out.storage_numel = integer(id->items[4], what + "'s storage size");
    if (out.storage_numel < 0 || out.storage_numel > kMaxStorageBytes / out.element_size)
      fail(what + " has an impossible storage size");
    // One storage, one meaning: two views that disagree on it are a damaged file.
    auto [it, fresh] = storages_.emplace(out.storage_key, std::make_pair(out.dtype, out.storage_numel));
    if (!fresh && it->second != std::make_pair(out.dtype, out.storage_numel))
      fail(what + " reads storage " + printable(out.storage_key.substr(0, 64)) + " as another dtype or size than an earlier tensor");
  }

  // LibTorch's own torch::pickle_save wraps typed containers in
  // torch.jit._pickle.restore_type_tag(value, "Dict[str, Tensor]").
  static const PickleValue* unwrap(const PickleValue* v) {
    for (int depth = 0; depth < 4 && v && v->kind == PickleValue::Object &&
                        is_global(v->callable, "torch.jit._pickle restore_type_tag") && arg(v, 0);
         ++depth)
      v = arg(v, 0);
    return v;
  }

  static const PickleValue* entry(const PickleValue* dict, const char* key) {
    const PickleValue* found = nullptr;
    for (size_t i = 0; i + 1 < dict->items.size(); i += 2)
      if (dict->items[i]->kind == PickleValue::Str && dict->items[i]->text == key) found = unwrap(dict->items[i + 1]);
    return found;
  }

  std::vector<TorchSaveTensor> state_dict(const PickleValue* pickled_root) {
    const PickleValue* root = unwrap(pickled_root);
    if (root->kind != PickleValue::Dict) fail("torch.save file does not hold a dict of tensors");
    const PickleValue* dict = root;
    for (const char* key : {"state_dict", "model", "model_state_dict"})
      if (const PickleValue* nested = entry(root, key); nested && nested->kind == PickleValue::Dict) dict = nested;
    std::vector<TorchSaveTensor> out;
    for (size_t i = 0; i + 1 < dict->items.size(); i += 2) {
      if (dict->items[i]->kind != PickleValue::Str) continue;
      TorchSaveTensor t;
      if (tensor(dict->items[i + 1], dict->items[i]->text, t)) out.push_back(std::move(t));
    }
    return out;
  }

 private:
  const std::string& name_;
  std::map<std::string, std::pair<std::string, int64_t>> storages_;
};

}  // namespace

std::vector<TorchSaveTensor> torch_save_state_dict(const std::string& pickle, const std::string& name) {
  PickleOptions options;
  options.what = "torch.save pickle";
  options.persistent_ids = true;
  const PickleDocument doc = unpickle(pickle, 0, name, options);
  return Reader(name).state_dict(doc.root());
}

}  // namespace clipes

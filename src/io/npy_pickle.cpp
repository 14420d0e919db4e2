#include "clipes/io/npy_pickle.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <memory>

#include "clipes/io/npy.h"
#include "clipes/io/pickle_machine.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

using Value = PickleValue;

// ---------------------------------------------------- the numpy structure --
struct Interpreter {
  const std::string& name;

  [[noreturn]] void fail(const std::string& problem) const {
    throw file_error(name, "not a pickled dict of numpy arrays: " + problem);
  }
  static bool is_global(const Value* v, const char* module_attr) {
    return v && v->kind == Value::Global && v->text == module_attr;
  }
  static bool is_reconstruct(const Value* v) {
    // numpy 1.x and numpy 2 (numpy._core) spell the module differently.
    return is_global(v, "numpy.core.multiarray _reconstruct") || is_global(v, "numpy._core.multiarray _reconstruct");
  }
  const Value* tuple(const Value* v, size_t size, const char* what) const {
    if (!v || v->kind != Value::Tuple || v->items.size() != size) fail(std::string(what) + " is not a " + std::to_string(size) + "-tuple");
    return v;
  }
  int64_t integer(const Value* v, const char* what) const {
    if (!v || (v->kind != Value::Int && v->kind != Value::Bool)) fail(std::string(what) + " is not an integer");
    return v->number;
  }

  // numpy.dtype(code, False, True) with state (version, byte order, ...).
  void dtype(const Value* v, PickledArray& out) const {
    if (!v || v->kind != Value::Object || !is_global(v->callable, "numpy dtype")) fail("an array's dtype is not numpy.dtype");
    const Value* args = v->args;
    if (args->items.empty() || args->items[0]->kind != Value::Str) fail("a dtype without its type code");
    out.dtype = args->items[0]->text;
    const Value* state = v->state;
    if (!state || state->kind != Value::Tuple || state->items.size() < 2 || state->items[1]->kind != Value::Str ||
        state->items[1]->text.size() != 1)
      fail("dtype " + out.dtype.substr(0, 16) + " without its byte order");
    out.byte_order = state->items[1]->text[0];
  }

  // _reconstruct(ndarray, (0,), b'b') with state (1, shape, dtype, is_fortran, data).
  const Value* array_state(const Value* v, const char* what) const {
    if (!v || v->kind != Value::Object || !is_reconstruct(v->callable))
      fail(std::string(what) + " is not a numpy array");
    if (v->args->items.empty() || !is_global(v->args->items[0], "numpy ndarray"))
      fail(std::string(what) + " is not a numpy.ndarray");
    return tuple(v->state, 5, what);
  }

  PickledArray array(const Value* v, const std::string& key) const {
    const std::string what = "entry '" + key.substr(0, 40) + "'";
    const Value* st = array_state(v, what.c_str());
    PickledArray a;
    const Value* shape = st->items[1];
    if (shape->kind != Value::Tuple) fail(what + " has no shape tuple");
    uint64_t count = 1;
    for (const Value* d : shape->items) {
      const int64_t dim = integer(d, "a shape dimension");
      if (dim < 0 || __builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count) ||
          count > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
        fail(what + " has an impossible shape");
      a.shape.push_back(dim);
    }
    dtype(st->items[2], a);
    if (integer(st->items[3], "is_fortran")) fail(what + " is Fortran-ordered (only C order is supported)");
    const Value* data = st->items[4];
    if (data->kind != Value::Bytes && data->kind != Value::Str) fail(what + " holds Python objects, not numbers");
    size_t item = 0;
    if (a.dtype.size() >= 2) item = static_cast<size_t>(std::atoi(a.dtype.c_str() + 1));
    static const char* kSupported[] = {"f2", "f4", "f8", "i8", "i4", "u1", "b1"};
    bool supported = false;
    for (const char* s : kSupported) supported = supported || a.dtype == s;
    if (!supported) fail(what + " has dtype " + a.dtype.substr(0, 16) + " (supported: f2 f4 f8 i8 i4 u1 b1)");
    if (a.byte_order == '>' && item > 1) fail(what + " is big-endian");
    if (data->text.size() != count * item)
      fail(what + " holds " + std::to_string(data->text.size()) + " bytes, its shape needs " +
           std::to_string(count * item));
    a.data = data->text;
    return a;
  }

  PickledArrays dict(const Value* root) const {
    // The 0-d object array np.save pickles: state (1, (), dtype('O'), False, [the dict]).
    const Value* st = array_state(root, "the saved object");
    const Value* list = st->items[4];
    if (list->kind != Value::List || list->items.size() != 1) fail("the saved object array does not hold one object");
    const Value* d = list->items[0];
    if (d->kind != Value::Dict) fail("the saved object is not a dict");
    PickledArrays out;
    for (size_t i = 0; i + 1 < d->items.size(); i += 2) {
      if (d->items[i]->kind != Value::Str) fail("a dict key is not a string");
      out.emplace_back(d->items[i]->text, array(d->items[i + 1], d->items[i]->text));
    }
    return out;
  }
};

// ---------------------------------------------------------------- writing --
// Emits what CPython's pickle (protocol 3) writes for numpy 1.24's
// ndarray.__reduce__, memo indices included: every object saved is memoised
// once; the singletons numpy reuses (the _reconstruct and class globals,
// b'b', one-character byte-order strings, builtin dtype objects) are
// fetched back with BINGET the second time, exactly as CPython does.
class NumpyPickler {
 public:
  std::string finish(const PickledArrays& arrays) {
    out_ += "\x80\x03";
    reconstruct_prefix();
    // The 0-d object array holding the dict.
    out_ += '(';
    int1(1);
    out_ += ')';  // shape (): the empty tuple is never memoised
    dtype("O8", '|', 63);
    out_ += '\x89';  // not Fortran
    out_ += ']';
    put();
    out_ += '}';
    put();
    if (arrays.size() > 1) out_ += '(';
    for (const auto& [key, a] : arrays) {
      unicode(key);
      put();
      reconstruct_prefix();
      out_ += '(';
      int1(1);
      shape(a.shape);
      dtype(a.dtype, a.byte_order, 0);
      out_ += '\x89';
      bytes(a.data);
      put();
      out_ += 't';
      put();
      out_ += 'b';
    }
    if (arrays.size() > 1) out_ += 'u';          // SETITEMS
    else if (arrays.size() == 1) out_ += 's';    // SETITEM (CPython's choice for a single item)
    out_ += 'a';                                 // APPEND the dict to the list
    out_ += 't';
    put();
    out_ += 'b';
    out_ += '.';
    return out_;
  }

 private:
  int put() { const int i = next_++; memo(i); return i; }
  void memo(int i) {
    if (i < 256) {
      out_ += 'q';
      out_ += static_cast<char>(i);
    } else {
      out_ += 'r';
      le(static_cast<uint64_t>(i), 4);
    }
  }
  void get(int i) {
    if (i < 256) {
      out_ += 'h';
      out_ += static_cast<char>(i);
    } else {
      out_ += 'j';
      le(static_cast<uint64_t>(i), 4);
    }
  }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  void int1(int v) {
    out_ += 'K';
    out_ += static_cast<char>(v);
  }
  void integer(int64_t v) {  // CPython's save_long for protocol ≥ 2
    if (v >= 0 && v <= 0xff) return int1(static_cast<int>(v));
    if (v >= 0 && v <= 0xffff) {
      out_ += 'M';
      return le(static_cast<uint64_t>(v), 2);
    }
    if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      out_ += 'J';
      return le(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
    }
    // LONG1: the shortest two's-complement little-endian encoding.
    std::string b;
    uint64_t u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) b += static_cast<char>((u >> (8 * i)) & 0xff);
    while (b.size() > 1 && ((b.back() == 0 && !(b[b.size() - 2] & 0x80)) ||
                            (b.back() == '\xff' && (b[b.size() - 2] & 0x80))))
      b.pop_back();
    out_ += '\x8a';
    out_ += static_cast<char>(b.size());
    out_ += b;
  }
  void unicode(const std::string& s) {
    out_ += 'X';
    le(s.size(), 4);
    out_ += s;
  }
  void bytes(const std::string& s) {
    if (s.size() < 256) {
      out_ += 'C';
      out_ += static_cast<char>(s.size());
    } else {
      if (s.size() > 0xffffffffu) throw Error("a CAM array over 4 GB cannot be pickled with protocol 3");
      out_ += 'B';
      le(s.size(), 4);
    }
    out_ += s;
  }
  void global(const char* module, const char* name, int& slot) {
    if (slot >= 0) return get(slot);
    out_ += 'c';
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
    slot = put();
  }
  // _reconstruct, (ndarray, (0,), b'b'), REDUCE.
  void reconstruct_prefix() {
    global("numpy.core.multiarray", "_reconstruct", reconstruct_);
    global("numpy", "ndarray", ndarray_);
    int1(0);
    out_ += '\x85';
    put();
    if (b_ >= 0) {
      get(b_);
    } else {
      out_ += "C\x01";
      out_ += 'b';
      b_ = put();
    }
    out_ += '\x87';
    put();
    out_ += 'R';
    put();
  }
  void shape(const std::vector<int64_t>& dims) {
    if (dims.empty()) {
      out_ += ')';
      return;
    }
    if (dims.size() > 3) out_ += '(';
    for (int64_t d : dims) integer(d);
    out_ += dims.size() == 1 ? "\x85" : dims.size() == 2 ? "\x86" : dims.size() == 3 ? "\x87" : "t";
    put();
  }
  // numpy.dtype(code, False, True) + BUILD (3, order, None, None, None, -1, -1, flags);
  // a builtin dtype object saved before is fetched from the memo.
  void dtype(const std::string& code, char order, int flags) {
    for (const auto& [c, slot] : dtypes_)
      if (c == code) return get(slot);
    global("numpy", "dtype", dtype_);
    unicode(code);
    put();
    out_ += "\x89\x88\x87";
    put();
    out_ += 'R';
    const int slot = put();
    dtypes_.emplace_back(code, slot);
    out_ += '(';
    int1(3);
    int& order_slot = order_slots_[static_cast<unsigned char>(order)];
    if (order_slot >= 0) {
      get(order_slot);
    } else {
      unicode(std::string(1, order));
      order_slot = put();
    }
    out_ += "NNN";
    integer(-1);
    integer(-1);
    integer(flags);
    out_ += 't';
    put();
    out_ += 'b';
  }

  std::string out_;
  int next_ = 0, reconstruct_ = -1, ndarray_ = -1, dtype_ = -1, b_ = -1;
  int order_slots_[256];
  std::vector<std::pair<std::string, int>> dtypes_;

 public:
  NumpyPickler() { std::fill(std::begin(order_slots_), std::end(order_slots_), -1); }
};

}  // namespace

PickledArrays parse_npy_pickled_dict(const std::string& bytes, const std::string& name) {
  const NpyHeader header = parse_npy_header(bytes, name);
  if (!header.pickled_object)
    throw file_error(name, "holds a plain " + header.descr + " array, not a pickled dict (np.save of {'keys': ..., "
                           "'attn_highres': ...})");
  PickleOptions options;
  options.what = "pickled CAM dict";
  const PickleDocument doc = unpickle(bytes, header.data_offset, name, options);
  return Interpreter{name}.dict(doc.root());
}

std::string encode_npy_pickled_dict(const PickledArrays& arrays) {
  return npy_header_bytes("|O", {}) + NumpyPickler().finish(arrays);
}

}  // namespace clipes

#include "clipes/io/npy_pickle.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <memory>

#include "clipes/io/npy.h"
#include "clipes/util/error.h"

namespace clipes {
namespace {

// ---------------------------------------------------------------- reading --
// A value on the pickle machine's stack. Values live in one arena owned by
// the machine and point at each other with raw pointers, so a hostile pickle
// that builds a cycle (a list appended to itself) neither leaks nor recurses:
// interpretation below is depth-limited.
struct Value {
  enum Kind { None, Bool, Int, Str, Bytes, Tuple, List, Dict, Global, Reduced, Mark } kind = None;
  int64_t number = 0;            // Bool, Int
  std::string text;              // Str, Bytes, Global ("module name")
  std::vector<Value*> items;     // Tuple, List; Dict as key, value, key, value ...
  Value* callable = nullptr;     // Reduced: callable(*args), then BUILD with state
  Value* args = nullptr;
  Value* state = nullptr;
};

// Enough for numpy's arrays of any size; bounds what a hostile file can make us allocate.
constexpr size_t kMaxValues = 1 << 20;
constexpr size_t kMaxMemo = 1 << 20;

class Unpickler {
 public:
  Unpickler(const std::string& bytes, size_t begin, const std::string& name) : s_(bytes), p_(begin), name_(name) {}

  Value* run() {
    while (true) {
      const size_t at = p_;
      const unsigned char op = byte();
      switch (op) {
        case 0x80: byte(); break;                         // PROTO n
        case 0x95: skip(8); break;                        // FRAME (protocol 4+): a length hint only
        case '.':                                         // STOP
          if (stack_.size() != 1 || stack_[0]->kind == Value::Mark) fail(at, "STOP with a malformed stack");
          return stack_[0];
        case '(': push(make(Value::Mark)); break;         // MARK
        case ')': push(make(Value::Tuple)); break;        // EMPTY_TUPLE
        case 't': { Value* t = make(Value::Tuple); t->items = pop_to_mark(at); push(t); break; }
        case 0x85: case 0x86: case 0x87: {                // TUPLE1..3
          const size_t n = op - 0x84;
          if (stack_.size() < n) fail(at, "tuple of missing items");
          Value* t = make(Value::Tuple);
          t->items.assign(stack_.end() - n, stack_.end());
          for (Value* v : t->items) if (v->kind == Value::Mark) fail(at, "tuple of a mark");
          stack_.resize(stack_.size() - n);
          push(t);
          break;
        }
        case ']': push(make(Value::List)); break;         // EMPTY_LIST
        case '}': push(make(Value::Dict)); break;         // EMPTY_DICT
        case 'l': { Value* l = make(Value::List); l->items = pop_to_mark(at); push(l); break; }
        case 'd': {
          Value* d = make(Value::Dict);
          d->items = pop_to_mark(at);
          if (d->items.size() % 2) fail(at, "DICT of an odd number of items");
          push(d);
          break;
        }
        case 'a': { Value* v = pop(at); append(top(at), {v}, at); break; }     // APPEND
        case 'e': { auto vs = pop_to_mark(at); append(top(at), vs, at); break; }  // APPENDS
        case 's': {                                                            // SETITEM
          Value* v = pop(at);
          Value* k = pop(at);
          set_items(top(at), {k, v}, at);
          break;
        }
        case 'u': { auto kv = pop_to_mark(at); set_items(top(at), kv, at); break; }  // SETITEMS
        case 'N': push(make(Value::None)); break;
        case 0x88: case 0x89: { Value* b = make(Value::Bool); b->number = op == 0x88; push(b); break; }
        case 'K': push_int(byte()); break;                                       // BININT1
        case 'M': push_int(static_cast<int64_t>(unsigned_le(2))); break;         // BININT2
        case 'J': push_int(static_cast<int32_t>(static_cast<uint32_t>(unsigned_le(4)))); break;  // BININT
        case 0x8a: {                                                             // LONG1
          const size_t n = byte();
          if (n > 8) fail(at, "integer wider than 64 bits");
          uint64_t v = unsigned_le(n);
          if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'X': push_text(Value::Str, unsigned_le(4), at); break;              // BINUNICODE
        case 0x8c: push_text(Value::Str, byte(), at); break;                     // SHORT_BINUNICODE
        case 0x8d: push_text(Value::Str, unsigned_le(8), at); break;             // BINUNICODE8
        case 'C': push_text(Value::Bytes, byte(), at); break;                    // SHORT_BINBYTES
        case 'B': push_text(Value::Bytes, unsigned_le(4), at); break;            // BINBYTES
        case 0x8e: case 0x96: push_text(Value::Bytes, unsigned_le(8), at); break;  // BINBYTES8, BYTEARRAY8
        case 'c': {                                                              // GLOBAL module\nname\n
          const std::string module = line(at), attr = line(at);
          Value* g = make(Value::Global);
          g->text = module + " " + attr;
          push(g);
          break;
        }
        case 0x93: {                                                             // STACK_GLOBAL
          Value* attr = pop(at);
          Value* module = pop(at);
          if (module->kind != Value::Str || attr->kind != Value::Str) fail(at, "STACK_GLOBAL of non-strings");
          Value* g = make(Value::Global);
          g->text = module->text + " " + attr->text;
          push(g);
          break;
        }
        case 'q': memo_put(byte(), at); break;                                   // BINPUT
        case 'r': memo_put(unsigned_le(4), at); break;                           // LONG_BINPUT
        case 0x94: memo_put(memo_.size(), at); break;                            // MEMOIZE
        case 'h': push(memo_get(byte(), at)); break;                             // BINGET
        case 'j': push(memo_get(unsigned_le(4), at)); break;                     // LONG_BINGET
        case 'R': {                                                              // REDUCE
          Value* args = pop(at);
          Value* callable = pop(at);
          if (args->kind != Value::Tuple) fail(at, "REDUCE arguments are not a tuple");
          Value* r = make(Value::Reduced);
          r->callable = callable;
          r->args = args;
          push(r);
          break;
        }
        case 'b': {                                                              // BUILD
          Value* state = pop(at);
          Value* obj = top(at);
          if (obj->kind != Value::Reduced || obj->state) fail(at, "BUILD of something that is not a fresh object");
          obj->state = state;
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(at, std::string("pickle opcode ") + hex + " is not one numpy's array pickling uses");
        }
      }
    }
  }

  [[noreturn]] void fail(size_t at, const std::string& problem) const {
    throw file_error(name_, "bad pickled CAM dict at byte " + std::to_string(at) + ": " + problem);
  }

 private:
  unsigned char byte() {
    if (p_ >= s_.size()) fail(p_, "truncated pickle");
    return static_cast<unsigned char>(s_[p_++]);
  }
  void skip(size_t n) {
    if (n > s_.size() - p_) fail(p_, "truncated pickle");
    p_ += n;
  }
  uint64_t unsigned_le(size_t n) {
    if (n > s_.size() - p_) fail(p_, "truncated pickle");
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s_[p_ + i])) << (8 * i);
    p_ += n;
    return v;
  }
  std::string line(size_t at) {
    const size_t end = s_.find('\n', p_);
    if (end == std::string::npos || end - p_ > 256) fail(at, "GLOBAL without a short newline-ended name");
    std::string out = s_.substr(p_, end - p_);
    p_ = end + 1;
    return out;
  }
  Value* make(Value::Kind kind) {
    if (arena_.size() >= kMaxValues) fail(p_, "too many objects");
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = kind;
    return arena_.back().get();
  }
  void push(Value* v) { stack_.push_back(v); }
  void push_int(int64_t v) {
    Value* i = make(Value::Int);
    i->number = v;
    push(i);
  }
  void push_text(Value::Kind kind, uint64_t length, size_t at) {
    if (length > s_.size() - p_) fail(at, "string or bytes longer than the file");
    Value* v = make(kind);
    v->text = s_.substr(p_, static_cast<size_t>(length));
    p_ += static_cast<size_t>(length);
    push(v);
  }
  Value* pop(size_t at) {
    if (stack_.empty() || stack_.back()->kind == Value::Mark) fail(at, "pop from an empty stack");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top(size_t at) {
    if (stack_.empty() || stack_.back()->kind == Value::Mark) fail(at, "no object on the stack");
    return stack_.back();
  }
  std::vector<Value*> pop_to_mark(size_t at) {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1]->kind != Value::Mark) --m;
    if (m == 0) fail(at, "no MARK on the stack");
    std::vector<Value*> items(stack_.begin() + m, stack_.end());
    stack_.resize(m - 1);
    return items;
  }
  void append(Value* list, const std::vector<Value*>& values, size_t at) {
    if (list->kind != Value::List) fail(at, "APPEND to something that is not a list");
    list->items.insert(list->items.end(), values.begin(), values.end());
  }
  void set_items(Value* dict, const std::vector<Value*>& kv, size_t at) {
    if (dict->kind != Value::Dict || kv.size() % 2) fail(at, "SETITEMS to something that is not a dict");
    dict->items.insert(dict->items.end(), kv.begin(), kv.end());
  }
  void memo_put(uint64_t index, size_t at) {
    if (index >= kMaxMemo) fail(at, "memo index too large");
    if (index >= memo_.size()) memo_.resize(static_cast<size_t>(index) + 1, nullptr);
    memo_[static_cast<size_t>(index)] = top(at);
  }
  Value* memo_get(uint64_t index, size_t at) {
    if (index >= memo_.size() || !memo_[static_cast<size_t>(index)]) fail(at, "memo entry " + std::to_string(index) + " was never stored");
    return memo_[static_cast<size_t>(index)];
  }

  const std::string& s_;
  size_t p_;
  const std::string& name_;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Value*> stack_;
  std::vector<Value*> memo_;
};

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
    if (!v || v->kind != Value::Reduced || !is_global(v->callable, "numpy dtype")) fail("an array's dtype is not numpy.dtype");
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
    if (!v || v->kind != Value::Reduced || !is_reconstruct(v->callable))
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
  Unpickler machine(bytes, header.data_offset, name);
  const Value* root = machine.run();
  return Interpreter{name}.dict(root);
}

std::string encode_npy_pickled_dict(const PickledArrays& arrays) {
  return npy_header_bytes("|O", {}) + NumpyPickler().finish(arrays);
}

}  // namespace clipes

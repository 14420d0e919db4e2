#include "clipes/io/pickle_machine.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "clipes/util/error.h"

namespace clipes {
namespace {
// Enough for numpy's arrays of any size and for a PyTorch-Lightning
// checkpoint's optimizer states; bounds what a hostile file makes us allocate.
constexpr size_t kMaxValues = 1 << 20;
constexpr size_t kMaxMemo = 1 << 20;
}  // namespace

class PickleMachine {
 public:
  PickleMachine(const std::string& bytes, size_t begin, const std::string& name, const PickleOptions& options)
      : s_(bytes), p_(begin), name_(name), options_(options) {}

  PickleDocument run() {
    while (true) {
      const size_t at = p_;
      const unsigned char op = byte();
      switch (op) {
        case 0x80: byte(); break;                         // PROTO n
        case 0x95: skip(8); break;                        // FRAME (protocol 4+): a length hint only
        case '.':                                         // STOP
          if (stack_.size() != 1 || stack_[0]->kind == PickleValue::Mark) fail(at, "STOP with a malformed stack");
          doc_.root_ = stack_[0];
          return std::move(doc_);
        case '(': push(make(PickleValue::Mark)); break;   // MARK
        case '0': pop(at); break;                         // POP
        case '1': pop_to_mark(at); break;                 // POP_MARK
        case '2': push(top(at)); break;                   // DUP
        case ')': push(make(PickleValue::Tuple)); break;  // EMPTY_TUPLE
        case 't': push(collection(PickleValue::Tuple, pop_to_mark(at))); break;
        case 0x85: case 0x86: case 0x87: {                // TUPLE1..3
          const size_t n = op - 0x84;
          if (stack_.size() < n) fail(at, "tuple of missing items");
          std::vector<PickleValue*> items(stack_.end() - n, stack_.end());
          for (PickleValue* v : items) if (v->kind == PickleValue::Mark) fail(at, "tuple of a mark");
          stack_.resize(stack_.size() - n);
          push(collection(PickleValue::Tuple, std::move(items)));
          break;
        }
        case ']': push(make(PickleValue::List)); break;   // EMPTY_LIST
        case '}': push(make(PickleValue::Dict)); break;   // EMPTY_DICT
        case 0x8f: push(make(PickleValue::Set)); break;   // EMPTY_SET
        case 'l': push(collection(PickleValue::List, pop_to_mark(at))); break;
        case 0x91: push(collection(PickleValue::Set, pop_to_mark(at))); break;  // FROZENSET
        case 'd': {
          PickleValue* d = collection(PickleValue::Dict, pop_to_mark(at));
          if (d->items.size() % 2) fail(at, "DICT of an odd number of items");
          push(d);
          break;
        }
        case 'a': { PickleValue* v = pop(at); append(top(at), {v}, at); break; }     // APPEND
        case 'e': { auto vs = pop_to_mark(at); append(top(at), vs, at); break; }     // APPENDS
        case 0x90: {                                                                  // ADDITEMS
          auto vs = pop_to_mark(at);
          PickleValue* set = top(at);
          if (set->kind != PickleValue::Set) fail(at, "ADDITEMS to something that is not a set");
          set->items.insert(set->items.end(), vs.begin(), vs.end());
          break;
        }
        case 's': {                                                                   // SETITEM
          PickleValue* v = pop(at);
          PickleValue* k = pop(at);
          set_items(top(at), {k, v}, at);
          break;
        }
        case 'u': { auto kv = pop_to_mark(at); set_items(top(at), kv, at); break; }  // SETITEMS
        case 'N': push(make(PickleValue::None)); break;
        case 0x88: case 0x89: push_int(op == 0x88, PickleValue::Bool); break;       // NEWTRUE, NEWFALSE
        case 'K': push_int(byte()); break;                                          // BININT1
        case 'M': push_int(static_cast<int64_t>(unsigned_le(2))); break;            // BININT2
        case 'J': push_int(static_cast<int32_t>(static_cast<uint32_t>(unsigned_le(4)))); break;  // BININT
        case 0x8a: push_long(byte(), at); break;                                    // LONG1
        case 0x8b: push_long(unsigned_le(4), at); break;                            // LONG4
        case 'G': {                                                                 // BINFLOAT (big-endian)
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
          PickleValue* f = make(PickleValue::Float);
          std::memcpy(&f->real, &bits, sizeof bits);
          push(f);
          break;
        }
        case 'I': text_int(line(at), at); break;                                    // INT (protocol 0; "01"/"00" are bools)
        case 'L': {                                                                 // LONG (protocol 0)
          std::string t = line(at);
          if (!t.empty() && t.back() == 'L') t.pop_back();
          text_int(t, at);
          break;
        }
        case 'F': {                                                                 // FLOAT (protocol 0)
          const std::string t = line(at);
          char* end = nullptr;
          PickleValue* f = make(PickleValue::Float);
          f->real = std::strtod(t.c_str(), &end);
          if (t.empty() || *end) fail(at, "FLOAT that is not a number");
          push(f);
          break;
        }
        case 'X': push_text(PickleValue::Str, unsigned_le(4), at); break;          // BINUNICODE
        case 0x8c: push_text(PickleValue::Str, byte(), at); break;                 // SHORT_BINUNICODE
        case 0x8d: push_text(PickleValue::Str, unsigned_le(8), at); break;         // BINUNICODE8
        case 'T': push_text(PickleValue::Bytes, unsigned_le(4), at); break;        // BINSTRING (py2 str)
        case 'U': push_text(PickleValue::Bytes, byte(), at); break;                // SHORT_BINSTRING
        case 'C': push_text(PickleValue::Bytes, byte(), at); break;                // SHORT_BINBYTES
        case 'B': push_text(PickleValue::Bytes, unsigned_le(4), at); break;        // BINBYTES
        case 0x8e: case 0x96: push_text(PickleValue::Bytes, unsigned_le(8), at); break;  // BINBYTES8, BYTEARRAY8
        case 'V': {                                                                 // UNICODE (protocol 0, raw-unicode-escape)
          PickleValue* v = make(PickleValue::Str);
          v->text = line(at);
          push(v);
          break;
        }
        case 'c': {                                                                 // GLOBAL module\nname\n
          const std::string module = line(at), attr = line(at);
          push(global(module + " " + attr));
          break;
        }
        case 0x93: {                                                                // STACK_GLOBAL
          PickleValue* attr = pop(at);
          PickleValue* module = pop(at);
          if (module->kind != PickleValue::Str || attr->kind != PickleValue::Str) fail(at, "STACK_GLOBAL of non-strings");
          push(global(module->text + " " + attr->text));
          break;
        }
        case 'p': memo_put(text_index(line(at), at), at); break;                   // PUT (protocol 0)
        case 'q': memo_put(byte(), at); break;                                      // BINPUT
        case 'r': memo_put(unsigned_le(4), at); break;                              // LONG_BINPUT
        case 0x94: memo_put(memo_.size(), at); break;                               // MEMOIZE
        case 'g': push(memo_get(text_index(line(at), at), at)); break;             // GET (protocol 0)
        case 'h': push(memo_get(byte(), at)); break;                                // BINGET
        case 'j': push(memo_get(unsigned_le(4), at)); break;                        // LONG_BINGET
        case 'R': {                                                                 // REDUCE
          PickleValue* args = pop(at);
          PickleValue* callable = pop(at);
          if (args->kind != PickleValue::Tuple) fail(at, "REDUCE arguments are not a tuple");
          push(call(callable, args));
          break;
        }
        case 0x81: {                                                                // NEWOBJ: cls.__new__(cls, *args)
          PickleValue* args = pop(at);
          PickleValue* cls = pop(at);
          if (args->kind != PickleValue::Tuple) fail(at, "NEWOBJ arguments are not a tuple");
          push(call(cls, args));
          break;
        }
        case 0x92: {                                                                // NEWOBJ_EX: keyword arguments dropped
          pop(at);
          PickleValue* args = pop(at);
          PickleValue* cls = pop(at);
          if (args->kind != PickleValue::Tuple) fail(at, "NEWOBJ_EX arguments are not a tuple");
          push(call(cls, args));
          break;
        }
        case 'o': {                                                                 // OBJ: MARK cls args... (protocol 1)
          auto items = pop_to_mark(at);
          if (items.empty()) fail(at, "OBJ without a class");
          PickleValue* cls = items.front();
          items.erase(items.begin());
          push(call(cls, collection(PickleValue::Tuple, std::move(items))));
          break;
        }
        case 'i': {                                                                 // INST module\nname\n (protocol 0)
          const std::string module = line(at), attr = line(at);
          push(call(global(module + " " + attr), collection(PickleValue::Tuple, pop_to_mark(at))));
          break;
        }
        case 'b': {                                                                 // BUILD: state kept, nothing run
          PickleValue* state = pop(at);
          PickleValue* obj = top(at);
          if (obj->kind != PickleValue::Object && obj->kind != PickleValue::Dict)
            fail(at, "BUILD of something that is not an object");
          if (!obj->state) obj->state = state;
          break;
        }
        case 'Q': persistent_id(pop(at), at); break;                               // BINPERSID
        case 'P': {                                                                 // PERSID (protocol 0)
          PickleValue* id = make(PickleValue::Str);
          id->text = line(at);
          persistent_id(id, at);
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(at, std::string("pickle opcode ") + hex + " is not supported (extension registry or out-of-band buffer)");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& problem) const {
    throw file_error(name_, "bad " + options_.what + " at byte " + std::to_string(at) + ": " + problem);
  }
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
    if (end == std::string::npos || end - p_ > 4096) fail(at, "text argument without a short newline-ended line");
    std::string out = s_.substr(p_, end - p_);
    p_ = end + 1;
    return out;
  }
  PickleValue* make(PickleValue::Kind kind) {
    if (doc_.arena_.size() >= kMaxValues) fail(p_, "too many objects");
    doc_.arena_.push_back(std::make_unique<PickleValue>());
    doc_.arena_.back()->kind = kind;
    return doc_.arena_.back().get();
  }
  PickleValue* collection(PickleValue::Kind kind, std::vector<PickleValue*> items) {
    PickleValue* v = make(kind);
    v->items = std::move(items);
    return v;
  }
  PickleValue* global(const std::string& name) {
    PickleValue* g = make(PickleValue::Global);
    g->text = name;
    return g;
  }
  // callable(*args), not run. A dict-building global gives a dict so that
  // SETITEMS can fill it; its arguments (an item list, rare) are ignored.
  PickleValue* call(PickleValue* callable, PickleValue* args) {
    if (callable->kind == PickleValue::Global)
      for (const std::string& g : options_.dict_globals)
        if (callable->text == g) return make(PickleValue::Dict);
    PickleValue* o = make(PickleValue::Object);
    o->callable = callable;
    o->args = args;
    return o;
  }
  void persistent_id(PickleValue* id, size_t at) {
    if (!options_.persistent_ids) fail(at, "persistent id in a pickle that should have none");
    PickleValue* v = make(PickleValue::PersistentId);
    v->args = id;
    push(v);
  }
  void push(PickleValue* v) { stack_.push_back(v); }
  void push_int(int64_t v, PickleValue::Kind kind = PickleValue::Int) {
    PickleValue* i = make(kind);
    i->number = v;
    push(i);
  }
  void push_long(uint64_t n, size_t at) {
    if (n > 8) fail(at, "integer wider than 64 bits");
    uint64_t v = unsigned_le(static_cast<size_t>(n));
    if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    push_int(static_cast<int64_t>(v));
  }
  void text_int(const std::string& t, size_t at) {
    if (t == "00" || t == "01") return push_int(t == "01", PickleValue::Bool);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(t.c_str(), &end, 10);
    if (t.empty() || *end || errno) fail(at, "INT that is not a 64-bit integer");
    push_int(v);
  }
  uint64_t text_index(const std::string& t, size_t at) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(t.c_str(), &end, 10);
    if (t.empty() || *end || t[0] == '-') fail(at, "memo index that is not a number");
    return v;
  }
  void push_text(PickleValue::Kind kind, uint64_t length, size_t at) {
    if (length > s_.size() - p_) fail(at, "string or bytes longer than the file");
    PickleValue* v = make(kind);
    v->text = s_.substr(p_, static_cast<size_t>(length));
    p_ += static_cast<size_t>(length);
    push(v);
  }
  PickleValue* pop(size_t at) {
    if (stack_.empty() || stack_.back()->kind == PickleValue::Mark) fail(at, "pop from an empty stack");
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleValue* top(size_t at) {
    if (stack_.empty() || stack_.back()->kind == PickleValue::Mark) fail(at, "no object on the stack");
    return stack_.back();
  }
  std::vector<PickleValue*> pop_to_mark(size_t at) {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1]->kind != PickleValue::Mark) --m;
    if (m == 0) fail(at, "no MARK on the stack");
    std::vector<PickleValue*> items(stack_.begin() + m, stack_.end());
    stack_.resize(m - 1);
    return items;
  }
  // Lists, and objects of list subclasses (their items are kept with them).
  void append(PickleValue* list, const std::vector<PickleValue*>& values, size_t at) {
    if (list->kind != PickleValue::List && list->kind != PickleValue::Object)
      fail(at, "APPEND to something that is not a list");
    list->items.insert(list->items.end(), values.begin(), values.end());
  }
  void set_items(PickleValue* dict, const std::vector<PickleValue*>& kv, size_t at) {
    if ((dict->kind != PickleValue::Dict && dict->kind != PickleValue::Object) || kv.size() % 2)
      fail(at, "SETITEMS to something that is not a dict");
    dict->items.insert(dict->items.end(), kv.begin(), kv.end());
  }
  void memo_put(uint64_t index, size_t at) {
    if (index >= kMaxMemo) fail(at, "memo index too large");
    if (index >= memo_.size()) memo_.resize(static_cast<size_t>(index) + 1, nullptr);
    memo_[static_cast<size_t>(index)] = top(at);
  }
  PickleValue* memo_get(uint64_t index, size_t at) {
    if (index >= memo_.size() || !memo_[static_cast<size_t>(index)])
      fail(at, "memo entry " + std::to_string(index) + " was never stored");
    return memo_[static_cast<size_t>(index)];
  }

  const std::string& s_;
  size_t p_;
  const std::string& name_;
  const PickleOptions& options_;
  PickleDocument doc_;
  std::vector<PickleValue*> stack_;
  std::vector<PickleValue*> memo_;
};

PickleDocument unpickle(const std::string& bytes, size_t begin, const std::string& name, const PickleOptions& options) {
  return PickleMachine(bytes, begin, name, options).run();
}

}  // namespace clipes

// CLIP BPE tokenizer (spec §2). The reference is OpenAI's simple_tokenizer.py;
// every step below mirrors one of its steps so that ids match exactly.
#include "clipes/text/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <libxml/HTMLparser.h>
#include <pcre2.h>
#include <zlib.h>

#include <algorithm>
#include <clocale>
#include <cwctype>
#include <limits>
#include <locale.h>
#include <map>
#include <set>
#include <sstream>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/strings.h"

namespace clipes {
namespace {

// CLIP keeps 49152 - 256 - 2 merges so that bytes (256), bytes+</w> (256),
// merges and the two special tokens add up to 49408 (spec §2).
constexpr size_t kClipMerges = 49152 - 256 - 2;
const char* const kSot = "<|startoftext|>";
const char* const kEot = "<|endoftext|>";

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes UTF-8 into code points; invalid bytes become U+FFFD (Python would
// have rejected them earlier, when the text became a str).
std::vector<uint32_t> utf8_code_points(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

// GPT-2/CLIP byte→unicode table: printable Latin-1 bytes map to themselves,
// the rest to U+0100 upwards, so BPE works on printable strings. The ORDER of
// this table is the order of the first 256 vocabulary entries.
std::vector<std::pair<int, uint32_t>> bytes_to_unicode_ordered() {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<std::pair<int, uint32_t>> table;
  for (int b : bs) table.emplace_back(b, static_cast<uint32_t>(b));
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) table.emplace_back(b, 256 + n++);
  return table;
}

const std::vector<std::string>& byte_encoder() {
  static const std::vector<std::string> encoder = [] {
    std::vector<std::string> e(256);
    for (auto [b, cp] : bytes_to_unicode_ordered()) append_utf8(e[b], cp);
    return e;
  }();
  return encoder;
}

// One compiled PCRE2 pattern, shared; match data is per call (thread-safe).
class Regex {
 public:
  Regex(const char* pattern, uint32_t flags) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                          flags | PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
    if (!code_) throw Error(std::string("tokenizer: cannot compile pattern ") + pattern);
  }
  ~Regex() { pcre2_code_free(code_); }
  // All non-overlapping matches, like Python's re.findall.
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const {
    std::vector<std::pair<size_t, size_t>> spans;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0;
    while (start <= text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                           start == 0 ? 0 : PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] == ov[0]) {  // empty match: step one code point
        start = ov[1] + 1;
        while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
        continue;
      }
      spans.emplace_back(ov[0], ov[1]);
      start = ov[1];
    }
    pcre2_match_data_free(md);
    return spans;
  }

 private:
  pcre2_code* code_ = nullptr;
};

const Regex& clip_pattern() {
  // spec §2, case-insensitive; \p{L}/\p{N} need UCP.
  static const Regex re(
      R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)",
      PCRE2_CASELESS);
  return re;
}

// Python's str.split()/strip() and re's \s use Unicode whitespace.
std::string collapse_whitespace(const std::string& text) {
  static const Regex ws(R"(\s+)", 0);
  std::string out;
  size_t prev = 0;
  for (auto [b, e] : ws.find_all(text)) {
    out.append(text, prev, b - prev);
    out += ' ';
    prev = e;
  }
  out.append(text, prev, std::string::npos);
  // strip: a leading/trailing run has become one space.
  size_t first = out.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  size_t last = out.find_last_not_of(' ');
  return out.substr(first, last - first + 1);
}

// Python's html.unescape: numeric references and named entities. Named ones
// come from libxml2's HTML entity table (HTML 4: the entities real prompts
// and captions use); the trailing ';' is required except for the four that
// HTML parsers accept bare (amp, lt, gt, quot).
std::string html_unescape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '&') {
      out += text[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < text.size() && text[j] == '#') {
      bool hex = j + 1 < text.size() && (text[j + 1] == 'x' || text[j + 1] == 'X');
      size_t k = j + (hex ? 2 : 1), d = k;
      while (d < text.size() && (hex ? std::isxdigit(static_cast<unsigned char>(text[d]))
                                     : std::isdigit(static_cast<unsigned char>(text[d]))))
        ++d;
      if (d > k && d - k <= 8) {
        uint32_t cp = static_cast<uint32_t>(std::stoul(text.substr(k, d - k), nullptr, hex ? 16 : 10));
        if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
        append_utf8(out, cp);
        i = d < text.size() && text[d] == ';' ? d + 1 : d;
        continue;
      }
    } else {
      size_t k = j;
      while (k < text.size() && std::isalnum(static_cast<unsigned char>(text[k])) && k - j < 32) ++k;
      std::string name = text.substr(j, k - j);
      bool semi = k < text.size() && text[k] == ';';
      bool bare_ok = name == "amp" || name == "lt" || name == "gt" || name == "quot";
      if (!name.empty() && (semi || bare_ok)) {
        const htmlEntityDesc* e = htmlEntityLookup(reinterpret_cast<const xmlChar*>(name.c_str()));
        if (name == "apos") {
          out += '\'';
          i = k + 1;
          continue;
        }
        if (e) {
          append_utf8(out, e->value);
          i = semi ? k + 1 : k;
          continue;
        }
      }
    }
    out += text[i++];
  }
  return out;
}

// Python's str.lower(): per code point, through the C.UTF-8 locale's Unicode
// case tables (locale-independent of the user's environment).
std::string unicode_lower(const std::string& text) {
  static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  std::string out;
  out.reserve(text.size());
  for (uint32_t cp : utf8_code_points(text)) {
    if (cp < 0x80) {
      out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    } else {
      uint32_t lower = utf8 ? static_cast<uint32_t>(towlower_l(static_cast<wint_t>(cp), utf8)) : cp;
      append_utf8(out, lower);
    }
  }
  return out;
}

// The whole decompressed file. Strict on purpose: zlib reports a stream that
// stops early as Z_BUF_ERROR after handing out everything before the cut, and
// a vocabulary cut in half still "works" — it tokenizes rare words wrongly
// with no error anywhere. gzopen() would also read a file that is not gzip at
// all as plain bytes ("transparent" mode); the official file is gzip.
std::string read_gzip(const std::string& path) {
  const std::string compressed = read_file(path);
  if (compressed.size() < 18 || static_cast<unsigned char>(compressed[0]) != 0x1f ||
      static_cast<unsigned char>(compressed[1]) != 0x8b)
    throw file_error(path, "not a gzip file (expected the gzipped BPE vocabulary, e.g. bpe_simple_vocab_16e6.txt.gz)");
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) throw file_error(path, "cannot initialise zlib");
  std::string data;
  char buf[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  z.avail_in = static_cast<uInt>(compressed.size());
  int rc = Z_OK;
  // Members one after another (gzip allows concatenation), each to its end.
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    data.append(buf, sizeof buf - z.avail_out);
    if (data.size() > (size_t{64} << 20)) rc = Z_MEM_ERROR;  // the real one is 1.4 MB unpacked
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      if (inflateReset(&z) != Z_OK) break;
      continue;
    }
    if (rc != Z_OK) break;
  }
  const std::string zmsg = z.msg ? z.msg : "";
  inflateEnd(&z);
  if (rc == Z_STREAM_END) return data;
  if (rc == Z_BUF_ERROR || rc == Z_OK)
    throw file_error(path, "truncated gzip (the compressed stream ends early; the file is incomplete)");
  if (rc == Z_MEM_ERROR) throw file_error(path, "decompresses to more than 64 MB; not a BPE vocabulary");
  throw file_error(path, "corrupt gzip (" + (zmsg.empty() ? "zlib error " + std::to_string(rc) : zmsg) + ")");
}

}  // namespace

BpeTokenizer BpeTokenizer::from_file(const std::string& vocab_gz_path) {
  return from_vocab_text(read_gzip(vocab_gz_path), vocab_gz_path);
}

BpeTokenizer BpeTokenizer::from_vocab_text(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  std::string line;
  // The official file's first line is '"bpe_simple_vocab_16e6.txt#version: 0.2'
  // (a tar-style name before the version tag); ours write "#version: 0.2".
  if (!std::getline(lines, line) || line.find("#version:") == std::string::npos)
    throw file_error(name, "not a CLIP BPE vocabulary (the first line has no \"#version:\" tag)");
  std::vector<BpeMerge> merges;
  size_t line_number = 1;
  while (merges.size() < kClipMerges && std::getline(lines, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() ||
        line.find(' ', sp + 1) != std::string::npos)
      throw file_error(name, "line " + std::to_string(line_number) +
                                 " is not a merge \"a b\": " + printable(line.substr(0, 60)));
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  if (merges.empty()) throw file_error(name, "vocabulary has no merges");
  return BpeTokenizer(std::move(merges));
}

BpeTokenizer::BpeTokenizer(std::vector<BpeMerge> merges) {
  std::vector<std::string> symbols;
  for (auto [b, cp] : bytes_to_unicode_ordered()) {
    std::string s;
    append_utf8(s, cp);
    symbols.push_back(s);
  }
  vocab_ = symbols;
  for (const auto& s : symbols) vocab_.push_back(s + "</w>");
  for (size_t r = 0; r < merges.size(); ++r) {
    vocab_.push_back(merges[r].first + merges[r].second);
    ranks_[merges[r].first + " " + merges[r].second] = static_cast<int>(r);  // dict(): last wins
  }
  vocab_.push_back(kSot);
  vocab_.push_back(kEot);
  // Later duplicates never win: Python builds dict(zip(vocab, range)), where a
  // repeated key keeps its LAST index — mirror that.
  for (size_t i = 0; i < vocab_.size(); ++i) encoder_[vocab_[i]] = static_cast<int64_t>(i);
}

BpeTokenizer::BpeTokenizer(BpeTokenizer&& other) noexcept
    : vocab_(std::move(other.vocab_)),
      encoder_(std::move(other.encoder_)),
      ranks_(std::move(other.ranks_)),
      cache_(std::move(other.cache_)) {}

BpeTokenizer::~BpeTokenizer() = default;

std::string BpeTokenizer::clean(const std::string& text) {
  // basic_clean (ftfy is a no-op for prompts, spec §2) then whitespace_clean, then lower.
  std::string s = html_unescape(html_unescape(text));
  return unicode_lower(collapse_whitespace(s));
}

std::vector<std::string> BpeTokenizer::pre_tokenize(const std::string& cleaned) {
  std::vector<std::string> pieces;
  for (auto [b, e] : clip_pattern().find_all(cleaned)) pieces.push_back(cleaned.substr(b, e - b));
  return pieces;
}

// Splits a byte-unicode string into its symbols (one code point each).
static std::vector<std::string> code_point_strings(const std::string& s) {
  std::vector<std::string> out;
  for (uint32_t cp : utf8_code_points(s)) {
    std::string c;
    append_utf8(c, cp);
    out.push_back(c);
  }
  return out;
}

std::vector<std::string> BpeTokenizer::bpe(const std::string& token) const {
  if (token == kSot || token == kEot) return {token};
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(token);
    if (it != cache_.end()) return it->second;
  }
  std::vector<std::string> word = code_point_strings(token);
  word.back() += "</w>";
  // Repeatedly merge the adjacent pair with the lowest rank (simple_tokenizer.bpe).
  while (word.size() > 1) {
    int best_rank = std::numeric_limits<int>::max();
    std::string first, second;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks_.find(word[i] + " " + word[i + 1]);
      if (it != ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        first = word[i];
        second = word[i + 1];
      }
    }
    if (best_rank == std::numeric_limits<int>::max()) break;
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word = std::move(merged);
  }
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_.emplace(token, word);
  return word;
}

std::vector<int64_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  const auto& bytes = byte_encoder();
  // Python would have refused bytes that are not UTF-8 before the tokenizer
  // saw them; here each bad byte becomes U+FFFD first. Unchecked, one bad
  // byte swallowed the characters after it, and a surrogate made PCRE2's UTF
  // check fail, so the whole text silently encoded to no tokens at all.
  for (const std::string& piece : pre_tokenize(clean(to_valid_utf8(text)))) {
    std::string symbols;
    for (unsigned char c : piece) symbols += bytes[c];
    for (const std::string& sym : bpe(symbols)) {
      auto it = encoder_.find(sym);
      if (it == encoder_.end()) throw Error("tokenizer: symbol \"" + sym + "\" is not in the vocabulary");
      ids.push_back(it->second);
    }
  }
  return ids;
}

std::vector<int64_t> BpeTokenizer::encode_for_model(const std::string& text, int context_length,
                                                    bool truncate) const {
  std::vector<int64_t> ids = encode(text);
  ids.insert(ids.begin(), sot_token());
  ids.push_back(eot_token());
  if (static_cast<int>(ids.size()) > context_length) {
    if (!truncate)
      throw Error("text \"" + text + "\" is " + std::to_string(ids.size()) +
                  " tokens long, more than the context length " + std::to_string(context_length));
    ids.resize(static_cast<size_t>(context_length));
    ids.back() = eot_token();
  }
  ids.resize(static_cast<size_t>(context_length), 0);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  static const std::map<std::string, unsigned char> byte_decoder = [] {
    std::map<std::string, unsigned char> d;
    const auto& e = byte_encoder();
    for (int b = 0; b < 256; ++b) d[e[b]] = static_cast<unsigned char>(b);
    return d;
  }();
  std::string joined;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw Error("tokenizer: id " + std::to_string(id) + " is out of range");
    joined += vocab_[static_cast<size_t>(id)];
  }
  // "</w>" marks word ends → spaces; then map byte-unicode symbols back to bytes.
  std::string text;
  for (size_t pos = 0;;) {
    size_t w = joined.find("</w>", pos);
    text += joined.substr(pos, w == std::string::npos ? std::string::npos : w - pos);
    if (w == std::string::npos) break;
    text += ' ';
    pos = w + 4;
  }
  std::string out;
  for (const std::string& sym : code_point_strings(text)) {
    auto it = byte_decoder.find(sym);
    if (sym == " ") out += ' ';
    else if (it != byte_decoder.end()) out += static_cast<char>(it->second);
    else out += sym;  // special tokens' characters pass through
  }
  return out;
}

std::vector<BpeMerge> BpeTokenizer::learn_merges(const std::vector<std::string>& texts, int num_merges) {
  // Word frequencies over the same pre-tokenisation the encoder uses.
  std::map<std::vector<std::string>, int64_t> words;
  const auto& bytes = byte_encoder();
  for (const auto& t : texts) {
    for (const std::string& piece : pre_tokenize(clean(t))) {
      std::string symbols;
      for (unsigned char c : piece) symbols += bytes[c];
      auto w = code_point_strings(symbols);
      w.back() += "</w>";
      ++words[w];
    }
  }
  std::vector<BpeMerge> merges;
  std::set<std::string> known;  // merged symbols already in the vocabulary
  while (static_cast<int>(merges.size()) < num_merges) {
    std::map<BpeMerge, int64_t> counts;  // ordered: ties break lexicographically
    for (const auto& [w, f] : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) counts[{w[i], w[i + 1]}] += f;
    const BpeMerge* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [pair, c] : counts)
      if (c > best_count) best = &pair, best_count = c;
    if (!best) break;
    BpeMerge m = *best;
    merges.push_back(m);
    std::map<std::vector<std::string>, int64_t> next;
    for (const auto& [w, f] : words) {
      std::vector<std::string> nw;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == m.first && w[i + 1] == m.second) {
          nw.push_back(m.first + m.second);
          i += 2;
        } else {
          nw.push_back(w[i++]);
        }
      }
      next[nw] += f;
    }
    words = std::move(next);
  }
  return merges;
}

void BpeTokenizer::write_vocab_file(const std::string& path, const std::vector<BpeMerge>& merges) {
  std::string text = "#version: 0.2\n";
  for (const auto& [a, b] : merges) text += a + " " + b + "\n";
  // gzip to a temp name, then rename (atomic, like every output).
  std::string tmp = path + ".tmp";
  gzFile f = gzopen(tmp.c_str(), "wb9");
  if (!f) throw file_error(path, "cannot write vocabulary");
  bool ok = gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size());
  ok = gzclose(f) == Z_OK && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw file_error(path, "cannot write vocabulary");
  }
}

}  // namespace clipes

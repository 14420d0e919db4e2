// BpeTokenizer — CLIP's byte-level BPE tokenizer (spec §2), the same ids as
// OpenAI's simple_tokenizer for the official vocabulary file
// bpe_simple_vocab_16e6.txt.gz, or for any vocabulary in that format (the toy
// model ships a small one).
//
// Pipeline: clean (HTML-unescape twice, collapse whitespace, lower-case) →
// pre-tokenise with CLIP's Unicode regex (PCRE2, UCP) → UTF-8 bytes mapped to
// printable "byte-unicode" symbols → BPE merges by rank, the last symbol of a
// word carrying "</w>".
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace clipes {

using BpeMerge = std::pair<std::string, std::string>;

class BpeTokenizer {
 public:
  // Reads a gzip vocabulary: a version header line, then merges "a b".
  // The official file has more lines than CLIP uses; only the first
  // 49152-256-2 merges count (spec §2). Throws clipes::Error naming the file
  // for anything but a complete, intact gzip stream (a truncated download is
  // an error, not half a vocabulary), a missing "#version:" header line or a
  // line that is not a merge. Whether the size fits a model is the caller's
  // check (vocab_size() against the token embedding).
  static BpeTokenizer from_file(const std::string& vocab_gz_path);
  // The same from the decompressed text; `name` is the file errors mention.
  static BpeTokenizer from_vocab_text(const std::string& text, const std::string& name);
  // From merges in memory (ids: 256 bytes, 256 bytes+</w>, merges, SOT, EOT).
  explicit BpeTokenizer(std::vector<BpeMerge> merges);

  BpeTokenizer(BpeTokenizer&& other) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) = delete;
  ~BpeTokenizer();

  // Ids of `text` without start/end tokens.
  std::vector<int64_t> encode(const std::string& text) const;
  // [SOT] + ids + [EOT], zero-padded to context_length. Longer is an error
  // naming the text, unless truncate (the last kept token is then EOT).
  std::vector<int64_t> encode_for_model(const std::string& text, int context_length = 77,
                                        bool truncate = false) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t sot_token() const { return static_cast<int64_t>(vocab_.size()) - 2; }
  int64_t eot_token() const { return static_cast<int64_t>(vocab_.size()) - 1; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }

  // The cleaning step alone (spec §2), exposed for tests and the vocabulary learner.
  static std::string clean(const std::string& text);
  // Cleaned text split by CLIP's pre-tokenisation pattern.
  static std::vector<std::string> pre_tokenize(const std::string& cleaned);

  // Learns `num_merges` BPE merges from texts (standard BPE: repeatedly merge
  // the most frequent adjacent pair; ties broken lexicographically, so it is
  // deterministic). For building small vocabularies (toy model).
  static std::vector<BpeMerge> learn_merges(const std::vector<std::string>& texts, int num_merges);
  // Writes merges as a gzip vocabulary file in the official format.
  static void write_vocab_file(const std::string& path, const std::vector<BpeMerge>& merges);

 private:
  std::vector<std::string> bpe(const std::string& word) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> encoder_;
  std::unordered_map<std::string, int> ranks_;  // "a b" → rank
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache_;
};

}  // namespace clipes

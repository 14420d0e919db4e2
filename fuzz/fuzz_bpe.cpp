// libFuzzer harness: CLIP's BPE tokenizer (src/text/bpe_tokenizer.cpp) on
// arbitrary bytes — HTML unescaping, whitespace collapsing, lower-casing,
// the PCRE2 pre-tokeniser and the merges — with the official vocabulary.
//
// The vocabulary: $CLIPES_FUZZ_VOCAB, else ../shared/fixtures/clip/
// bpe_simple_vocab_16e6.txt.gz relative to the current folder (scripts/fuzz.sh
// runs from the repository root). It is reloaded every few thousand inputs
// because the tokenizer's word cache grows without bound (as OpenAI's does)
// and would otherwise reach the fuzzer's memory limit.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/error.h"

namespace {

std::string vocab_path() {
  const char* env = std::getenv("CLIPES_FUZZ_VOCAB");
  return env && *env ? env : "../shared/fixtures/clip/bpe_simple_vocab_16e6.txt.gz";
}

std::unique_ptr<clipes::BpeTokenizer> load() {
  try {
    return std::make_unique<clipes::BpeTokenizer>(clipes::BpeTokenizer::from_file(vocab_path()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_bpe: cannot load the vocabulary (set CLIPES_FUZZ_VOCAB): %s\n", e.what());
    std::exit(2);
  }
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<clipes::BpeTokenizer> tok = load();
  static int runs = 0;
  if (++runs % 20000 == 0) tok = load();
  const std::string text(reinterpret_cast<const char*>(data), size);
  // With the full vocabulary every byte and every merge result has an id, so
  // encode must not throw at all: any exception escapes and is a finding.
  const std::vector<int64_t> ids = tok->encode(text);
  for (int64_t id : ids) check(id >= 0 && id < tok->vocab_size(), "id in range");
  (void)tok->decode(ids);
  const std::vector<int64_t> model = tok->encode_for_model(text, 77, /*truncate=*/true);
  check(model.size() == 77 && model[0] == tok->sot_token(), "encode_for_model shape");
  return 0;
}

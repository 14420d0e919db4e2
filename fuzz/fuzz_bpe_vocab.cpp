// libFuzzer harness: the BPE vocabulary text parser (BpeTokenizer::
// from_vocab_text) and the tokenizer built from whatever it accepts.
// Input: vocabulary text, optionally followed by a NUL byte and a text that
// the resulting tokenizer then encodes and decodes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string vocab = input.substr(0, nul);
  const std::string text = nul == std::string::npos ? "a photo of a cat" : input.substr(nul + 1);
  try {
    const clipes::BpeTokenizer tok = clipes::BpeTokenizer::from_vocab_text(vocab, "fuzz-vocab.txt");
    const std::vector<int64_t> ids = tok.encode(text);
    for (int64_t id : ids) {
      if (id < 0 || id >= tok.vocab_size()) {
        std::fprintf(stderr, "property violated: id %lld out of range\n", static_cast<long long>(id));
        std::abort();
      }
    }
    (void)tok.decode(ids);
  } catch (const clipes::Error&) {
    // Rejected vocabularies are fine; so is a symbol the vocabulary lacks.
  }
  return 0;
}

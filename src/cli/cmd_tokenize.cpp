// clipes tokenize — prints the CLIP BPE ids of each text (a debugging aid:
// check how a class name or prompt is split before blaming the model).
#include <iostream>

#include "clipes/text/bpe_tokenizer.h"
#include "command.h"

namespace clipes::cli {
namespace {

const bool registered = register_command({
    "tokenize", "print the CLIP BPE token ids of texts", [](CLI::App& sub) {
      struct Options {
        std::string vocab;
        std::vector<std::string> texts;
        bool model_input = false;
      };
      auto o = std::make_shared<Options>();
      sub.add_option("--vocab", o->vocab, "BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)")->required();
      sub.add_option("texts", o->texts, "texts to tokenize")->required();
      sub.add_flag("--model-input", o->model_input, "print [SOT] ids [EOT] padded to 77, as fed to the model");
      return [o]() {
        BpeTokenizer tokenizer = BpeTokenizer::from_file(o->vocab);
        for (const auto& text : o->texts) {
          auto ids = o->model_input ? tokenizer.encode_for_model(text) : tokenizer.encode(text);
          std::cout << text << "\t";
          for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
          std::cout << "\n";
        }
        return 0;
      };
    }});

}  // namespace
}  // namespace clipes::cli

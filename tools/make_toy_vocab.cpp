// make_toy_vocab — learns a small CLIP-format BPE vocabulary for the toy world
// (issue #6) from the dataset captions plus the class file's prompts, template
// and background words, so the normal BpeTokenizer reads it and the toy
// model's token embedding stays small.
//
//   make_toy_vocab --captions DIR/captions.txt --prompts prompts/toy.json --out models/toy-vocab.txt.gz
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <sstream>

#include "clipes/text/bpe_tokenizer.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"Learn a small BPE vocabulary from toy-world captions"};
  std::vector<std::string> caption_files;
  std::string prompts, out;
  // Enough for every word of the toy world to become one token (learning
  // stops early once no pair is left to merge).
  int max_merges = 1000;
  app.add_option("--captions", caption_files, "captions.txt files (id<TAB>caption per line)")->required();
  app.add_option("--prompts", prompts, "class file (prompts/toy.json)");
  app.add_option("--out", out, "output vocabulary (.txt.gz)")->required();
  app.add_option("--max-merges", max_merges, "upper bound on the number of merges");
  CLI11_PARSE(app, argc, argv);
  try {
    std::vector<std::string> texts;
    for (const auto& path : caption_files) {
      std::istringstream lines(clipes::read_file(path));
      for (std::string line; std::getline(lines, line);) {
        const auto tab = line.find('\t');
        if (tab == std::string::npos) throw clipes::file_error(path, "line without a tab: " + line);
        texts.push_back(line.substr(tab + 1));
      }
    }
    if (!prompts.empty()) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(clipes::read_file(prompts));
      } catch (const nlohmann::json::exception& e) {
        throw clipes::file_error(prompts, e.what());
      }
      const std::string templ = j.value("template", "a photo of a {}.");
      std::vector<std::string> words;
      for (const auto& c : j.at("classes")) {
        std::stringstream synonyms(c.at("prompt").get<std::string>());
        for (std::string s; std::getline(synonyms, s, ',');) words.push_back(s);
        words.push_back(c.at("prompt").get<std::string>());
      }
      for (const auto& b : j.value("background", std::vector<std::string>{})) words.push_back(b);
      for (const auto& w : words) {
        std::string t = templ;
        t.replace(t.find("{}"), 2, w);
        texts.push_back(t);
      }
    }
    const auto merges = clipes::BpeTokenizer::learn_merges(texts, max_merges);
    clipes::BpeTokenizer::write_vocab_file(out, merges);
    std::cerr << "make_toy_vocab: " << texts.size() << " texts, " << merges.size() << " merges, vocabulary size "
              << 512 + merges.size() + 2 << " → " << out << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "make_toy_vocab: error: " << e.what() << "\n";
    return 2;
  }
}

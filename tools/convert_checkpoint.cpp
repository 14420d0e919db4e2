// convert_checkpoint — rewrites a CLIP checkpoint in another of the formats
// clipes reads (model/checkpoint.h), e.g. to hand OpenAI weights to a
// safetensors-only tool, or to produce test files in every format.
//
//   convert_checkpoint --in ViT-B-16.pt --out vit.safetensors --format safetensors
//
// Weights keep their stored dtype; names and layouts follow the target format.
#include <CLI/CLI.hpp>

#include <iostream>

#include "clipes/model/checkpoint.h"
#include "clipes/util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"convert_checkpoint — rewrite a CLIP checkpoint in another format"};
  std::string in, out, format;
  app.add_option("--in", in, "input checkpoint (any format clipes reads)")->required();
  app.add_option("--out", out, "output file (written atomically)")->required();
  app.add_option("--format", format,
                 "openai (TorchScript archive), state-dict, state-dict-nested ({\"state_dict\": ...}), "
                 "state-dict-module (\"module.\" prefixes), safetensors (Hugging Face names)")
      ->required()
      ->check(CLI::IsMember({"openai", "state-dict", "state-dict-nested", "state-dict-module", "safetensors"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    using namespace clipes;
    const Checkpoint ckpt = load_checkpoint(in);
    if (format == "openai") {
      save_openai_torchscript(out, ckpt.tensors, ClipConfig::infer(ckpt.tensors, in));
    } else if (format == "safetensors") {
      save_hf_safetensors(out, ckpt.tensors);
    } else {
      StateDictLayout layout;
      layout.nested = format == "state-dict-nested";
      layout.module_prefix = format == "state-dict-module";
      save_state_dict(out, ckpt.tensors, layout);
    }
    std::cout << in << " (" << to_string(ckpt.format) << ") -> " << out << " (" << format << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "convert_checkpoint: error: " << e.what() << "\n";
    return 2;
  }
}

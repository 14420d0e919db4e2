// convert_checkpoint — rewrites a CLIP checkpoint in another of the formats
// clipes reads (model/checkpoint.h), e.g. to hand OpenAI weights to a
// safetensors-only tool, or to produce test files in every format.
//
//   convert_checkpoint --in ViT-B-16.pt --out vit.safetensors --format safetensors
//   convert_checkpoint --random-init vit-b-16 --out vit-random.pt --format openai
//
// --random-init writes a randomly initialised model of that size instead
// (OpenAI's init, seed 0, fp16 as OpenAI stores it): full-size memory and
// speed measurements on a machine that cannot download real weights.
//
// Weights keep their stored dtype; names and layouts follow the target format.
// A state dict does not record its MLP activation (segment-spec §0), so one
// written here gets an open_clip_config.json beside it saying which it is
// (from the input, or --activation); an existing one that disagrees is an error.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <optional>

#include "clipes/model/checkpoint.h"
#include "clipes/model/clip_config.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"convert_checkpoint — rewrite a CLIP checkpoint in another format"};
  std::string in, out, format, activation;
  std::string random_init;
  auto* in_opt = app.add_option("--in", in, "input checkpoint (any format clipes reads)");
  app.add_option("--random-init", random_init, "instead of --in: a randomly initialised model of this size")
      ->check(CLI::IsMember({"vit-b-16"}))
      ->excludes(in_opt);
  app.add_option("--out", out, "output file (written atomically)")->required();
  app.add_option("--format", format,
                 "openai (TorchScript archive), state-dict, state-dict-nested ({\"state_dict\": ...}), "
                 "state-dict-module (\"module.\" prefixes), safetensors (Hugging Face names)")
      ->required()
      ->check(CLI::IsMember({"openai", "state-dict", "state-dict-nested", "state-dict-module", "safetensors"}));
  app.add_option("--activation", activation, "gelu | quick-gelu, when the input does not say (state dicts)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    using namespace clipes;
    std::optional<Activation> act;
    if (!activation.empty()) act = parse_activation(activation);
    if (in.empty() == random_init.empty()) throw Error("give exactly one of --in and --random-init");
    Checkpoint ckpt;
    if (!random_init.empty()) {
      in = "random-init " + random_init;
      for (auto& [name, t] : random_clip_weights(ClipConfig::vit_b_16(), 0))
        ckpt.tensors[name] = name.find("ln_") == std::string::npos ? t.to(at::kHalf) : t;
      ckpt.activation = act.value_or(Activation::QuickGelu);
    } else {
      ckpt = load_checkpoint(in, act);
    }
    if (format == "openai") {
      save_openai_torchscript(out, ckpt.tensors, ClipConfig::infer(ckpt.tensors, in));
    } else if (format == "safetensors") {
      save_hf_safetensors(out, ckpt.tensors);
    } else {
      StateDictLayout layout;
      layout.nested = format == "state-dict-nested";
      layout.module_prefix = format == "state-dict-module";
      const std::string sidecar =
          (std::filesystem::path(out).parent_path() / "open_clip_config.json").string();
      std::error_code ec;
      if (std::filesystem::exists(sidecar, ec)) {
        const auto there = activation_from_config_file(sidecar);
        if (there && *there != ckpt.activation)
          throw file_error(sidecar, "says " + to_string(*there) + ", but " + in + " uses " +
                                        to_string(ckpt.activation) + "; write the state dict to another folder");
      }
      save_state_dict(out, ckpt.tensors, layout);
      if (!std::filesystem::exists(sidecar, ec))
        write_file_atomic(sidecar, std::string("{\"model_cfg\": {\"quick_gelu\": ") +
                                       (ckpt.activation == Activation::QuickGelu ? "true" : "false") + "}}\n");
    }
    std::cout << in << (random_init.empty() ? " (" + to_string(ckpt.format) + ")" : std::string()) << " -> " << out
              << " (" << format << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "convert_checkpoint: error: " << e.what() << "\n";
    return 2;
  }
}

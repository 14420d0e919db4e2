// LSeg's command-line options, shared by `segment --method lseg` and
// `bench --method lseg`: --scales/--flip/--single-forward (the official
// evaluator's modes, docs/lseg.md) and --set vit_heads=N, turned into the
// library's LsegSettings + LsegSegmentOptions.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "clipes/methods/lseg_segmenter.h"
#include "clipes/model/lseg_config.h"

namespace clipes::cli {

// `--method lseg` is LSeg's own network, not a method on the CLIP trunk: it is
// not in the dense-method registry, and its options are checked here.
inline constexpr const char* kLsegMethod = "lseg";

struct LsegFlags {
  std::string scales = "1";
  bool flip = false, single_forward = false;
};
void add_lseg_flags(CLI::App& sub, LsegFlags& flags);
bool lseg_flags_given(const LsegFlags& flags);  // any of them away from its default

struct LsegCli {
  LsegSettings settings;
  LsegSegmentOptions options;
  nlohmann::json recorded = nlohmann::json::object();  // what enters settings.json (method_params)
};
// params: the --set KEY=VALUE list. Errors are clipes::Error naming the flag.
LsegCli parse_lseg_cli(const LsegFlags& flags, const std::vector<std::string>& params, double bg_threshold = -1);

}  // namespace clipes::cli

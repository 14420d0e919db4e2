#include "lseg_options.h"

#include "clipes/util/error.h"
#include "clipes/util/strings.h"

namespace clipes::cli {

void add_lseg_flags(CLI::App& sub, LsegFlags& f) {
  sub.add_option("--scales", f.scales,
                 "LSeg: scales of its evaluator (base 520, crop 480 windows), e.g. 0.5,0.75,1,1.25,1.5,1.75 as "
                 "LSeg_MultiEvalModule")
      ->capture_default_str();
  sub.add_flag("--flip", f.flip, "LSeg: add each window's mirrored forward (the official evaluator's flip)");
  sub.add_flag("--single-forward", f.single_forward,
               "LSeg: the network once on the image as it is (LSegNet.forward; sides multiples of 32)");
}

bool lseg_flags_given(const LsegFlags& f) { return f.flip || f.single_forward || f.scales != "1"; }

LsegCli parse_lseg_cli(const LsegFlags& f, const std::vector<std::string>& params, double bg_threshold) {
  LsegCli l;
  for (const std::string& kv : params) {
    const size_t eq = kv.find('=');
    const std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (key != "vit_heads" || value.empty())
      throw Error("--set " + printable(kv) + ": lseg takes vit_heads=N (ViT attention heads; default width/64)");
    try {
      l.settings.vit_heads = std::stoi(value);
    } catch (const std::exception&) {
      throw Error("--set vit_heads=" + printable(value) + ": expected a whole number");
    }
    if (l.settings.vit_heads <= 0) throw Error("--set vit_heads must be positive");
    l.recorded["vit_heads"] = l.settings.vit_heads;
  }
  l.options.single_forward = f.single_forward;
  l.options.bg_threshold = bg_threshold;
  l.options.evaluator.flip = f.flip;
  l.options.evaluator.scales.clear();
  for (const std::string& t : split_comma_list(f.scales)) {
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(t, &used);
      if (used != t.size()) throw std::invalid_argument(t);
    } catch (const std::exception&) {
      throw Error("--scales " + printable(f.scales) + ": expected numbers such as 0.5,0.75,1,1.25,1.5,1.75");
    }
    if (!(v > 0 && v <= 8)) throw Error("--scales: each scale must be in (0, 8]");
    l.options.evaluator.scales.push_back(v);
  }
  if (l.options.evaluator.scales.empty()) throw Error("--scales: give at least one scale");
  if (f.single_forward && (f.flip || f.scales != "1"))
    throw Error("--single-forward runs the network once on the image as it is: no --scales or --flip");
  return l;
}

}  // namespace clipes::cli

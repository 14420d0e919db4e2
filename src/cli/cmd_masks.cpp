// clipes masks --from SRC --out DST — masks and confidence maps re-made from
// the CAMs a `generate --save-cams` run saved, with another background rule,
// CAM kind or ignore level (pipeline/remask.h; issue 27 item 6). DST is a run
// of its own: run.json names SRC and carries its class set, label ids, image
// folder and input, so eval, visualize and export read DST like any run.
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>

#include "clipes/pipeline/remask.h"
#include "clipes/pipeline/run_record.h"
#include "clipes/text/class_config.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/json_text.h"
#include "clipes/util/strings.h"
#include "batch_command.h"
#include "command.h"
#include "graceful_stop.h"
#include "progress_bar.h"

namespace clipes::cli {
namespace {

namespace fs = std::filesystem;

struct MasksCli {
  std::string from, out;
  std::string cam_kind;  // "" = refined
  double bg_power = -1, bg_threshold = -2, ignore_below = -1;  // < the valid range: SRC's
  std::string mask_mode;                                       // "" = SRC's
  std::string shard = "0/1";
  int64_t limit = -1;
  bool no_resume = false, force_resume = false;
};

// A number of SRC's run.json config, or `fallback` when it has none.
double config_number(const nlohmann::json& config, const char* key, double fallback) {
  return config.contains(key) && config[key].is_number() ? config[key].get<double>() : fallback;
}

int run_masks(const MasksCli& o) {
  const GracefulStop stop_on_signals;  // SIGTERM/SIGINT: the images in flight finish, the run is recorded
  const std::optional<RunRecord> source = RunRecord::read(o.from);
  if (!source || !source->has_class_set)
    throw file_error(o.from, "no run.json with a class set here (masks --from needs the output folder of generate)");
  if (!source->command.empty() && source->command != "generate")
    throw file_error(source->path, "is a run of clipes " + source->command + "; masks --from re-makes generate's masks");
  const std::string cams_dir = (fs::path(o.from) / "cams").string();
  const std::vector<std::string> stems = stems_with_saved_cams(cams_dir);
  if (stems.empty())
    throw file_error(cams_dir, "no saved CAMs here (run generate with --save-cams to make masks from them later)");
  std::error_code ec;
  if (fs::exists(o.out, ec) && fs::equivalent(o.out, o.from, ec))
    throw Error("--out " + printable(o.out) + " is the source run itself; give a new folder");
  check_output_folder(o.out);

  const nlohmann::json& config = source->config;
  RemaskOptions options;
  options.cams_dir = cams_dir;
  options.unrefined = o.cam_kind == "cam";
  options.mask.bg_power = o.bg_power > 0 ? o.bg_power : config_number(config, "bg_power", 1.0);
  options.mask.bg_threshold = o.bg_threshold >= -1 ? o.bg_threshold : config_number(config, "bg_threshold", -1.0);
  // An explicit --bg-power replaces SRC's constant threshold, and the other way round.
  if (o.bg_power > 0 && o.bg_threshold < -1) options.mask.bg_threshold = -1.0;
  options.mask.ignore_below = o.ignore_below >= 0 ? o.ignore_below : config_number(config, "ignore_below", 0.0);
  const std::string mask_mode = !o.mask_mode.empty() ? o.mask_mode : config.value("mask_mode", std::string("palette"));
  options.write.palette = mask_mode != "grey";
  const ClassConfig classes = source->class_set();
  const auto ids = ClassConfig::parse_label_ids(source->label_ids);
  for (int i = 0; i < classes.num_classes(); ++i) options.value_of_class.push_back(classes.label_id(i, ids));
  options.batch.out_dir = o.out;
  options.batch.shard = ShardSpec::parse(o.shard);
  options.batch.limit = o.limit;
  options.batch.resume = !o.no_resume;

  nlohmann::json settings = {{"command", "masks"},
                             {"class_set", nlohmann::json::parse(classes.to_json_text())},
                             {"label_ids", source->label_ids},
                             {"cam_kind", options.unrefined ? "cam" : "refined"},
                             {"bg_power", options.mask.bg_power},
                             {"bg_threshold", options.mask.bg_threshold},
                             {"ignore_below", options.mask.ignore_below},
                             {"mask_mode", mask_mode}};
  put_bytes(settings, "source", fs::absolute(o.from).lexically_normal().string());
  const std::vector<std::string> forced = check_resume_settings(o.out, settings, o.no_resume, o.force_resume, false);
  const std::string started_at = now_utc_iso8601();

  spdlog::info("{} images with saved CAMs in {}; writing masks to {}", stems.size(), printable(cams_dir),
               printable(o.out));
  ProgressBar bar("masks");
  const BatchSummary s = remask_from_saved_cams(stems, options, [&](const BatchProgress& p) { bar.update(p); });
  bar.finish();

  nlohmann::json run = {{"clipes_version", CLIPES_VERSION},
                        {"command", "masks"},
                        {"config", settings},
                        {"input", source->input},
                        {"counts", counts_json(stems.size(), s)},
                        {"timings_s", batch_timings_json(s.wall_s, s)}};
  put_bytes(run, "source_run", fs::absolute(source->path).lexically_normal().string());
  put_bytes(run, "images_folder", source->images_folder);
  return finish_batch_run("masks", o.out, options.batch.shard, o.shard, std::move(run), {}, "", started_at, forced, s,
                          false);
}

const bool registered = register_command({
    "masks", "masks + confidence re-made from a generate run's saved CAMs (another threshold in seconds)",
    [](CLI::App& sub) {
      auto o = std::make_shared<MasksCli>();
      sub.add_option("--from", o->from, "the generate output folder with cams/ (--save-cams)")->required();
      sub.add_option("--out", o->out, "a new output folder: masks/, confidence/, run.json")->required();
      sub.add_option("--cam-kind", o->cam_kind, "refined (after CAA, default) | cam (before CAA: generate --no-caa)")
          ->check(CLI::IsMember({"refined", "cam"}));
      sub.add_option("--bg-power", o->bg_power, "background (1 − max CAM)^α, α > 0 (default: the source run's)")
          ->check(positive_real());
      sub.add_option("--bg-threshold", o->bg_threshold, "constant background score t in [0, 1] instead of the power")
          ->check(CLI::Range(0.0, 1.0));
      sub.add_option("--ignore-below", o->ignore_below, "write 255 where confidence < τ, τ in [0, 1]")
          ->check(CLI::Range(0.0, 1.0));
      sub.add_option("--mask-mode", o->mask_mode, "palette | grey (default: the source run's)")
          ->check(CLI::IsMember({"palette", "grey"}));
      sub.add_option("--shard", o->shard, "i/N: the i-th of N deterministic shards")->capture_default_str();
      sub.add_option("--limit", o->limit, "at most this many images, N ≥ 1 (default: all)")->check(count_at_least(1));
      sub.add_flag("--no-resume", o->no_resume, "recompute every image (and record the new settings)");
      sub.add_flag("--force-resume", o->force_resume, "keep masks made with other settings");
      return [o]() { return run_masks(*o); };
    }});

}  // namespace
}  // namespace clipes::cli

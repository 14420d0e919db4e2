// The CLI's plumbing: each command lives in its own cmd_<name>.cpp and
// registers itself here; main.cpp only parses and dispatches.
//
// Commands stay thin: parse options, call the library, print. Library code
// never prints (it throws clipes::Error or returns results).
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <string>
#include <vector>

#include "clipes/model/clip_model.h"
#include "clipes/pipeline/batch_runner.h"

namespace clipes { class BpeTokenizer; }

namespace clipes::cli {

struct Command {
  std::string name;
  std::string description;
  // Adds the subcommand's options to `sub` and returns the function to run
  // once parsing succeeded. Its return value is the exit code.
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

// --json means one thing in every command: write the command's result as
// JSON to PATH, or to stdout with "-" (or --json alone). When the JSON goes
// to stdout, the human-readable table does not, so stdout parses as JSON.
struct JsonOutput {
  std::string path;
  CLI::Option* option = nullptr;
  bool wanted() const { return option && option->count() > 0; }
  bool to_stdout() const { return wanted() && (path.empty() || path == "-"); }
};
void add_json_option(CLI::App& sub, JsonOutput& out, const std::string& what);
// Writes `j` where out says (atomically for a file); nothing if not wanted.
void write_json_output(const JsonOutput& out, const nlohmann::json& j);
// -q: errors only, and no human-readable tables on stdout either.
bool quiet_output();
void set_quiet_output(bool quiet);

// Called from a static initialiser in each cmd_<name>.cpp.
bool register_command(Command command);
const std::vector<Command>& registered_commands();

// Options shared by every command that runs the network.
struct RuntimeOptions {
  std::string device = "cpu";     // cpu, cuda, cuda:1, ...
  std::string precision = "fp32"; // fp32 | bf16 | fp16 (fp16 only on CUDA)
  int threads = 0;                // 0 = one per core
  std::string activation;         // "" = what the checkpoint says; gelu | quick-gelu
  std::string engine = "fused";   // fused (CPU engine) | reference (LibTorch's blocks)
};
void add_runtime_options(CLI::App& sub, RuntimeOptions& options);
// --max-pixels for every command that decodes images (io/image_decode.h).
void add_max_pixels_option(CLI::App& sub, int64_t& max_pixels);
// --device/--precision as the model's options (throws clipes::Error on a bad precision).
ModelOptions to_model_options(const RuntimeOptions& options);

// Applies --threads (LibTorch defaults to 1 thread in some builds).
void apply_runtime_options(const RuntimeOptions& options);
// A --threads value made real: 0 → one per core; more than the cores → the
// cores, with a warning (1000 threads made a model load take 58 s instead of 1).
int thread_count(int requested);
// A whole-number option ≥ minimum. CLI11's PositiveNumber/NonNegativeNumber
// print their range up to DBL_MAX written out: "--limit 0" gave 309 digits.
CLI::Validator count_at_least(int64_t minimum);
// A real number > 0 (--bg-power), with the same short message.
CLI::Validator positive_real();

// The file name of the official BPE vocabulary (openai/CLIP clip/).
inline constexpr const char* kOfficialVocabName = "bpe_simple_vocab_16e6.txt.gz";
// --vocab when given; else the official vocabulary beside the model file
// when it is there (issue 27: --vocab was always required although the file
// usually sits next to the weights); else an error saying where to get it.
std::string vocab_or_beside_model(const std::string& vocab, const std::string& model);
// The --vocab option every model command takes (optional: see above).
CLI::Option* add_vocab_option(CLI::App& sub, std::string& vocab);

// The vocabulary must be the one the model was trained with: its size must
// equal the rows of the token embedding. A smaller vocabulary gives nonsense
// without any error, a larger one "index out of range in self" mid-run.
// Throws one line naming both files.
void check_vocab_fits_model(const BpeTokenizer& tokenizer, const ClipModel& model, const std::string& vocab_path,
                            const std::string& model_path);

// After a batch: the first failure reasons on stderr (every one for a single
// image, which has no other place to say why), and every record the failure
// log could not take (disk full), so none is lost.
void report_failures(const BatchSummary& summary, bool single_image);

// The command line as given (for run histories), and the time for records.
const std::vector<std::string>& invocation_args();
std::string now_utc_iso8601();  // "2026-12-01T21:07:10Z"

}  // namespace clipes::cli

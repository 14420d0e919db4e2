// A progress line for long batch commands, on stderr: a redrawn bar on a
// terminal, a plain line every few seconds in logs (CI, Slurm). Silent under
// --quiet (spdlog level err).
#pragma once
#include <string>

#include "clipes/pipeline/batch_runner.h"

namespace clipes::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  void update(const BatchProgress& progress);
  void finish();

 private:
  std::string label_;
  bool tty_ = false;
  bool enabled_ = true;
  bool drawn_ = false;
  double last_print_s_ = -1e9;
};

}  // namespace clipes::cli

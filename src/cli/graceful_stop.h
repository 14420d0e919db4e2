// While a batch command runs, SIGTERM and SIGINT ask it to stop after the
// images in flight (util/stop_request.h) instead of killing it mid-run: the
// run record and the runs.jsonl line are still written (the README promises
// one line per invocation), and the exit code says which signal (128 + N, as
// a shell and Slurm report a signalled process). A second signal ends the
// process at once, as it would have without us.
#pragma once
#include <csignal>

namespace clipes::cli {

class GracefulStop {
 public:
  GracefulStop();   // installs the handlers
  ~GracefulStop();  // restores the previous ones
  GracefulStop(const GracefulStop&) = delete;
  GracefulStop& operator=(const GracefulStop&) = delete;

 private:
  struct sigaction old_term_ {}, old_int_ {};
};

}  // namespace clipes::cli

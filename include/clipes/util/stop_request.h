// A stop asked for from outside the process (issue 27 item 10): Slurm's
// pre-emption and `scancel` send SIGTERM, a terminal sends SIGINT. The batch
// runner polls it between images, lets the images in flight finish (every
// output is written whole or not at all), and returns, so the command still
// writes its run record and its runs.jsonl line, which a kill would lose.
//
// The flag is set by a signal handler, so it is a lock-free atomic and the
// setter is async-signal-safe.
#pragma once

namespace clipes {

// Records that `signal` asked the process to stop (the first one wins).
void request_stop(int signal) noexcept;

// The signal that asked for a stop, 0 when none has.
int stop_requested() noexcept;

// "SIGTERM", "SIGINT", or "signal N".
const char* stop_signal_name(int signal) noexcept;

}  // namespace clipes

#include "graceful_stop.h"

#include <unistd.h>

#include "clipes/util/stop_request.h"

namespace clipes::cli {
namespace {

extern "C" void on_stop_signal(int signal) {
  if (stop_requested() != 0) {  // the second one: the default action, now
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    return;
  }
  request_stop(signal);
  static const char kMessage[] =
      "\nclipes: stopping after the images in flight (send the signal again to stop at once)\n";
  (void)!::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);  // write(2) is async-signal-safe
}

}  // namespace

GracefulStop::GracefulStop() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a read or write interrupted by the signal goes on
  sigaction(SIGTERM, &action, &old_term_);
  sigaction(SIGINT, &action, &old_int_);
}

GracefulStop::~GracefulStop() {
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGINT, &old_int_, nullptr);
}

}  // namespace clipes::cli

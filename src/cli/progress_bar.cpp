#include "progress_bar.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace clipes::cli {
namespace {

std::string format_duration(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "--:--";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      tty_(isatty(fileno(stderr)) != 0),
      enabled_(spdlog::get_level() <= spdlog::level::info) {}

void ProgressBar::update(const BatchProgress& p) {
  if (!enabled_ || p.total <= 0) return;
  // Logs get a line every 10 s (and the last one); a terminal a redraw per image.
  const bool last = p.done >= p.total;
  if (!tty_ && !last && p.elapsed_s - last_print_s_ < 10.0) return;
  last_print_s_ = p.elapsed_s;
  const double rate = p.elapsed_s > 0 ? p.done / p.elapsed_s : 0.0;
  const double eta = rate > 0 ? (p.total - p.done) / rate : -1;
  const int width = 30;
  const int filled = static_cast<int>(width * p.done / p.total);
  std::string bar(filled, '=');
  if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld  %.2f img/s  ETA %s  failed %lld%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), static_cast<long long>(p.done), static_cast<long long>(p.total),
               rate, format_duration(eta).c_str(), static_cast<long long>(p.failed), tty_ ? "" : "\n");
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_ && tty_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace clipes::cli

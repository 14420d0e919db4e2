#include "clipes/pipeline/run_settings.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/strings.h"
#include "clipes/util/option_error.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

std::string shown(const nlohmann::json& v) {
  std::string s = v.is_null() ? "(unset)" : v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

void diff(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix, std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items())
      diff(value, b.contains(key) ? b.at(key) : nlohmann::json(), prefix.empty() ? key : prefix + "." + key, out);
    for (const auto& [key, value] : b.items())
      if (!a.contains(key)) diff(nlohmann::json(), value, prefix.empty() ? key : prefix + "." + key, out);
    return;
  }
  if (a != b) out.push_back(prefix + ": " + shown(a) + " → " + shown(b));
}

}  // namespace

std::vector<std::string> settings_differences(const nlohmann::json& before, const nlohmann::json& now) {
  std::vector<std::string> out;
  diff(before, now, "", out);
  return out;
}

std::vector<std::string> check_output_settings(const std::string& out_dir, const nlohmann::json& settings,
                                               ResumeMode mode, bool has_outputs, bool record) {
  const std::string path = (fs::path(out_dir) / "settings.json").string();
  if (mode != ResumeMode::NoResume && is_file(path)) {
    nlohmann::json before;
    try {
      before = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw option_error(printable(path) + ": not valid JSON (" + e.what() + "); " + option_key("no_resume") +
                         " starts over");
    }
    const nlohmann::json old_settings = before.value("settings", nlohmann::json());
    const std::vector<std::string> differences = settings_differences(old_settings, settings);
    if (differences.empty()) return {};
    // generate's settings never named the command: no "command" is generate.
    const auto command_of = [](const nlohmann::json& s) {
      return s.is_object() && s.contains("command") && s["command"].is_string() ? s["command"].get<std::string>()
                                                                               : std::string("generate");
    };
    // Another command's masks are numbered by another class list: keeping
    // them (even when forced) would mix numberings under one run.json.
    if (has_outputs && command_of(old_settings) != command_of(settings))
      throw option_error(printable(out_dir) + ": holds the outputs of clipes " + printable(command_of(old_settings)) +
                         ", not of clipes " + printable(command_of(settings)) + "; give another output folder (or " +
                         option_key("no_resume") + " to recompute every image here)");
    if (!has_outputs) mode = ResumeMode::NoResume;  // nothing was made with the old settings
    else if (mode == ResumeMode::ForceResume) return differences;
    if (mode == ResumeMode::Resume) {
      // A summary: class sets and template lists make differences of kilobytes.
      constexpr size_t kShown = 3, kWidth = 120;
      std::string list;
      for (size_t i = 0; i < differences.size() && i < kShown; ++i) {
        const std::string& d = differences[i];
        list += (list.empty() ? "" : "; ") + (d.size() > kWidth ? d.substr(0, kWidth) + "..." : d);
      }
      if (differences.size() > kShown) list += "; and " + std::to_string(differences.size() - kShown) + " more";
      throw option_error(printable(out_dir) + ": the outputs here were made with other settings (" + list + "); " +
                         option_key("no_resume") + " recomputes every image, " + option_key("force_resume") +
                         " keeps the existing outputs");
    }
  }
  if (!record) return {};
  const nlohmann::json file = {{"about", "the settings every output in this folder was made with (clipes)"},
                               {"settings", settings}};
  write_file_atomic(path, file.dump(2) + "\n");
  return {};
}

void append_run_history(const std::string& out_dir, const nlohmann::json& record) {
  const std::string path = (fs::path(out_dir) / "runs.jsonl").string();
  const std::string line = record.dump() + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw file_error(path, std::string("cannot append: ") + std::strerror(errno));
  const ssize_t n = ::write(fd, line.data(), line.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size()))
    throw file_error(path, std::string("cannot append: ") + (n < 0 ? std::strerror(err) : "short write"));
}

}  // namespace clipes

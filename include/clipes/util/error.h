// clipes::Error — the one exception type the library throws for bad input.
//
// The message is a single line that names the offending file (or option) and
// the problem, e.g. "model.pt: tensor visual.proj has shape [64] (expected 2-D)".
// The CLI prints it verbatim and exits with code 2; batch commands record it
// per image and go on.
#pragma once
#include <stdexcept>
#include <string>

#include "clipes/util/strings.h"

namespace clipes {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "path: problem" — keeps every message in the same shape. The path is shown
// through printable(): a newline or a non-UTF-8 byte in a file name must not
// split or garble the one-line message.
inline Error file_error(const std::string& path, const std::string& problem) {
  return Error(printable(path) + ": " + problem);
}

}  // namespace clipes

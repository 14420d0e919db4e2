// What the harnesses share: a property that does not hold is a finding.
#pragma once
#include <cstdio>
#include <cstdlib>

namespace clipes::fuzz {

// Prints the property and aborts, so libFuzzer keeps the input as a crash.
[[noreturn]] inline void violated(const char* property) {
  std::fprintf(stderr, "property violated: %s\n", property);
  std::abort();
}

}  // namespace clipes::fuzz

// Errors about a setting, without the library knowing the front end's flags.
//
// The library names a setting by its key (option_key("max_pixels")) inside an
// ordinary one-line message. The message is rendered when the error is made:
// with the spelling the front end installed (the CLI: "--max-pixels"), or as
// the bare key ("max_pixels") for any other caller. So `clipes` users read
// the flag to change, in errors and in failure logs alike, and the library
// never spells a CLI flag (docs/architecture.md, "Rules").
#pragma once
#include <functional>
#include <string>

#include "clipes/util/error.h"

namespace clipes {

// A setting's key marked for rendering inside a message.
std::string option_key(const std::string& key);

// The message with every option_key rendered by the installed spelling.
std::string render_option_keys(const std::string& message);

// How keys are shown from now on (process-wide; install once, at start-up,
// before any thread runs). An empty function restores the bare keys.
void set_option_spelling(std::function<std::string(const std::string& key)> spell);

// "--max-pixels" for "max_pixels": GNU long-option spelling, what `clipes`
// installs (and its tests, which read library messages as users do).
std::string long_option_spelling(const std::string& key);

// A clipes::Error whose message names settings through option_key.
inline Error option_error(const std::string& message) { return Error(render_option_keys(message)); }

}  // namespace clipes

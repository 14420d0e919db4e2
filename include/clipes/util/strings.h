// Small string helpers shared by the readers, class files and commands.
#pragma once
#include <string>
#include <vector>

namespace clipes {

// Leading and trailing spaces, tabs and line ends removed.
std::string trim(const std::string& s);

// "dog, cat,,bird " → {"dog", "cat", "bird"}: split on commas, pieces
// trimmed, empty pieces dropped. Class lists (--labels, --classes) and
// synonym lists inside a class string (spec §4) both use it.
std::vector<std::string> split_comma_list(const std::string& text);

}  // namespace clipes

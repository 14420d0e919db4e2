// Small string helpers shared by the readers, class files and commands.
#pragma once
#include <string>
#include <vector>

namespace clipes {

// Leading and trailing spaces, tabs and line ends removed.
std::string trim(const std::string& s);

// ASCII letters lower-cased, every other byte kept: how class names and
// aliases are compared ("Dining Table" = "dining table").
std::string lower(std::string s);

// ASCII letters upper-cased, every other byte kept (".jpg" → ".JPG").
std::string upper(std::string s);

// "dog, cat,,bird " → {"dog", "cat", "bird"}: split on commas, pieces
// trimmed, empty pieces dropped. Class lists (--labels, --classes) and
// synonym lists inside a class string (spec §4) both use it.
std::vector<std::string> split_comma_list(const std::string& text);

// True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF).
bool is_valid_utf8(const std::string& bytes);

// `bytes` made safe for a one-line message or a JSON string: valid UTF-8 is
// kept, control characters (< 0x20, 0x7f) and every byte that is not part of
// a well-formed UTF-8 sequence become the four characters \xNN. File names on
// Linux are bytes (a Latin-1 "café.jpg" is 63 61 66 e9), so paths go through
// this before they reach a terminal or a JSON writer; see json_text.h for the
// lossless JSON form.
std::string printable(const std::string& bytes);

// `bytes` with every byte that is not part of a well-formed UTF-8 sequence
// replaced by U+FFFD (valid UTF-8 passes unchanged).
std::string to_valid_utf8(const std::string& bytes);

// Lower-case hex of every byte ("caf\xe9" → "636166e9").
std::string to_hex(const std::string& bytes);

}  // namespace clipes

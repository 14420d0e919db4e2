// Writing a file the user named on the command line (--json PATH).
//
// A regular file, or a path that does not exist yet, is written atomically
// (util/atomic_file.h: temp file + rename), so a reader never sees half of
// it. Anything else is written through: renaming over a FIFO, a symlink such
// as /dev/stdout or a device such as /dev/null would replace it with a
// regular file (and, run as root, destroy /dev/null).
#pragma once
#include <string>
#include <string_view>

namespace clipes {

// Throws clipes::Error naming the file when it cannot be written.
void write_user_file(const std::string& path, std::string_view bytes);

}  // namespace clipes

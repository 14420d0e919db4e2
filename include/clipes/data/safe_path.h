// Image ids become output file names (<out>/masks/<id>.png, <out>/cams/<id>_*.npy),
// and ids come from files users download (VOC lists, COCO json, label CSVs).
// An id such as "../../etc/x" or "/abs" would write outside the output folder,
// so every id is checked here before it is used to build a path.
#pragma once
#include <string>

namespace clipes {

// Returns `id` unchanged when it is a plain file stem. Rejects: empty, "." or
// "..", a leading '.', '/' or '\\' anywhere (so also absolute paths), NUL and
// other control characters. Throws clipes::Error
// "<source>: unsafe image id '<id>'" (`source` names the file the id came from).
std::string safe_stem(const std::string& id, const std::string& source);

}  // namespace clipes

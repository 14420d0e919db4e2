// A tensor shape as the error messages write it: "[1, 3, 224, 224]". One
// spelling for every "tensor X has shape …, expected …" line (checkpoint
// configs, DINOiser heads, contact sheets).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace clipes {

std::string shape_text(const std::vector<int64_t>& sizes);

}  // namespace clipes

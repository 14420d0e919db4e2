// Zip archive integrity check. TorchScript archives and torch.save files are
// zips; LibTorch's reader does not verify member CRCs and can crash or read
// garbage from a damaged file, so checkpoints are checked with libzip first.
#pragma once
#include <string>

namespace clipes {

// Opens `bytes` (a whole zip file) with libzip and reads every member to the
// end, which makes libzip verify its CRC-32. Throws clipes::Error naming
// `path` — and the member, when one is at fault — for a truncated archive, a
// damaged central directory or a member whose data does not match its CRC.
void verify_zip_integrity(const std::string& bytes, const std::string& path);

}  // namespace clipes

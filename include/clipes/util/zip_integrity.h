// Zip archive integrity check. TorchScript archives and torch.save files are
// zips; LibTorch's reader does not verify member CRCs and can crash or read
// garbage from a damaged file, so checkpoints are checked with libzip first.
#pragma once
#include <string>

#include "clipes/util/error.h"

namespace clipes {

// The archive's structure is sound but one member's bytes fail their CRC-32
// (callers may then say which tensor those bytes belong to).
class ZipMemberCorrupt : public Error {
 public:
  ZipMemberCorrupt(const std::string& message, std::string member) : Error(message), member_(std::move(member)) {}
  const std::string& member() const { return member_; }

 private:
  std::string member_;
};

// Opens `bytes` (a whole zip file) with libzip and reads every member to the
// end, which makes libzip verify its CRC-32. Throws clipes::Error naming
// `path` — and the member, when one is at fault — for a truncated archive, a
// damaged central directory; ZipMemberCorrupt for a member whose data does
// not match its CRC.
void verify_zip_integrity(const std::string& bytes, const std::string& path);

}  // namespace clipes

#include "clipes/util/sha256.h"

#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "clipes/util/error.h"

namespace clipes {
namespace {

using MdContext = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

MdContext new_sha256_context(const std::string& what) {
  MdContext ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw file_error(what, "cannot initialise SHA-256 (OpenSSL)");
  return ctx;
}

std::string finish_hex(EVP_MD_CTX* ctx, const std::string& what) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx, digest.data(), &length) != 1) throw file_error(what, "SHA-256 failed (OpenSSL)");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(path, std::string("cannot open (") + std::strerror(errno) + ")");
  MdContext ctx = new_sha256_context(path);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = in.gcount();
    if (n > 0 && EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n)) != 1)
      throw file_error(path, "SHA-256 failed (OpenSSL)");
  }
  if (in.bad()) throw file_error(path, "read error while hashing");
  return finish_hex(ctx.get(), path);
}

std::string sha256_hex(std::string_view bytes) {
  MdContext ctx = new_sha256_context("<memory>");
  if (EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size()) != 1) throw Error("SHA-256 failed (OpenSSL)");
  return finish_hex(ctx.get(), "<memory>");
}

}  // namespace clipes

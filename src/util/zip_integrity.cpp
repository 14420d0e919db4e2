#include "clipes/util/zip_integrity.h"

#include <zip.h>

#include <memory>
#include <vector>

#include "clipes/util/error.h"

namespace clipes {
namespace {

std::string zip_error_text(zip_error_t* error) { return zip_error_strerror(error); }

}  // namespace

void verify_zip_integrity(const std::string& bytes, const std::string& path) {
  zip_error_t error;
  zip_error_init(&error);
  // The buffer is not copied (freep = 0); `bytes` outlives the archive.
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  if (!source) {
    const std::string text = zip_error_text(&error);
    zip_error_fini(&error);
    throw file_error(path, "cannot read as a zip archive (" + text + ")");
  }
  // ZIP_CHECKCONS: also compare local headers with the central directory.
  zip_t* archive = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (!archive) {
    const int code = zip_error_code_zip(&error);
    const std::string text = zip_error_text(&error);
    zip_error_fini(&error);
    zip_source_free(source);
    if (code == ZIP_ER_NOZIP)
      throw file_error(path, "truncated or damaged archive (no zip central directory found)");
    throw file_error(path, "damaged zip archive (" + text + ")");
  }
  zip_error_fini(&error);
  std::unique_ptr<zip_t, decltype(&zip_discard)> guard(archive, &zip_discard);

  const zip_int64_t members = zip_get_num_entries(archive, 0);
  std::vector<char> buffer(1 << 20);
  for (zip_int64_t i = 0; i < members; ++i) {
    const char* name_c = zip_get_name(archive, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
    const std::string name = name_c ? name_c : "#" + std::to_string(i);
    zip_file_t* file = zip_fopen_index(archive, static_cast<zip_uint64_t>(i), 0);
    if (!file)
      throw file_error(path, "damaged zip member " + name + " (" + zip_strerror(archive) + ")");
    // libzip checks the CRC-32 when the member has been read to its end.
    zip_int64_t n = 0;
    while ((n = zip_fread(file, buffer.data(), buffer.size())) > 0) {
    }
    if (n < 0) {
      const int code = zip_error_code_zip(zip_file_get_error(file));
      const std::string text = zip_file_strerror(file);
      zip_fclose(file);
      if (code == ZIP_ER_CRC)
        throw ZipMemberCorrupt(path + ": corrupt data in zip member " + name + " (CRC-32 mismatch)", name);
      throw file_error(path, "damaged zip member " + name + " (" + text + ")");
    }
    const int close_code = zip_fclose(file);  // a ZIP_ER_* code
    if (close_code == ZIP_ER_CRC)
      throw ZipMemberCorrupt(path + ": corrupt data in zip member " + name + " (CRC-32 mismatch)", name);
    if (close_code != 0)
      throw file_error(path, "damaged zip member " + name + " (libzip error " + std::to_string(close_code) + ")");
  }
}

}  // namespace clipes

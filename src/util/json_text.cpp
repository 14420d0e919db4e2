#include "clipes/util/json_text.h"

#include <nlohmann/json.hpp>

#include "clipes/util/strings.h"

namespace clipes {
namespace {

template <class Json>
void put(Json& object, const std::string& key, const std::string& bytes) {
  if (is_valid_utf8(bytes)) {
    object[key] = bytes;
    return;
  }
  object[key] = printable(bytes);
  object[key + "_hex"] = to_hex(bytes);
}

}  // namespace

void put_bytes(nlohmann::json& object, const std::string& key, const std::string& bytes) {
  put(object, key, bytes);
}
void put_bytes(nlohmann::ordered_json& object, const std::string& key, const std::string& bytes) {
  put(object, key, bytes);
}

}  // namespace clipes

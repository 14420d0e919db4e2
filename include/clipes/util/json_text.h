// Byte strings (file names, image ids) in JSON, losslessly and safely.
//
// JSON strings must be UTF-8, but a Linux file name is any bytes: a Latin-1
// "café.jpg" made nlohmann::json throw (type_error 316) in the middle of a
// batch. The rule, everywhere clipes writes JSON (failures*.jsonl, run.json,
// classify --json):
//   * "key": the bytes as valid UTF-8 — unchanged when they already are, else
//     with each offending byte (and each control character) written as the
//     four characters \xNN (util/strings.h printable());
//   * "key_hex": only when the bytes are not valid UTF-8 — every byte in hex,
//     so the original name can be recovered exactly
//     (bytes.fromhex(record["image_hex"]) in Python).
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>

namespace clipes {

// Sets object[key] (and object[key + "_hex"] when needed) as described above.
void put_bytes(nlohmann::json& object, const std::string& key, const std::string& bytes);
void put_bytes(nlohmann::ordered_json& object, const std::string& key, const std::string& bytes);

}  // namespace clipes

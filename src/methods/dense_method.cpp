#include "clipes/methods/dense_method.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "clipes/methods/dense_segmenter.h"
#include "clipes/util/error.h"
#include "clipes/util/sha256.h"

namespace clipes {

at::Tensor DenseQueries::per_class_max(const at::Tensor& per_query) const {
  if (static_cast<int64_t>(query_class.size()) == num_classes) {
    bool identity = true;
    for (int q = 0; q < num_classes; ++q) identity = identity && query_class[static_cast<size_t>(q)] == q;
    if (identity) return per_query;
  }
  std::vector<at::Tensor> classes(static_cast<size_t>(num_classes));
  for (size_t q = 0; q < query_class.size(); ++q) {
    at::Tensor& c = classes[static_cast<size_t>(query_class[q])];
    c = c.defined() ? at::maximum(c, per_query[static_cast<int64_t>(q)]) : per_query[static_cast<int64_t>(q)];
  }
  return torch::stack(classes, 0);
}

DenseMethod::~DenseMethod() = default;

at::Tensor DenseMethod::dense_features(const DenseForward& forward, PatchScores&) const {
  return forward.patch_features[0].to(torch::kFloat);
}

at::Tensor DenseMethod::channels(const at::Tensor& cosines, const DenseQueries& queries, const PatchScores&) const {
  return queries.per_class_max(at::softmax(cosines * queries.logit_scale, 0));
}

at::Tensor DenseMethod::class_probabilities(const at::Tensor& channels, const DenseQueries&) const { return channels; }

// ---- parameters ------------------------------------------------------------------

DenseMethodArgs::DenseMethodArgs(std::string method, std::map<std::string, std::string> values, int vision_width)
    : method_(std::move(method)), values_(std::move(values)), vision_width_(vision_width) {}

std::string DenseMethodArgs::text(const std::string& key) const {
  const auto it = values_.find(key);
  if (it == values_.end()) throw Error(method_ + ": no parameter " + key);
  return it->second;
}

double DenseMethodArgs::number(const std::string& key) const {
  const std::string v = text(key);
  errno = 0;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || errno != 0 || *end != '\0' || !std::isfinite(d))
    throw Error(method_ + ": parameter " + key + "=" + printable(v) + " is not a finite number");
  return d;
}

int DenseMethodArgs::integer(const std::string& key) const {
  const double d = number(key);
  if (d != std::floor(d) || std::abs(d) > 1e6)
    throw Error(method_ + ": parameter " + key + "=" + printable(text(key)) + " is not an integer");
  return static_cast<int>(d);
}

bool DenseMethodArgs::flag(const std::string& key) const {
  const std::string v = text(key);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  throw Error(method_ + ": parameter " + key + "=" + printable(v) + " is not true or false");
}

// ---- registry --------------------------------------------------------------------

namespace {

// Function-local: methods register from static initialisers in other files,
// whose order against this file's statics is unspecified.
std::vector<DenseMethodInfo>& registry() {
  static std::vector<DenseMethodInfo> methods;
  return methods;
}

std::string method_names() {
  std::string names;
  for (const DenseMethodInfo* m : dense_methods()) names += (names.empty() ? "" : ", ") + m->name;
  return names;
}

std::string param_keys(const DenseMethodInfo& m) {
  std::string keys;
  for (const auto& p : m.params) keys += (keys.empty() ? "" : ", ") + p.key;
  return keys.empty() ? "none" : keys;
}

bool answers_to(const DenseMethodInfo& m, const std::string& name) {
  return m.name == name || std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end();
}

// A key the method does not declare is an error listing the ones it does.
void check_keys(const DenseMethodInfo& m, const std::map<std::string, std::string>& values) {
  for (const auto& entry : values) {
    const std::string& key = entry.first;
    if (std::none_of(m.params.begin(), m.params.end(), [&](const DenseMethodParam& p) { return p.key == key; }))
      throw Error(m.name + " has no parameter " + printable(key) + " (its parameters: " + param_keys(m) + ")");
  }
}

// The declared defaults overlaid with `values`; unknown keys and missing
// required ones are errors.
std::map<std::string, std::string> resolve_params(const DenseMethodInfo& m,
                                                  const std::map<std::string, std::string>& values) {
  check_keys(m, values);
  std::map<std::string, std::string> out;
  for (const auto& p : m.params) out[p.key] = p.default_value;
  for (const auto& [key, value] : values) out[key] = value;
  for (const auto& p : m.params)
    if (p.required && out[p.key].empty()) throw Error(m.name + " needs its parameter " + p.key + " (" + p.help + ")");
  return out;
}

}  // namespace

bool register_dense_method(DenseMethodInfo info) {
  for (const DenseMethodInfo& m : registry()) {
    bool clash = answers_to(m, info.name);
    for (const auto& a : info.aliases) clash = clash || answers_to(m, a);
    if (clash) throw Error("dense method " + info.name + " registered twice");
  }
  registry().push_back(std::move(info));
  return true;
}

std::vector<const DenseMethodInfo*> dense_methods() {
  std::vector<const DenseMethodInfo*> out;
  for (const DenseMethodInfo& m : registry()) out.push_back(&m);
  std::sort(out.begin(), out.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  return out;
}

const DenseMethodInfo& find_dense_method(const std::string& name) {
  for (const DenseMethodInfo& m : registry())
    if (answers_to(m, name)) return m;
  throw Error("unknown dense method " + printable(name) + " (expected one of: " + method_names() + ")");
}

std::unique_ptr<DenseMethod> create_dense_method(const std::string& name,
                                                 const std::map<std::string, std::string>& values, int vision_width) {
  const DenseMethodInfo& m = find_dense_method(name);
  return m.create(DenseMethodArgs(m.name, resolve_params(m, values), vision_width));
}

nlohmann::json non_default_params(const std::string& name, const std::map<std::string, std::string>& values) {
  const DenseMethodInfo& m = find_dense_method(name);
  check_keys(m, values);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& p : m.params) {
    const auto it = values.find(p.key);
    if (it == values.end() || it->second == p.default_value) continue;
    if (p.file) out[p.key + "_sha256"] = sha256_file(it->second);
    else out[p.key] = printable(it->second);
  }
  return out;
}

}  // namespace clipes

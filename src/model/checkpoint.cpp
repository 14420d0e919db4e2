#include "clipes/model/checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "clipes/model/safetensors.h"
#include "clipes/model/torch_save_pickle.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/zip_integrity.h"
#include "clipes/util/option_error.h"
#include "clipes/util/strings.h"

namespace clipes {
namespace {

// LibTorch errors carry multi-line backtraces; keep the first line.
std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.size() > 200 ? line.substr(0, 200) + "..." : line;
}

// Scalars stored next to the weights in OpenAI's archives; not weights.
bool is_openai_non_weight(const std::string& name) {
  return name == "input_resolution" || name == "context_length" || name == "vocab_size" ||
         name.find("attn_mask") != std::string::npos;
}

TensorMap load_torchscript(const std::string& path) {
  torch::jit::Module module = torch::jit::load(path, torch::kCPU);
  TensorMap out;
  for (const auto& p : module.named_parameters(true)) out[p.name] = p.value.detach();
  for (const auto& b : module.named_buffers(true))
    if (!is_openai_non_weight(b.name)) out[b.name] = b.value.detach();
  return out;
}

at::ScalarType scalar_type(const std::string& name) {
  static const std::pair<const char*, at::ScalarType> kTypes[] = {
      {"Float", at::kFloat}, {"Double", at::kDouble}, {"Half", at::kHalf}, {"BFloat16", at::kBFloat16},
      {"Long", at::kLong},   {"Int", at::kInt},       {"Short", at::kShort}, {"Char", at::kChar},
      {"Byte", at::kByte},   {"Bool", at::kBool}};
  for (const auto& [n, t] : kTypes)
    if (name == n) return t;
  throw Error("no scalar type " + name);  // torch_save_pickle only names the ones above
}

// torch.save zips are read with our own pickle reader (model/torch_save_pickle):
// LibTorch's unpickler turns an OrderedDict into None and cannot rebuild
// PyTorch-Lightning's globals. LibTorch still reads the zip records.
TensorMap load_state_dict(const std::string& path, const std::string& bytes) {
  caffe2::serialize::PyTorchStreamReader reader(
      std::make_unique<caffe2::serialize::IStreamAdapter>(new std::istringstream(bytes)));
  if (reader.hasRecord("byteorder")) {
    const auto [order, size] = reader.getRecord("byteorder");
    const std::string text(static_cast<const char*>(order.get()), size);
    if (text != "little") throw file_error(path, "was saved with byte order '" + printable(text.substr(0, 16)) +
                                                     "' (only little-endian files are supported)");
  }
  if (!reader.hasRecord("data.pkl")) throw file_error(path, "zip archive without data.pkl: not a torch.save file");
  const auto [pkl, pkl_size] = reader.getRecord("data.pkl");
  const std::string pickle(static_cast<const char*>(pkl.get()), pkl_size);
  std::map<std::string, at::Tensor> storages;  // tensors sharing a storage share it here too
  TensorMap out;
  for (const TorchSaveTensor& t : torch_save_state_dict(pickle, path)) {
    at::Tensor& storage = storages[t.storage_key];
    if (!storage.defined()) {
      const std::string record = "data/" + t.storage_key;
      if (!reader.hasRecord(record))
        throw file_error(path, "tensor '" + printable(t.name) + "' needs the missing record " + printable(record));
      const auto [data, size] = reader.getRecord(record);
      const uint64_t needed = static_cast<uint64_t>(t.storage_numel) * static_cast<uint64_t>(t.element_size);
      if (size != needed)
        throw file_error(path, "tensor '" + printable(t.name) + "': its storage record holds " + std::to_string(size) +
                                   " bytes, its size needs " + std::to_string(needed));
      storage = at::empty({t.storage_numel}, at::TensorOptions().dtype(scalar_type(t.dtype)));
      if (size) std::memcpy(storage.data_ptr(), data.get(), size);
    }
    out[t.name.rfind("module.", 0) == 0 ? t.name.substr(7) : t.name] = storage.as_strided(t.sizes, t.strides, t.offset);
  }
  return out;
}

// The tensors whose bytes a damaged ".../data/<key>" member holds. Only raw
// tensor bytes are damaged, so the archive's structure is intact and LibTorch
// (which never checks CRCs) can still read it; the tensors whose storage equals
// the member's bytes are the damaged ones. "" if that cannot be told.
std::string tensors_in_member(const std::string& path, const std::string& bytes, const std::string& member) {
  const size_t slash = member.find('/');
  const std::string record = slash == std::string::npos ? member : member.substr(slash + 1);
  if (record.rfind("data/", 0) != 0) return "";
  try {
    caffe2::serialize::PyTorchStreamReader reader(
        std::make_unique<caffe2::serialize::IStreamAdapter>(new std::istringstream(bytes)));
    const auto [data, size] = reader.getRecord(record);
    const TensorMap all = reader.hasRecord("constants.pkl") ? load_torchscript(path) : load_state_dict(path, bytes);
    std::string names;
    for (const auto& [name, t] : all) {
      const c10::Storage& storage = t.storage();
      if (storage.nbytes() == size && std::memcmp(storage.data_ptr().get(), data.get(), size) == 0)
        names += (names.empty() ? "" : ", ") + name;
    }
    return names;
  } catch (const std::exception&) {
    return "";
  }
}

bool is_zip(const std::string& bytes) { return bytes.size() >= 4 && bytes.compare(0, 4, "PK\x03\x04") == 0; }

}  // namespace

std::string to_string(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::OpenAITorchScript: return "OpenAI TorchScript archive";
    case CheckpointFormat::StateDict: return "torch.save state dict (OpenCLIP)";
    case CheckpointFormat::HuggingFaceSafetensors: return "Hugging Face safetensors";
  }
  return "unknown";
}

TensorMap read_torch_save_tensors(const std::string& path) {
  const std::string bytes = read_file(path);
  if (!is_zip(bytes)) throw file_error(path, "not a torch.save file (expected a zip archive)");
  try {
    verify_zip_integrity(bytes, path);
    caffe2::serialize::PyTorchStreamReader reader(
        std::make_unique<caffe2::serialize::IStreamAdapter>(new std::istringstream(bytes)));
    if (reader.hasRecord("constants.pkl"))
      throw file_error(path, "is a TorchScript archive (a CLIP model?), not a torch.save dict of tensors");
    TensorMap t = load_state_dict(path, bytes);
    if (t.empty()) throw file_error(path, "torch.save file holds no tensors");
    return t;
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw file_error(path, "corrupt or truncated torch.save file (" + first_line(e.what_without_backtrace()) + ")");
  } catch (const std::exception& e) {
    throw file_error(path, "cannot read torch.save file (" + first_line(e.what()) + ")");
  }
}

std::optional<Activation> activation_from_config_file(const std::string& config_path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    throw file_error(config_path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw file_error(config_path, "expected a JSON object");
  const auto act_of = [](const nlohmann::json& o) -> std::optional<Activation> {
    for (const char* key : {"hidden_act", "activation_function"}) {
      if (!o.contains(key) || !o[key].is_string()) continue;
      const std::string v = o[key];
      if (v == "quick_gelu") return Activation::QuickGelu;
      if (v == "gelu") return Activation::Gelu;
    }
    return std::nullopt;
  };
  const std::string name = std::filesystem::path(config_path).filename().string();
  if (name == "open_clip_config.json" || j.contains("model_cfg") || j.contains("vision_cfg")) {
    const nlohmann::json& cfg = j.contains("model_cfg") && j["model_cfg"].is_object() ? j["model_cfg"] : j;
    if (cfg.contains("quick_gelu") && cfg["quick_gelu"].is_boolean())
      return cfg["quick_gelu"].get<bool>() ? Activation::QuickGelu : Activation::Gelu;
    // OpenCLIP's CLIP() defaults to quick_gelu=False: a model config without the key is GELU.
    if (cfg.contains("vision_cfg")) return Activation::Gelu;
    return std::nullopt;
  }
  if (auto a = act_of(j)) return a;
  if (j.contains("vision_config") && j["vision_config"].is_object()) return act_of(j["vision_config"]);
  return std::nullopt;
}

namespace {
// Segment-spec §0: from the format, else the config beside the file.
void resolve_activation(Checkpoint& ckpt, std::optional<Activation> override_activation) {
  if (override_activation) {
    ckpt.activation = *override_activation;
    ckpt.activation_source = render_option_keys(option_key("activation"));  // the caller chose it
    return;
  }
  if (ckpt.format == CheckpointFormat::OpenAITorchScript) {
    ckpt.activation = Activation::QuickGelu;
    ckpt.activation_source = "OpenAI TorchScript archive (always QuickGELU)";
    return;
  }
  const std::filesystem::path dir = std::filesystem::path(ckpt.path).parent_path();
  for (const char* name : {"open_clip_config.json", "config.json"}) {
    const std::filesystem::path candidate = dir / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(candidate, ec)) continue;
    if (auto a = activation_from_config_file(candidate.string())) {
      ckpt.activation = *a;
      ckpt.activation_source = candidate.string();
      return;
    }
  }
  if (ckpt.format == CheckpointFormat::HuggingFaceSafetensors) {
    // transformers' CLIPVisionConfig defaults hidden_act to "quick_gelu": a
    // Hugging Face file without a config means what transformers would load.
    ckpt.activation = Activation::QuickGelu;
    ckpt.activation_source = "Hugging Face default (no config.json with hidden_act beside it)";
    return;
  }
  throw option_error(printable(ckpt.path) +
                     ": OpenCLIP state dict does not say its MLP activation (no open_clip_config.json or config.json "
                     "beside it): pass " + option_key("activation") + " gelu for OpenCLIP LAION/DataComp weights, or " +
                     option_key("activation") + " quick-gelu for OpenAI weights and -quickgelu models");
}
}  // namespace

Checkpoint load_checkpoint(const std::string& path, std::optional<Activation> activation) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw file_error(path, "no such file");
  if (fs::is_directory(path, ec)) throw file_error(path, "is a folder, expected a checkpoint file");
  if (fs::file_size(path, ec) == 0) throw file_error(path, "empty file");

  Checkpoint ckpt;
  ckpt.path = path;
  const std::string bytes = read_file(path);
  TensorMap tensors;
  try {
    if (is_zip(bytes)) {
      // LibTorch does not check member CRCs and may crash on damaged data:
      // verify the whole archive before it sees it.
      try {
        verify_zip_integrity(bytes, path);
      } catch (const ZipMemberCorrupt& e) {
        const std::string tensors = tensors_in_member(path, bytes, e.member());
        if (tensors.empty()) throw;
        throw file_error(path, "corrupt data in zip member " + e.member() + " (CRC-32 mismatch), the bytes of tensor " +
                                   tensors);
      }
      // Both TorchScript archives and torch.save files are zips; only
      // TorchScript ones carry constants.pkl (and code/).
      caffe2::serialize::PyTorchStreamReader reader(
          std::make_unique<caffe2::serialize::IStreamAdapter>(new std::istringstream(bytes)));
      if (reader.hasRecord("constants.pkl")) {
        ckpt.format = CheckpointFormat::OpenAITorchScript;
        tensors = load_torchscript(path);
      } else {
        ckpt.format = CheckpointFormat::StateDict;
        tensors = load_state_dict(path, bytes);
      }
    } else if (looks_like_safetensors(bytes)) {
      ckpt.format = CheckpointFormat::HuggingFaceSafetensors;
      const TensorMap hf = parse_safetensors(bytes, path);
      tensors = hf.count("vision_model.embeddings.patch_embedding.weight") ? canonical_from_hf(hf, path) : hf;
    } else if (bytes.size() > 2 && static_cast<unsigned char>(bytes[0]) == 0x80) {
      throw file_error(path, "legacy (pre-1.6) torch.save format; re-save it with torch.save in a current PyTorch");
    } else {
      throw file_error(path, "not a CLIP checkpoint (neither a TorchScript/torch.save zip nor safetensors)");
    }
  } catch (const c10::Error& e) {
    throw file_error(path, "corrupt or truncated checkpoint (" + first_line(e.what_without_backtrace()) + ")");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    // Anything else LibTorch's readers throw (std::runtime_error, bad_alloc on
    // absurd sizes) is still one line naming the file.
    throw file_error(path, "cannot read checkpoint (" + first_line(e.what()) + ")");
  }
  const ClipConfig config = ClipConfig::infer(tensors, path);  // validates names and shapes
  // Keep exactly the weights the model uses; report the bulk dtype.
  TensorMap kept;
  for (const auto& [name, _] : config.expected_shapes()) kept[name] = tensors.at(name);
  // NaN or infinite weights (a broken conversion, an fp16 overflow) gave
  // all-background masks with confidence 0 and exit 0: refused here, naming
  // the first such tensor (one pass over the weights, well under a second).
  for (const auto& [name, t] : kept)
    if (t.is_floating_point() && !at::isfinite(t).all().item<bool>())
      throw file_error(path, "tensor " + name + " holds NaN or infinite values (a damaged checkpoint)");
  // An all-zero projection makes every unit feature 0/0 (or 0 under
  // F.normalize): finite weights, meaningless masks.
  for (const char* name : {"visual.proj", "text_projection"})
    if (!kept.at(name).any().item<bool>()) throw file_error(path, std::string("tensor ") + name + " is all zeros");
  ckpt.tensors = std::move(kept);
  ckpt.storage_dtype = c10::toString(ckpt.tensors.at("visual.conv1.weight").scalar_type());
  resolve_activation(ckpt, activation);
  return ckpt;
}

// --- Hugging Face names ------------------------------------------------------------

namespace {
struct BlockNames {
  const char* canonical;
  const char* hf;
};
constexpr BlockNames kBlockNames[] = {
    {"ln_1.weight", "layer_norm1.weight"},          {"ln_1.bias", "layer_norm1.bias"},
    {"ln_2.weight", "layer_norm2.weight"},          {"ln_2.bias", "layer_norm2.bias"},
    {"attn.out_proj.weight", "self_attn.out_proj.weight"}, {"attn.out_proj.bias", "self_attn.out_proj.bias"},
    {"mlp.c_fc.weight", "mlp.fc1.weight"},          {"mlp.c_fc.bias", "mlp.fc1.bias"},
    {"mlp.c_proj.weight", "mlp.fc2.weight"},        {"mlp.c_proj.bias", "mlp.fc2.bias"},
};
constexpr BlockNames kTopNames[] = {
    {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
    {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
    {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
    {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"},
    {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"},
    {"visual.ln_post.weight", "vision_model.post_layernorm.weight"},
    {"visual.ln_post.bias", "vision_model.post_layernorm.bias"},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
    {"logit_scale", "logit_scale"},
};
// (canonical block prefix, HF layer prefix)
std::vector<std::pair<std::string, std::string>> tower_prefixes() {
  return {{"visual.transformer.resblocks.", "vision_model.encoder.layers."},
          {"transformer.resblocks.", "text_model.encoder.layers."}};
}
int count_layers(const TensorMap& t, const std::string& prefix) {
  int n = 0;
  while (t.count(prefix + std::to_string(n) + ".self_attn.q_proj.weight") ||
         t.count(prefix + std::to_string(n) + ".attn.in_proj_weight"))
    ++n;
  return n;
}
}  // namespace

TensorMap canonical_from_hf(const TensorMap& hf, const std::string& path) {
  auto get = [&](const std::string& name) -> const at::Tensor& {
    auto it = hf.find(name);
    if (it == hf.end()) throw file_error(path, "missing tensor " + name);
    return it->second;
  };
  TensorMap out;
  for (const auto& n : kTopNames) out[n.canonical] = get(n.hf);
  out["visual.proj"] = get("visual_projection.weight").t().contiguous();
  out["text_projection"] = get("text_projection.weight").t().contiguous();
  for (const auto& [canon, hfp] : tower_prefixes()) {
    const int layers = count_layers(hf, hfp);
    for (int i = 0; i < layers; ++i) {
      const std::string c = canon + std::to_string(i) + ".", h = hfp + std::to_string(i) + ".";
      for (const auto& n : kBlockNames) out[c + n.canonical] = get(h + n.hf);
      out[c + "attn.in_proj_weight"] = torch::cat(
          {get(h + "self_attn.q_proj.weight"), get(h + "self_attn.k_proj.weight"), get(h + "self_attn.v_proj.weight")});
      out[c + "attn.in_proj_bias"] = torch::cat(
          {get(h + "self_attn.q_proj.bias"), get(h + "self_attn.k_proj.bias"), get(h + "self_attn.v_proj.bias")});
    }
  }
  return out;
}

TensorMap hf_from_canonical(const TensorMap& t) {
  TensorMap out;
  for (const auto& n : kTopNames) out[n.hf] = t.at(n.canonical);
  out["visual_projection.weight"] = t.at("visual.proj").t().contiguous();
  out["text_projection.weight"] = t.at("text_projection").t().contiguous();
  for (const auto& [canon, hfp] : tower_prefixes()) {
    const int layers = count_layers(t, canon);
    for (int i = 0; i < layers; ++i) {
      const std::string c = canon + std::to_string(i) + ".", h = hfp + std::to_string(i) + ".";
      for (const auto& n : kBlockNames) out[h + n.hf] = t.at(c + n.canonical);
      const auto w = t.at(c + "attn.in_proj_weight").chunk(3, 0);
      const auto b = t.at(c + "attn.in_proj_bias").chunk(3, 0);
      const char* names[] = {"q_proj", "k_proj", "v_proj"};
      for (int k = 0; k < 3; ++k) {
        out[h + "self_attn." + names[k] + ".weight"] = w[k].contiguous();
        out[h + "self_attn." + names[k] + ".bias"] = b[k].contiguous();
      }
    }
  }
  return out;
}

void save_state_dict(const std::string& path, const TensorMap& canonical, StateDictLayout layout) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : canonical)
    dict.insert((layout.module_prefix ? "module." : "") + name, t.detach().to(at::kCPU).contiguous());
  std::vector<char> bytes;
  if (layout.nested) {
    c10::impl::GenericDict root(c10::StringType::get(), c10::AnyType::get());
    root.insert(c10::IValue(std::string("state_dict")), c10::IValue(dict));
    root.insert(c10::IValue(std::string("epoch")), c10::IValue(int64_t{1}));
    bytes = torch::pickle_save(root);
  } else {
    bytes = torch::pickle_save(dict);
  }
  write_file_atomic(path, std::string_view(bytes.data(), bytes.size()));
}

void save_hf_safetensors(const std::string& path, const TensorMap& canonical) {
  write_safetensors(path, hf_from_canonical(canonical));
}

void save_openai_torchscript(const std::string& path, const TensorMap& canonical, const ClipConfig& config) {
  torch::jit::Module root("__torch__.model.CLIP");
  // Create the nested submodules of "a.b.c.weight" on demand.
  std::map<std::string, torch::jit::Module> modules;
  std::function<torch::jit::Module(const std::string&)> module_at = [&](const std::string& dotted) {
    if (dotted.empty()) return root;
    auto it = modules.find(dotted);
    if (it != modules.end()) return it->second;
    const size_t dot = dotted.rfind('.');
    torch::jit::Module parent = module_at(dot == std::string::npos ? "" : dotted.substr(0, dot));
    torch::jit::Module child("__torch__.model.Module");
    parent.register_module(dot == std::string::npos ? dotted : dotted.substr(dot + 1), child);
    modules.emplace(dotted, child);
    return child;
  };
  for (const auto& [name, t] : canonical) {
    const size_t dot = name.rfind('.');
    torch::jit::Module m = module_at(dot == std::string::npos ? "" : name.substr(0, dot));
    m.register_parameter(dot == std::string::npos ? name : name.substr(dot + 1), t.detach().to(at::kCPU).contiguous(),
                         false);
  }
  root.register_buffer("input_resolution", torch::tensor(int64_t{config.image_size()}));
  root.register_buffer("context_length", torch::tensor(int64_t{config.text.context_length}));
  root.register_buffer("vocab_size", torch::tensor(int64_t{config.text.vocab_size}));
  std::ostringstream out;
  root.save(out);
  write_file_atomic(path, out.str());
}

}  // namespace clipes

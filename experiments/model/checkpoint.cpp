#include "experiments/model/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "experiments/model/safetensors.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

int64_t FileSize(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return "[" + fmt::format("{}", fmt::join(shape, ", ")) + "]";
}

bool FloatDType(StDType t) {
  return t == StDType::kF32 || t == StDType::kF16 || t == StDType::kBF16;
}

// tensor name -> shard file (absolute), from model.safetensors.index.json.
std::map<std::string, std::string> ReadIndex(const fs::path& index, CheckpointInfo& info) {
  std::map<std::string, std::string> where;
  std::ifstream in(index);
  Json j;
  try {
    j = Json::parse(in);
  } catch (const Json::exception& e) {
    info.problems.push_back(fmt::format("{}: not valid JSON: {}", index.string(), e.what()));
    return where;
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
    info.problems.push_back(index.string() + ": no weight_map object");
    return where;
  }
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) {
      info.problems.push_back(
          fmt::format("{}: weight_map['{}'] is not a string", index.string(), name));
      continue;
    }
    where[name] = (index.parent_path() / file.get<std::string>()).string();
  }
  return where;
}

}  // namespace

std::string CheckpointInfo::DTypeSummary() const {
  if (dtype_params.size() == 1) return dtype_params.begin()->first;
  std::string out = "mixed:";
  for (const auto& [t, n] : dtype_params) out += fmt::format(" {} ({})", t, n);
  return out;
}

CheckpointInfo InspectCheckpoint(const std::string& dir) {
  CheckpointInfo info;
  info.dir = dir;
  const fs::path p(dir);
  const fs::path config = p / "config.json";
  if (!fs::is_directory(p)) {
    info.problems.push_back(dir + ": not a directory");
    return info;
  }
  try {
    info.config = ModelConfig::FromHfFile(config.string());
    info.config_ok = true;
  } catch (const std::exception& e) {
    info.problems.push_back(e.what());
  }
  info.bytes_on_disk += FileSize(config);
  const fs::path single = p / "model.safetensors", index = p / "model.safetensors.index.json";
  std::map<std::string, std::string> where;  // tensor -> file
  if (fs::exists(single)) {
    info.files.push_back(single.string());
  } else if (fs::exists(index)) {
    info.bytes_on_disk += FileSize(index);
    where = ReadIndex(index, info);
    for (const auto& [name, file] : where)
      if (std::find(info.files.begin(), info.files.end(), file) == info.files.end())
        info.files.push_back(file);
  } else {
    info.problems.push_back(
        fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir));
    return info;
  }
  // name -> (file, dtype, shape)
  std::map<std::string, std::pair<std::string, TensorView>> found;
  for (const auto& file : info.files) {
    if (!fs::exists(file)) {
      info.problems.push_back(
          fmt::format("{}: shard listed in {} is missing", file, index.filename().string()));
      continue;
    }
    info.bytes_on_disk += FileSize(file);
    try {
      const SafetensorsFile st(file);
      for (const auto& name : st.Names()) {
        TensorView v = st.Get(name);
        v.data = nullptr;  // only the header outlives the mapping
        found.emplace(name, std::pair{file, v});
      }
    } catch (const SafetensorsError& e) {
      info.problems.push_back(e.what());
    }
  }
  for (const auto& [name, file] : where)
    if (fs::exists(file) && (!found.count(name) || found.at(name).first != file))
      info.problems.push_back(fmt::format("{}: tensor '{}' listed in {} is not in it", file, name,
                                          index.filename().string()));
  if (!info.config_ok) return info;

  const ModelConfig& c = info.config;
  std::vector<std::string> names;
  for (const auto& [name, _] : found) names.push_back(name);
  const std::string prefix = CheckpointNamePrefix(c, names);
  std::set<std::string> expected;
  const auto tensors = CheckpointTensors(c, prefix);
  // Weights of another family (a mislabeled model_type): say so first, not only what is missing.
  if (!found.empty() &&
      std::none_of(tensors.begin(), tensors.end(),
                   [&](const CheckpointTensor& t) { return found.count(t.name); }))
    info.problems.push_back(fmt::format(
        "{}: none of the {} tensors a {} of this config has is there (it holds '{}', ...): "
        "config.json's model_type '{}' does not match the weights",
        dir, tensors.size(), c.model_type, found.begin()->first, c.model_type));
  for (const auto& t : tensors) {
    expected.insert(t.name);
    const auto it = found.find(t.name);
    if (it == found.end()) {
      if (where.empty() || !where.count(t.name))  // index problems are reported above
        info.problems.push_back(fmt::format("{}: missing tensor '{}' (a {} of this config has it)",
                                            dir, t.name, c.model_type));
      continue;
    }
    const auto& [file, v] = it->second;
    if (v.shape != t.shape)
      info.problems.push_back(fmt::format("{}: tensor '{}' has shape {}, config.json needs {}",
                                          file, t.name, ShapeText(v.shape), ShapeText(t.shape)));
    if (!FloatDType(v.dtype))
      info.problems.push_back(fmt::format("{}: tensor '{}' is {}, not F32, F16 or BF16", file,
                                          t.name, ToString(v.dtype)));
    info.dtype_params[std::string(ToString(v.dtype))] += v.numel();
  }
  for (const auto& [name, fv] : found)
    if (!expected.count(name) && !IsIgnoredCheckpointTensor(c, name))
      info.problems.push_back(fmt::format("{}: unexpected tensor '{}' (not in a {} of this config)",
                                          fv.first, name, c.model_type));
  return info;
}

std::vector<std::pair<std::string, std::string>> RoleTargets(const ModelConfig& c) {
  ModelConfig one = c;
  one.num_hidden_layers = 1;  // layer 0 names, shown with N
  const int64_t q = c.q_dim(), kv = c.kv_dim();
  std::vector<std::pair<std::string, std::string>> out;
  const auto layer_name = [](std::string name) {
    const auto at = name.find(".0.");
    if (at != std::string::npos) name.replace(at, 3, ".N.");
    return name;
  };
  for (const auto& t : CheckpointTensors(one)) {
    const std::string n = layer_name(t.name);
    switch (t.slot) {
      case Slot::kQ: out.push_back({"q", n}); break;
      case Slot::kK: out.push_back({"k", n}); break;
      case Slot::kV: out.push_back({"v", n}); break;
      case Slot::kO: out.push_back({"o", n}); break;
      case Slot::kGate: out.push_back({"gate", n}); break;
      case Slot::kUp: out.push_back({"up", n}); break;
      case Slot::kDown: out.push_back({"down", n}); break;
      case Slot::kQkv: {
        const bool neox = t.stored == StoredAs::kHeadInterleaved;
        const auto slice = [&](int64_t b, int64_t e, const char* which) {
          // GPT-2's Conv1D is stored [in, out]: its q/k/v are column ranges.
          return neox ? fmt::format("{} ({} block of each head's [q|k|v] rows)", n, which)
                      : fmt::format("{} (columns {}..{})", n, b, e - 1);
        };
        out.push_back({"q", slice(0, q, "first")});
        out.push_back({"k", slice(q, q + kv, "second")});
        out.push_back({"v", slice(q + kv, q + 2 * kv, "third")});
        break;
      }
      default: break;
    }
  }
  return out;
}

void CheckSpecCheckpoints(const SweepSpec& spec) {
  constexpr size_t kShown = 10;
  std::set<std::string> checked;
  std::vector<std::string> errors;
  const auto check = [&](const StageSpec& st, const Json& value, int line) {
    if (!value.is_string() || value.get<std::string>().empty()) return;
    const std::string dir = value.get<std::string>();
    if (!checked.insert(dir).second) return;
    const CheckpointInfo info = InspectCheckpoint(dir);
    if (info.ok()) return;
    std::string msg = fmt::format("{}:{}: stage '{}': params.base: checkpoint {}: {} problem(s)",
                                  spec.source_path, line, st.name, dir, info.problems.size());
    for (size_t i = 0; i < info.problems.size() && i < kShown; ++i)
      msg += "\n  " + info.problems[i];
    errors.push_back(std::move(msg));
  };
  for (const auto& st : spec.stages) {
    if (st.params.is_object() && st.params.contains("base"))
      check(st, st.params.at("base"), st.line);
    for (const auto* axes : {&st.grid, &st.zip})
      for (const auto& axis : *axes)
        if (axis.key == "base")
          for (const auto& v : axis.values) check(st, v, axis.line);
  }
  if (!errors.empty()) throw SpecError(std::move(errors));
}

Json CheckpointJson(const CheckpointInfo& info) {
  const ModelConfig& c = info.config;
  Json rope = nullptr;
  if (!c.learned_positions) {
    rope = {{"theta", c.rope_theta}, {"rotary_dim", c.rope_dim()}};
    if (!c.rope_scaling_type.empty()) {
      rope["scaling"] = c.rope_scaling_type;
      rope["factor"] = c.rope_scaling_factor;
    }
  }
  Json roles = Json::object();
  for (const auto& [role, where] : RoleTargets(c)) roles[role] = where;
  return {{"dir", info.dir},
          {"family", c.model_type},
          {"parameters", c.num_params()},
          {"dtype", info.DTypeSummary()},
          {"layers", c.num_hidden_layers},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"heads", c.num_attention_heads},
          {"kv_heads", c.num_key_value_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_position_embeddings},
          {"positions", c.learned_positions ? "learned" : "rope"},
          {"rope", rope},
          {"sliding_window", c.sliding_window},
          {"tied_embeddings", c.tie_word_embeddings},
          {"files", info.files},
          {"bytes_on_disk", info.bytes_on_disk},
          {"lora_roles", roles}};
}

}  // namespace seedgrid

#include "experiments/model/roles.h"

#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "experiments/model/model.h"

namespace seedgrid {
namespace {

// The roles a checkpoint slot holds, in the model's row order.
std::vector<ModuleKind> RolesOfSlot(Slot s) {
  switch (s) {
    case Slot::kQ: return {ModuleKind::kQ};
    case Slot::kK: return {ModuleKind::kK};
    case Slot::kV: return {ModuleKind::kV};
    case Slot::kQkv: return {ModuleKind::kQ, ModuleKind::kK, ModuleKind::kV};
    case Slot::kO: return {ModuleKind::kO};
    case Slot::kGate: return {ModuleKind::kGate};
    case Slot::kUp: return {ModuleKind::kUp};
    case Slot::kDown: return {ModuleKind::kDown};
    default: return {};
  }
}

int64_t OutRows(const ModelConfig& c, ModuleKind m) {
  switch (m) {
    case ModuleKind::kQ: return c.q_dim();
    case ModuleKind::kK:
    case ModuleKind::kV: return c.kv_dim();
    case ModuleKind::kGate:
    case ModuleKind::kUp: return c.intermediate_size;
    default: return c.hidden_size;  // o, down
  }
}

int64_t InCols(const ModelConfig& c, ModuleKind m) {
  switch (m) {
    case ModuleKind::kO: return c.q_dim();
    case ModuleKind::kDown: return c.intermediate_size;
    default: return c.hidden_size;
  }
}

// The model's [out, in] layout of a checkpoint tensor -> the file's layout, and back.
torch::Tensor ToStored(const ModelConfig& c, const CheckpointTensor& t, const torch::Tensor& m) {
  const int64_t H = c.num_attention_heads, D = c.head_dim;
  switch (t.stored) {
    case StoredAs::kAsIs: return m;
    case StoredAs::kTransposed: return m.t().contiguous();
    case StoredAs::kHeadInterleaved:  // [q|k|v][head][D] rows -> [head][q|k|v][D]
      return m.view({3, H, D, m.size(1)}).permute({1, 0, 2, 3}).reshape({3 * H * D, m.size(1)});
  }
  throw std::logic_error("ToStored: unknown layout");
}

torch::Tensor FromStored(const ModelConfig& c, const CheckpointTensor& t, const torch::Tensor& s) {
  const int64_t H = c.num_attention_heads, D = c.head_dim;
  switch (t.stored) {
    case StoredAs::kAsIs: return s;
    case StoredAs::kTransposed: return s.t().contiguous();
    case StoredAs::kHeadInterleaved:
      return s.view({H, 3, D, s.size(1)}).permute({1, 0, 2, 3}).reshape({3 * H * D, s.size(1)});
  }
  throw std::logic_error("FromStored: unknown layout");
}

// The checkpoint tensors of `c` that hold roles, by name.
std::map<std::string, CheckpointTensor> RoleTensors(const ModelConfig& c) {
  std::map<std::string, CheckpointTensor> out;
  for (auto& t : CheckpointTensors(c))
    if (!RolesOfSlot(t.slot).empty()) out.emplace(t.name, std::move(t));
  return out;
}

}  // namespace

std::vector<std::string> RolesOfCheckpointTensor(const ModelConfig& c, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& t : CheckpointTensors(c))
    if (t.name == name)
      for (ModuleKind m : RolesOfSlot(t.slot)) out.push_back(HfWeightName(t.layer, m));
  return out;
}

std::map<std::string, torch::Tensor> CheckpointDeltas(
    const ModelConfig& c, const std::map<std::string, torch::Tensor>& role_deltas) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> out;
  size_t used = 0;
  for (const auto& [name, t] : RoleTensors(c)) {
    const auto roles = RolesOfSlot(t.slot);
    bool any = false;
    for (ModuleKind m : roles) any = any || role_deltas.count(HfWeightName(t.layer, m)) != 0;
    if (!any) continue;
    std::vector<torch::Tensor> blocks;
    for (ModuleKind m : roles) {
      const std::string role = HfWeightName(t.layer, m);
      const auto it = role_deltas.find(role);
      const std::vector<int64_t> shape{OutRows(c, m), InCols(c, m)};
      if (it == role_deltas.end()) {
        blocks.push_back(torch::zeros(shape, role_deltas.begin()->second.options()));
        continue;
      }
      ++used;
      if (it->second.sizes() != torch::IntArrayRef(shape))
        throw std::runtime_error(fmt::format("delta of '{}' is [{}], the {} weight is [{}]", role,
                                             fmt::join(it->second.sizes(), ", "), c.model_type,
                                             fmt::join(shape, ", ")));
      blocks.push_back(it->second);
    }
    out[name] = ToStored(c, t, blocks.size() == 1 ? blocks[0] : torch::cat(blocks));
  }
  if (used != role_deltas.size())
    for (const auto& [role, d] : role_deltas)
      if (const auto p = ParseHfWeightName(role);
          !p || p->first >= c.num_hidden_layers || (p->second == ModuleKind::kGate && !c.gated_mlp))
        throw std::runtime_error(
            fmt::format("delta of '{}': not a {} linear weight of a {}-layer model", role,
                        c.model_type, c.num_hidden_layers));
  return out;
}

std::map<std::string, torch::Tensor> RoleDeltas(
    const ModelConfig& c, const std::map<std::string, torch::Tensor>& checkpoint_deltas) {
  torch::NoGradGuard no_grad;
  const auto tensors = RoleTensors(c);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, d] : checkpoint_deltas) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (ParseHfWeightName(name)) {  // already a role name
        out[name] = d;
        continue;
      }
      throw std::runtime_error(fmt::format(
          "delta '{}' is not a linear weight (q/k/v/o/gate/up/down) of a {}", name, c.model_type));
    }
    const CheckpointTensor& t = it->second;
    if (d.sizes() != torch::IntArrayRef(t.shape))
      throw std::runtime_error(fmt::format("delta of '{}' is [{}], the checkpoint stores [{}]",
                                           name, fmt::join(d.sizes(), ", "),
                                           fmt::join(t.shape, ", ")));
    const auto roles = RolesOfSlot(t.slot);
    const torch::Tensor m = FromStored(c, t, d);
    int64_t row = 0;
    for (ModuleKind r : roles) {
      const int64_t n = OutRows(c, r);
      auto block = m.narrow(0, row, n);
      row += n;
      if (roles.size() > 1 && !block.ne(0).any().item<bool>()) continue;  // not targeted
      out[HfWeightName(t.layer, r)] = block.contiguous();
    }
  }
  return out;
}

}  // namespace seedgrid

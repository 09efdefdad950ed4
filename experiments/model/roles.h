// Adapter roles (q, k, v, o, gate, up, down) and the checkpoint tensors they live in.
//
// Inside seedgrid every family's linear weights are addressed by role names
// ("model.layers.N.self_attn.q_proj.weight", HfWeightName) in the [out, in] orientation, so
// adapters, edits and ablation lenses treat GPT-2, GPT-NeoX and Llama alike. What a user applies
// a delta to, though, is the checkpoint's own tensor. These two functions translate between the
// two, per family (docs/models.md, "LoRA/IA3 roles"):
//   * Llama, Mistral, Qwen2/3, Gemma/Gemma2: a role name IS the checkpoint name; identity.
//   * GPT-2: o, up, down are `h.N.attn.c_proj`, `h.N.mlp.c_fc`, `h.N.mlp.c_proj`, stored
//     transposed ([in, out], Conv1D); q, k, v share the fused `h.N.attn.c_attn.weight`
//     [d, 3d], columns q | k | v.
//   * GPT-NeoX: o, up, down are `attention.dense`, `mlp.dense_h_to_4h`, `mlp.dense_4h_to_h`
//     ([out, in]); q, k, v share `attention.query_key_value.weight`, rows per head [q|k|v].
// A fused tensor gets ONE delta, the whole fused matrix in the file's layout, with zero blocks
// for the roles that were not targeted: `W_file + dW` is the adapted checkpoint tensor.
// Names are the published ones (GPT-2 without GPT2LMHeadModel's "transformer." prefix).
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "experiments/model/config.h"

namespace seedgrid {

// Role-named [out, in] deltas -> checkpoint-named deltas in the stored layout. Throws naming a
// role weight that `c` does not have or whose shape does not match.
std::map<std::string, torch::Tensor> CheckpointDeltas(
    const ModelConfig& c, const std::map<std::string, torch::Tensor>& role_deltas);

// The inverse: checkpoint-named deltas (a tensor of `c` holding roles) -> role-named [out, in]
// deltas. A fused tensor's blocks that are exactly zero (roles not targeted) are left out.
// Role names pass through unchanged. Throws naming a tensor that holds no role.
std::map<std::string, torch::Tensor> RoleDeltas(
    const ModelConfig& c, const std::map<std::string, torch::Tensor>& checkpoint_deltas);

// The role weight names (in the model's row order) a checkpoint tensor holds: the q, k, v names
// of a fused c_attn / query_key_value, one name otherwise; empty for a tensor holding none.
std::vector<std::string> RolesOfCheckpointTensor(const ModelConfig& c, const std::string& name);

}  // namespace seedgrid

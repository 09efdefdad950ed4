// Checking an HF checkpoint directory without loading a weight and without LibTorch, so the
// coordinator can refuse a bad checkpoint at plan time (`seedgrid run --dry-run` and every
// launch) and `seedgrid model inspect` can describe one.
//
// What is checked, all problems collected (the caller prints the first few):
//   * config.json parses and names a supported family (ModelConfig::FromHfFile);
//   * model.safetensors exists, or model.safetensors.index.json does and every shard it lists
//     exists and holds the tensors the index places there;
//   * every safetensors header parses (SafetensorsFile validates offsets and sizes);
//   * every tensor CheckpointTensors() expects is present with that shape and a float dtype
//     (F32, F16, BF16); no tensor is there that the family does not have (known buffers such
//     as rotary_emb.inv_freq excepted).
// Only headers are read: the files are memory-mapped and their data pages never touched.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/spec.h"
#include "experiments/model/config.h"

namespace seedgrid {

struct CheckpointInfo {
  std::string dir;
  bool config_ok = false;
  ModelConfig config;                           // meaningful when config_ok
  std::vector<std::string> files;               // the safetensors files (index order)
  int64_t bytes_on_disk = 0;                    // config + index + safetensors files
  std::map<std::string, int64_t> dtype_params;  // "BF16" -> parameters stored so
  std::vector<std::string> problems;            // each "<file>: <what>"; empty when loadable

  bool ok() const { return problems.empty(); }
  // "BF16", or "mixed: F32 (n), BF16 (m)".
  std::string DTypeSummary() const;
};

CheckpointInfo InspectCheckpoint(const std::string& dir);

// For each adapter role (q, k, v, o, gate, up, down) of the family, the checkpoint tensor it
// lives in, with "N" for the layer ("h.N.attn.c_attn.weight (rows 0..767)").
std::vector<std::pair<std::string, std::string>> RoleTargets(const ModelConfig& c);

// Plan-time check (issue 16 point 5): opens every checkpoint a spec names in `params.base`
// (the stage's value and every grid/zip value of the `base` axis) with InspectCheckpoint and
// throws SpecError "<spec>:<line>: stage '<s>': params.base: checkpoint <dir>: ..." with the
// first problems of every bad one. Called by `seedgrid run/rerun` (dry run, self-launcher and
// rank 0) before anything is written or dispatched.
void CheckSpecCheckpoints(const SweepSpec& spec);

// A JSON description (family, shapes, dtype, rope, tied, size, roles) for `model inspect`.
Json CheckpointJson(const CheckpointInfo& info);

}  // namespace seedgrid

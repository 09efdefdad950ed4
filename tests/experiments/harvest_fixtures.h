// Fixtures of the harvest runner tests (harvest_test.cpp, harvest_text_test.cpp): a freshly
// pretrained base model and a harvest shard's task.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/runner.h"
#include "experiments/pretrain/pretrain.h"
#include "tests/support/file_context.h"

namespace seedgrid::testing {

// RunPretrain with `params` (not merged: pass PretrainKindConfig().defaults with changes) into
// dir/base.h5 and dir/base: the needed pretrain shard a harvest finds among its inputs.
inline InputArtifact PretrainFixture(const std::filesystem::path& dir, const Json& params) {
  ShardTaskView v;
  v.key = ShardKey({.id = ShardId{"base000000000000"}, .kind = "pretrain"}, params, Json::object());
  FileShardContext ctx(v, dir / "base.h5", dir / "base");
  RunPretrain(ctx);
  ctx.Close();
  InputArtifact in;
  in.key = ShardKey({.id = v.key.id(), .kind = "pretrain"});
  in.path = (dir / "base.h5").string();
  in.artifact_dir = (dir / "base").string();
  return in;
}

// A harvest shard of seed 3 with `role` (single, map, reduce) and `inputs`.
inline ShardTaskView HarvestTask(const std::string& id, Json params, const std::string& role,
                                 std::vector<InputArtifact> inputs) {
  ShardTaskView v;
  v.key = ShardKey({.id = ShardId{id}, .kind = "harvest", .seed = 3, .role = ParseShardRole(role)},
                   std::move(params), Json::object());
  v.inputs = std::move(inputs);
  return v;
}

}  // namespace seedgrid::testing

// kind: command — runs the user's own executable per shard (docs/command.md is the user's
// contract: params, placeholders, environment, files, exit rules).
//
// Split as every kind is: the config half (params, validation, the plan-time placeholder check
// and the `code:` digest; config.cpp) links into the coordinator, the runner half (runner.cpp,
// results.cpp) into the worker and executor. Neither includes LibTorch.
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

void RegisterCommandConfig(KindRegistry& kinds);
void RegisterCommandRunners(RunnerRegistry& runners);

}  // namespace seedgrid

// The registration calls generated from the seedgrid_kind lines of experiments/CMakeLists.txt
// (experiments/kinds.cmake): every kind of this build, in registration order. AllKinds() and
// AllRunners() (core/kinds.h, core/runner.h) hold their result; a test may build its own.
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

void RegisterExperimentKinds(KindRegistry& kinds);        // in seedgrid_kinds
void RegisterExperimentRunners(RunnerRegistry& runners);  // in seedgrid_runners

}  // namespace seedgrid

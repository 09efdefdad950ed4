// kind `echo`: the smallest complete kind, used only in tests (tests/kinds/echo/echo_test.cpp)
// and the worked example of docs/adding-a-kind.md. It writes a line y = scale·x + offset (its
// datasets and metrics: layout.h) and offers two figures, echo_curve and echo_loss.
//
// params (defaults in config.cpp): n (points, >= 2), rows (>= 1), scale, offset.
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

KindConfig EchoKindConfig();                        // config.cpp
void RegisterEchoConfig(KindRegistry& kinds);       // config.cpp
void RunEcho(ShardContext& ctx);                    // runner.cpp
void RegisterEchoRunners(RunnerRegistry& runners);  // runner.cpp

}  // namespace seedgrid

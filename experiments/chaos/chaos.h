// kinds chaos and noop (one folder: experiments/chaos/; names written: layout.h).
// chaos: fault injection for tests and demos. noop: does nothing, writes nothing (dispatch
// benchmarks measure the runtime's own per-shard cost with it).
//
// chaos params: sleep_ms, mode (ok | throw | exit | abort | segfault | hang | allocate),
// exit_code, allocate_mb, and conditions that gate the mode: fail_until_attempt k (inject while
// attempt < k) and fail_while_file_exists PATH (inject while PATH exists). With a condition
// the shard injects only while it holds and succeeds otherwise, so a test can "fix the
// environment" and rerun. A successful chaos shard writes `chaos/values` [8] f64 (a function of
// seed and params) and the metrics `value` and `sleep_ms` (unless write: false); with write_mb
// > 0 also `chaos/blob`, that many MiB of incompressible bytes (to fill a disk on purpose).
// fork_child: true first forks a child process that sleeps until killed (a shard's own
// subprocess).
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

void RegisterChaosConfig(KindRegistry& kinds);  // chaos and noop
void RegisterChaosRunners(RunnerRegistry& runners);

}  // namespace seedgrid

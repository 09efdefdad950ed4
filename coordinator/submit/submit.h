// `seedgrid submit`: one sweep, one Slurm allocation.
//
// RunSubmit validates the spec (LoadSpec + ExpandSpec against AllKinds(): an invalid spec
// submits nothing), renders slurm/seedgrid.sbatch.in into <out>/<sweep>/slurm/, calls
// `sbatch --parsable` once (plus once per --chain follow-up, each with
// --dependency=afterany:<previous>) and records every job id in the registry: provenance key
// "slurm.job_ids" (comma-separated, appended) and one row per job in the `slurm_jobs` table
// (Registry::AddSlurmJobs), under the registry's RunLock like every writer: a registry in use
// by a running sweep is refused before anything is queued. --print renders and prints,
// touching nothing.
//
// The rendered job runs `seedgrid run SPEC [k=v ...] --out DIR --registry PATH` (fresh sweep
// and --resume alike: run resumes whatever is not done) or, for --rerun SWEEP,
// `seedgrid rerun SWEEP --failed --registry PATH`, under `srun --mpi=pmix` (mpirun inside the
// allocation where pmix is missing) with rank 0 as the coordinator and one worker rank per GPU
// (per --workers-per-node on CPU clusters). docs/slurm.md describes the script.
//
// Template lookup (first that exists): SubmitOptions::template_path, $SEEDGRID_SBATCH_TEMPLATE,
// the source tree's slurm/seedgrid.sbatch.in, <exe>/../share/seedgrid/seedgrid.sbatch.in, then
// the copy embedded at build time, so the binary works from anywhere. $SEEDGRID_SBATCH names
// the sbatch to call (default: `sbatch` on PATH); tests point it at a fake.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace seedgrid {

struct SubmitOptions {
  std::string spec_path;               // required, except with rerun_sweep
  std::vector<std::string> overrides;  // key=value, applied to the spec
  int nodes = 1;
  int gpus_per_node = 0;
  int cpus_per_gpu = 0;  // 0: Slurm's default
  std::string mem;       // per node, Slurm syntax ("64G"); empty: Slurm's default
  std::string time;      // walltime, Slurm syntax ("30", "4:00:00", "1-12"); required
  std::string partition, account;
  bool print_only = false;
  std::string resume_sweep, rerun_sweep;  // at most one
  int chain = 0;                // follow-up jobs (afterany) that resume until the sweep is done
  std::string registry_path;    // default <out>/registry.sqlite
  std::string out_dir;          // default: the spec's `out`
  std::string seedgrid_binary;  // absolute path of the running seedgrid; empty: /proc/self/exe
  int workers_per_node = 0;     // CPU clusters: worker ranks per node when gpus_per_node = 0
  std::vector<std::string> extra_sbatch;  // extra sbatch options, e.g. "--qos=high"
  // Walltime warning "SIG@SECONDS": Slurm sends SIG to the batch shell SECONDS before the end
  // (--signal=B:SIG@SECONDS); the script forwards it to the coordinator.
  std::string signal = "USR1@120";
  std::string template_path;  // explicit template; empty: the lookup above
};

// Returns 0 after submitting (or printing). Throws UsageError (bad flags, unknown sweep) and
// SpecError (invalid spec) for exit code 2; std::runtime_error when sbatch fails.
int RunSubmit(const SubmitOptions& opts);

// The rendered batch script for opts, without writing or submitting anything (what --print
// shows). Validates like RunSubmit.
std::string RenderSubmitScript(const SubmitOptions& opts);

// What RunSubmit prints after queueing, for watching the sweep live (docs/serve.md): the
// `seedgrid serve` command for the login node `host`, and the SSH port forward that shows its
// page on a laptop (`user`@`host`; 8765 is serve's default port).
std::string ServeHint(const std::string& seedgrid_binary, const std::string& registry,
                      const std::string& user, const std::string& host);

// Adds the `submit` flags to a CLI11 subcommand, writing into *opts (which must outlive
// parsing). Positional: SPEC then k=v overrides.
void AddSubmitFlags(CLI::App& app, SubmitOptions* opts);

// The sbatch template embedded at build time.
std::string_view EmbeddedSbatchTemplate();

}  // namespace seedgrid

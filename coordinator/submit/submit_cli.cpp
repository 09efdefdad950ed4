#include <CLI/CLI.hpp>

#include "coordinator/submit/submit.h"

namespace seedgrid {

void AddSubmitFlags(CLI::App& app, SubmitOptions* o) {
  app.add_option("spec", o->spec_path, "Sweep spec (YAML); optional with --rerun");
  app.add_option("overrides", o->overrides, "key=value overrides applied to the spec");
  app.add_option("--nodes,-N", o->nodes, "Nodes to allocate")->capture_default_str();
  app.add_option("--gpus-per-node,-G", o->gpus_per_node, "GPUs per node: one worker rank per GPU")
      ->capture_default_str();
  app.add_option("--cpus-per-gpu", o->cpus_per_gpu, "CPUs per GPU (sbatch --cpus-per-gpu)");
  app.add_option("--workers-per-node", o->workers_per_node,
                 "CPU clusters (no GPUs): worker ranks per node (default 1)");
  app.add_option("--mem", o->mem, "Memory per node, Slurm syntax (64G)");
  app.add_option("--time,-t", o->time, "Walltime, Slurm syntax (30, 4:00:00, 1-12)");
  app.add_option("--partition,-p", o->partition, "Slurm partition");
  app.add_option("--account,-A", o->account, "Slurm account");
  app.add_flag("--print", o->print_only, "Print the batch script; submit nothing");
  auto* resume = app.add_option("--resume", o->resume_sweep,
                                "Resubmit everything of SWEEP that is not done (same SPEC)");
  auto* rerun =
      app.add_option("--rerun", o->rerun_sweep, "Resubmit only the failed shards of SWEEP");
  resume->excludes(rerun);
  app.add_option("--chain", o->chain,
                 "Queue K follow-up jobs (afterany) that resume until the sweep is done");
  app.add_option("--registry", o->registry_path, "Registry (default <out>/registry.sqlite)");
  app.add_option("--out", o->out_dir, "Artifacts root (default: the spec's `out`)");
  app.add_option(
         "--signal", o->signal,
         "Walltime warning SIG@SECONDS sent to the batch shell and forwarded to the coordinator")
      ->capture_default_str();
  // One value per occurrence: `--sbatch-arg=--qos=high k=v` keeps k=v an override.
  app.add_option("--sbatch-arg", o->extra_sbatch,
                 "Extra sbatch option, repeatable (--sbatch-arg=--qos=high)")
      ->allow_extra_args(false);
  app.add_option("--template", o->template_path,
                 "sbatch template (default slurm/seedgrid.sbatch.in)");
}

}  // namespace seedgrid

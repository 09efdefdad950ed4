// A launch's start-up, before the scheduler's loop: the launch recorded (RecordLaunch), then
// every planned shard's state, read from the registry and reconciled with the files on disk
// (ReconcileLaunch):
//
//   * Membership: a shard another sweep already recorded (same content address) joins this
//     sweep too (Registry::AddMembers), keeps its state, and is never computed twice.
//   * Done shards: their published file is stat'ed; a file whose stamp equals the one recorded
//     when it was published is taken as it is; any other file is opened and checked in full
//     (core/shard_check.h). A missing file, or one that fails the check (moved aside to
//     `*.damaged-<time>`), sends the shard back to pending with a fresh attempt budget; a
//     damaged file is also recorded as an attempt row (outcome error) saying why.
//   * Not-done shards whose file was published before a crash (the commit point is the rename)
//     are done, once their file passes the full check.
// The counts come back so the launch can say what it found.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "core/registry.h"
#include "core/spec.h"

namespace seedgrid {

// What a launch records about itself besides the plan.
struct LaunchFacts {
  std::string out_dir;      // absolute artifacts root
  std::string mpi_library;  // MpiSession::library_version()
  int n_workers = 0;
  std::string job_id;        // SLURM_JOB_ID ("" outside Slurm)
  std::string job_nodelist;  // SLURM_JOB_NODELIST (recorded with the job id)
  bool quiet = false;        // say nothing about recovered shards
};

// Records the launch in one transaction: the sweep row, every shard's spec (existing ones are
// kept), the provenance (spec path, overrides, versions, MPI library, Slurm job), the launch
// row; and recovers what a dead launch left running (its `running` shards become preempted).
// Returns the launch row's id (Registry::EndLaunch at the finish).
int64_t RecordLaunch(Registry& reg, const Plan& plan, const LaunchFacts& facts);

// Plan position of each shard id.
std::unordered_map<ShardId, int> PlanIndex(const Plan& plan);

struct LaunchStates {
  std::vector<ShardState> states;      // by plan position
  std::vector<std::string> out_paths;  // where each shard's file is, or will be published
  std::vector<int> attempt_numbers;    // attempts numbered so far, damaged-file rows included
  std::vector<char> recompute;         // was done, its file missing or damaged: fresh budget
  int shared = 0;                      // shards first recorded by another sweep
  int missing = 0;                     // done shards whose file is gone
  int damaged = 0;                     // files that failed the check (moved aside)
  int recovered = 0;                   // published before an interruption: done without recomputing
};

// Reads and reconciles the states of `plan`'s shards (recorded already) as above, writing the
// changes to `reg` in one transaction. `index`: plan position of each shard id.
LaunchStates ReconcileLaunch(Registry& reg, const Plan& plan, const std::string& out_dir,
                             const std::string& reg_dir,
                             const std::unordered_map<ShardId, int>& index);

// Says what ReconcileLaunch found (nothing when it found nothing).
void PrintReconciliation(const LaunchStates& s);

// The sweep's spec beside its results, `<out>/<sweep>/sweep.json` (name, spec text and path,
// overrides, spec hash): what `seedgrid reindex` restores a lost registry's sweep row from, so
// `rerun` and `report` work after it. Written atomically at every launch.
void WriteSweepSpecFile(const std::string& out_dir, const SweepSpec& spec);
std::string SweepSpecFilePath(const std::string& out_dir, const std::string& sweep);

// `path` relative to `base_dir` when it lies below it (how the registry stores artifacts).
std::string RelativeTo(const std::string& path, const std::string& base_dir);

// Where results.h5's links point: a shard file's path relative to <out>/<sweep>/, from its
// artifact as the registry stores it (relative to the registry's directory, or absolute). A
// shared shard's file lies in the directory of the sweep that computed it. String work only,
// no std::filesystem::path per link (one per done shard, 10^5-10^6 of them).
class ResultsTargets {
 public:
  ResultsTargets(const std::string& out_dir, const std::string& sweep, const std::string& reg_dir);
  std::string For(const std::string& artifact) const;

 private:
  std::string sweep_dir_;  // absolute, normal
  std::string in_sweep_;   // "<sweep>/" when the registry's directory is <out>, else ""
  std::string to_reg_;     // from the sweep's directory to the registry's, with a trailing '/'
};

}  // namespace seedgrid

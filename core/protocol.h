// Messages between the coordinator (rank 0), the workers (ranks >= 1) and each worker's executor
// child, and their codec. One closed std::variant per direction; plain data; versioned frames.
// The same bytes travel over MPI (coordinator <-> worker) and over the executor pipe
// (worker <-> executor), so one codec serves both and tests round-trip every message.
//
// The protocol (pull scheduling):
//   1. A worker starts, launches its executor and sends Hello (host, local rank, GPU, threads).
//   2. The coordinator answers with up to `window` RunShard messages (1 or 2 in flight per
//      worker hides the dispatch latency). A shard is sent only when every shard it needs is done.
//   3. The worker runs shards in arrival order: single-rank shards in its executor (RunShard is
//      forwarded down the pipe), `isolation: inline` shards in the worker itself, gang shards
//      (`ranks: k`) on an MPI sub-communicator of the k workers named in RunShard::gang.
//   4. While a shard runs, the executor sends Progress (rate-limited) and LivePoints (the points
//      of its training curves, coalesced: at most one message a second per shard, see
//      LivePoints); the worker forwards them.
//   5. When a shard ends the worker sends ShardDone (outcome, error, metrics, artifact, peak
//      RSS). The executor sends a `memory` ShardDone itself (its limit is on the shard's growth
//      above the executor's baseline) and then dies; a crash or timeout kill of the executor
//      becomes a ShardDone written by the worker, which then restarts the executor. Every ShardDone
//      frees a slot; the coordinator refills it (step 2).
//   6. At the end, or on preemption, the coordinator sends Shutdown; a worker kills any shard
//      still running (it is recorded as preempted by the coordinator, not charged) and exits
//      with Shutdown::exit_code, so mpirun's exit code is the sweep's.
//
// Frame: u32 payload length, u16 version, u8 message tag, payload (little-endian fixed-width
// integers, u32-length-prefixed strings). A frame of another version is rejected with an error
// that names both versions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/shard_key.h"
#include "core/types.h"

namespace seedgrid {

// 2: a shard's file path and artifact directory travel compactly when they follow the store's
//    layout (<dir>/<id>.h5 and <dir>/<id>.files): a no-op shard's RunShard fits in 256 bytes,
//    Open MPI's limit for its fast, inline sends over shared memory (~0.06 µs a send here,
//    ~0.3 µs above it).
// 3: RunShard carries the shard's key (core/shard_key.h) as one encoding, the same for the
//    shard and each of its inputs: the role as one byte (ShardRole) where it was text compared
//    as text, the needs as a list of ids where they were a JSON string, and every input carries
//    its role and needs too (an input is a shard like any other). The attempt number stays a
//    typed i32 beside the key. A frame of version 2 is rejected (the versions' layouts differ
//    from the role on); a no-op RunShard is 11 bytes smaller (role 1 byte, no needs 4), inside 256.
//    Still v3 (unreleased): RunShard.grace_s (the stage's resources.grace, 8 bytes after
//    memory_mb) was added to the same version.
// 4: LivePoints (worker -> coordinator, tag 67): the points of a running shard's curves. Every
//    other message is as in version 3; a frame of version 3 is still rejected (one build per
//    sweep: a mixed one is a mistake to report, not to bridge).
inline constexpr uint16_t kProtocolVersion = 4;

// The store's layout (core/store.h): a shard's extra files sit beside its .h5.
std::string ArtifactDirFor(std::string_view h5_path);

// A needed shard's key and files (core/shard_key.h).
using InputRef = ShardInput;

// ---- coordinator -> worker (and worker -> executor) ----
struct RunShard {
  ShardKey key;  // id, stage, kind, role, seed, canonical params and axes, needs
  std::string sweep;
  int32_t attempt = 1;
  std::vector<InputRef> inputs;
  std::string out_path;      // final .h5 path (absolute)
  std::string artifact_dir;  // absolute
  double timeout_s = 0;
  int64_t memory_mb = 0;
  double grace_s = 0;  // SIGTERM -> SIGKILL grace (timeout, preemption); 0: the worker's
  Isolation isolation = Isolation::kExecutor;
  std::vector<int32_t> gang;  // world ranks of a gang shard (empty: single-rank)
  int32_t gang_id = 0;
  bool operator==(const RunShard&) const = default;
};

struct Shutdown {
  int32_t exit_code = 0;
  bool operator==(const Shutdown&) const = default;
};

using ToWorker = std::variant<RunShard, Shutdown>;

// ---- worker -> coordinator (and executor -> worker) ----
struct Hello {
  std::string host;
  int32_t local_rank = 0;
  std::string gpu;  // "" on CPU; UUID or index otherwise
  int64_t pid = 0;
  int32_t threads = 1;
  std::string slurm_job;  // "job.step" when under Slurm
  bool operator==(const Hello&) const = default;
};

struct Progress {
  ShardId id;
  int32_t attempt = 1;
  int64_t step = 0;
  int64_t total = 0;
  bool operator==(const Progress&) const = default;
};

struct ShardDone {
  ShardId id;
  int32_t attempt = 1;
  Outcome outcome = Outcome::kOk;
  int32_t signal = 0;
  int32_t exit_code = 0;
  std::string error;
  std::vector<std::pair<std::string, double>> metrics;
  std::string artifact;  // published .h5 path ("" when the kind writes none)
  double start = 0;      // unix seconds
  double end = 0;
  int64_t peak_rss_kb = 0;
  bool operator==(const ShardDone&) const = default;
};

// Live curves of a running shard (loss per step of a training kind; a command's metrics.jsonl
// lines with a step), for `seedgrid serve`. Why and how bounded:
//   * A training loop reports a point per step, thousands a second for a small model; one
//     message per point would cost the coordinator a receive and a registry row each, on the
//     thread that dispatches. So points are coalesced where they are made (core/live.h:
//     LiveCoalescer, in the executor or the worker) and sent at most once per
//     kLiveInterval per shard, plus once at the shard's end (its last points, before ShardDone).
//   * One message holds at most kLiveMaxCurves curves of at most kLiveMaxPoints points each:
//     when a curve gathers more within an interval, every other point is dropped (its latest
//     always kept), so a curve stays evenly thinned and its newest value is always sent. A
//     message is thus at most ~16 x 64 x 16 bytes (~16 KiB), a second, per running shard.
//   * Curves past the first kLiveMaxCurves names of a shard are dropped (a loop logging a new
//     name per step cannot flood the registry).
// The coordinator records them (live_points, core/registry.h) only while the attempt is the
// running one; a late message of an ended attempt is dropped like a late Progress.
struct LiveCurve {
  std::string name;
  std::vector<int64_t> steps;  // in the order reported
  std::vector<double> values;  // one per step
  bool operator==(const LiveCurve&) const = default;
};
inline constexpr double kLiveInterval = 1.0;  // seconds between two messages of a shard
inline constexpr size_t kLiveMaxCurves = 16;
inline constexpr size_t kLiveMaxPoints = 64;

struct LivePoints {
  ShardId id;
  int32_t attempt = 1;
  std::vector<LiveCurve> curves;
  bool operator==(const LivePoints&) const = default;
};

// New alternatives go at the end: MessageName and the codec's tags follow this order.
using FromWorker = std::variant<Hello, Progress, ShardDone, LivePoints>;

// ---- codec ----
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Appends one frame to *out.
void Encode(const ToWorker& msg, std::string* out);
void Encode(const RunShard& msg, std::string* out);  // the same frame as Encode(ToWorker{msg})
void Encode(const FromWorker& msg, std::string* out);
// Decodes exactly one whole frame (as received from MPI). Throws ProtocolError.
ToWorker DecodeToWorker(std::string_view frame);
FromWorker DecodeFromWorker(std::string_view frame);

// For streams (pipes): the length of the first whole frame in `buf`, or nullopt when more bytes
// are needed. Throws ProtocolError on an impossible length.
std::optional<size_t> WholeFrameSize(std::string_view buf);

std::string_view MessageName(const ToWorker& msg);
std::string_view MessageName(const FromWorker& msg);

}  // namespace seedgrid

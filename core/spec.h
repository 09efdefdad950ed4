// Sweep specs: YAML -> validated SweepSpec -> expanded Plan of content-addressed shards.
//
// Grammar (docs/spec.md documents every key and default):
//   name, out, report, stages: [{name, kind, params, seeds, grid, zip, needs, shards, resources}]
//   or the single-stage shorthand with kind/params/seeds/grid/zip/shards/resources at top level.
//
// Expansion rules:
//   * A stage's own shards: seeds × cartesian(grid) × zip (zip axes paired, same length).
//     Axis keys are dotted paths into params ("lora.rank"); the value replaces params[path].
//   * needs: for each needed stage, its outputs (its reduce shard when it has one, else all its
//     shards). One output: every shard of this stage needs it. Several outputs: this stage fans
//     out, one copy of each own shard per output, inheriting the output's seed (unless the stage
//     names its own seeds) and its axes (for grouping in reports).
//   * shards: n > 1: n map shards (params.shard_index, params.shard_count) and, when the kind
//     has a reducer, one reduce shard (params.role = "reduce") needing all of them.
//   * Params that do not apply to a config (KindConfig::inapplicable) are reset to their
//     defaults, and the axes that set them to null; configs of a stage that are then the same
//     shard are one (Plan::collapsed lists the others).
//   * Shard id = Sha256(kind, canonical params, seed, sorted needed ids, code tag)[:16 hex].
//
// The implementation lives in core/spec/: yaml_tree (located YAML tree, scalar typing, limits),
// overrides, parse, report_section, expand, shard_id, units.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/kinds.h"
#include "core/shard_key.h"
#include "core/types.h"

namespace seedgrid {

struct Resources {
  double timeout_s = 0;  // 0: none. YAML: number of seconds or "90s", "10m", "2h"
  double grace_s = 0;    // SIGTERM -> SIGKILL on timeout/preemption; 0: the worker's (3 s)
  int max_attempts = 3;
  int ranks = 1;
  int gpus = 1;
  Isolation isolation = Isolation::kExecutor;
  int64_t memory_mb =
      0;  // 0: no limit. YAML: MB number or "512M", "2G". Exceeding RSS kills the attempt
};

struct Axis {
  std::string key;  // dotted param path
  std::vector<Json> values;
  int line = 0;
};

struct StageSpec {
  std::string name;
  std::string kind;
  Json params = Json::object();  // spec params merged over the kind's defaults
  std::vector<int64_t> seeds;    // empty in the YAML: [0], or inherited through needs
  bool seeds_given = false;
  std::vector<Axis> grid;  // cartesian, in spec order
  std::vector<Axis> zip;   // paired
  std::vector<std::string> needs;
  int shards = 1;
  Resources resources;
  int line = 0;
};

// The `report:` section: what `seedgrid report` writes when its command line does not say
// (docs/spec.md, "The report section"). Checked with the rest of the spec, so a typo fails the
// launch (exit 2), not the report at the end of the sweep. Figure types are the report's
// (coordinator/report/figures.h): the parser checks their shape, the report checks the name.
struct ReportTableSpec {
  std::string stage;                  // a stage of the spec
  std::vector<std::string> metrics;   // names, or prefixes ending in '*'; empty: the kind's
  std::vector<std::string> group_by;  // axis or param keys; empty: every axis but seed
};

struct ReportFigureSpec {
  std::string type;   // a kind's figure type (e.g. loss_curves) or one of kReportPlotTypes
  std::string stage;  // empty: every stage where the type finds its data (kind types only)
  // Plot types only (drawn from the stage's registry metrics; docs/report.md):
  std::string x;                      // line/bars/heatmap: an axis or param; scatter: a metric
  std::vector<std::string> y;         // metrics, or patterns with one '*' ("retained.layer.*.keep")
  std::vector<std::string> group_by;  // one line / bar colour / heatmap column per value
  std::string title, xlabel, ylabel;  // empty: made from the metric and key names
  bool front = false;  // scatter: the Pareto front of the configs' means (x a cost, y a benefit)
  int line = 0;
};

// Plot types a `report: figures:` entry may name beside the kinds' figure types: line with CI
// over a numeric axis, grouped bars with CI, scatter with per-seed points, heatmap of means.
inline constexpr std::array<std::string_view, 4> kReportPlotTypes = {"line", "bars", "scatter",
                                                                     "heatmap"};

// `report: ranking:` — each seed ranks the configs of a stage by a metric; the report shows the
// ranks and their stability across seeds (mean Spearman ρ, Kendall's W).
struct ReportRankingSpec {
  std::string stage;  // empty: every stage with the metric
  std::string metric;
  bool higher_is_better = true;       // `best: max` (default) or `best: min`
  std::vector<std::string> group_by;  // what a config is; empty: every axis but seed
  int line = 0;
};

// `report: paired:` — a against b over the same seeds: mean paired difference a − b with its
// 95% t-interval and an exact sign test. A pair is a shard of a and one of b with the same seed
// and the same value of every axis neither a nor b names.
struct ReportPairedSpec {
  std::string stage;  // empty: every stage with the metric
  std::string metric;
  std::vector<std::pair<std::string, Json>> a, b;  // axis or param key -> value
  int line = 0;
};

inline constexpr std::array<std::string_view, 2> kReportUncertainties = {"ci95", "std"};

inline constexpr std::array<std::string_view, 4> kReportFormats = {"md", "tex", "csv", "html"};

struct ReportSpec {
  std::vector<ReportTableSpec> tables;                   // empty: one table per stage
  std::optional<std::vector<ReportFigureSpec>> figures;  // nullopt: by kind; empty: none
  std::vector<std::string> formats;                      // of kReportFormats; empty: all
  std::string uncertainty = "ci95";  // figures' bands and error bars: ci95 or std
  std::vector<ReportRankingSpec> rankings;
  std::vector<ReportPairedSpec> paired;
};

struct SweepSpec {
  std::string name;
  std::string out = "runs";
  std::vector<StageSpec> stages;
  ReportSpec report;
  std::string source_path;
  std::string source_text;             // the YAML as read
  std::vector<std::string> overrides;  // key=value, as given
  std::string Hash() const;            // Sha256Hex of source_text + overrides
  const StageSpec* FindStage(std::string_view name) const;
};

// One planned shard: its key (id, stage, kind, seed, role, fully resolved params, axes: own
// and inherited, the report's grouping keys; needs) and what the plan adds to it. The key's
// canonical JSON is dumped once, at expansion: the id hashes it, the registry stores it and
// every dispatch sends it (a million shards' JSON is not dumped three times over).
struct ShardPlan {
  ShardKey key;
  int stage_index = 0;
  Resources resources;
};

// A config expansion folded into an earlier shard of its stage: the two differ only in params
// their kind says do not apply to them (KindConfig::inapplicable), so they compute the same.
struct CollapsedShard {
  std::string stage;
  int64_t seed = 0;
  ShardRole role = ShardRole::kSingle;
  Json axes;        // the config's own axes as the spec gives them
  ShardId same_as;  // the shard it is
};

struct Plan {
  SweepSpec spec;
  std::vector<ShardPlan> shards;  // stage order; every shard after the shards it needs
  std::vector<CollapsedShard> collapsed;
};

inline constexpr size_t kDefaultMaxShards = 1'000'000;

// Parses YAML text and applies overrides ("a.b=value", YAML-typed; list elements by index or
// by their `name`, e.g. stages.steer.params.train.steps=10). Throws SpecError listing every
// problem as "file:line: message".
SweepSpec ParseSpec(std::string_view yaml_text, std::string_view file_name,
                    const std::vector<std::string>& overrides, const KindRegistry& kinds);
SweepSpec LoadSpec(const std::string& path, const std::vector<std::string>& overrides,
                   const KindRegistry& kinds);  // reads the file, then ParseSpec

// The `report:` section alone, as ParseSpec reads it, for the report to read back a sweep's
// stored spec (no kinds needed; stage names are not checked, the report knows the stages).
// Throws SpecError like ParseSpec.
ReportSpec ParseReportSpec(std::string_view yaml_text, std::string_view file_name);

// Expands to shards. Throws SpecError (e.g. more shards than max_shards).
Plan ExpandSpec(const SweepSpec& spec, const KindRegistry& kinds,
                size_t max_shards = kDefaultMaxShards);
// The number of shards ExpandSpec would build before configs collapse, and every problem it would
// report but one (two grid points giving the same shard, which takes building them), without
// building a shard: a launcher's check before it starts MPI (milliseconds, where expanding a
// million shards takes seconds).
uint64_t CountShards(const SweepSpec& spec, const KindRegistry& kinds,
                     size_t max_shards = kDefaultMaxShards);

ShardId ComputeShardId(std::string_view kind, const Json& params, int64_t seed,
                       std::vector<ShardId> needs, std::string_view code_tag);

// "90s" / "10m" / "1h30m" / 12.5 -> seconds; "512M" / "2G" / 100 -> MiB. Throw on bad text.
double ParseDuration(std::string_view text);
int64_t ParseMemoryMb(std::string_view text);

}  // namespace seedgrid

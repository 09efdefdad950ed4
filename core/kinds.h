// The config half of every experiment kind: defaults, validation, whether `shards: n` adds a
// reduce shard, and what `seedgrid report` shows of it by default. No LibTorch: the coordinator
// links this to validate and expand a spec before any GPU time is spent, and the report reads a
// kind's metrics and figures from here, so coordinator/report names no kind. The runner half
// (core/runner.h) is registered separately.
//
// A kind is one folder, experiments/<kind>/ (docs/adding-a-kind.md): its config, runner, the
// names of the datasets and metrics it writes (layout.h, shared by runner and report defaults)
// and one `seedgrid_kind(...)` line in experiments/CMakeLists.txt, which generates the calls
// AllKinds() and AllRunners() make. Registration is an explicit call, never a static initialiser.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/types.h"

namespace seedgrid {

// How `seedgrid report` draws a figure (coordinator/report/figures.cpp). The renderers know no
// kind: a kind's KindFigure names the datasets or metrics each one reads, and its texts.
enum class FigureRenderer {
  // `y` [X] or [X,R] against `x` [X]: the mean over the R rows per x (each row times `sign` [R]
  // where the shard file has it), then mean ± 1 std over each config's seeds; a line per config.
  kCurve,
  // Each of `series` ([steps] or [steps,k], mean over k) against `x` (absent: the logged index),
  // one panel per dataset some shard has; mean ± 1 std over seeds, long curves bucketed.
  kSeries,
  // Registry metrics named `prefix`<variant>: a variant × config heatmap of seed means; the
  // variants in `first` come first, the rest by name. Colours span at least [0, 1].
  kMetricHeatmap,
  // Every 2-D dataset in group `group`: one rows × columns heatmap per dataset and config.
  kGroupHeatmaps,
  // `y` [C] of each shard: a histogram of log10 of its positive values (a series per shard).
  kLog10Histogram,
  // Every subgroup `group`/<name> holding `step` and `value` [N]: a panel per name (at most 6),
  // mean ± 1 std over each config's seeds against the step; a line per config.
  kGroupCurves,
  // Registry metrics `x` (lower is better) against `y` (higher is better): a point per config
  // (mean over its seeds, single seeds drawn small) and the Pareto front of those points, one
  // front per value of the axis or param `group` (one front for the stage when no config has it).
  kPareto,
};

// One figure a kind offers. Texts may use {stage}; captions also the renderer's numbers:
// kCurve {seeds}; kSeries {datasets}; kMetricHeatmap {seeds}; kGroupHeatmaps {dataset}, {n},
// {shards} ("shard"/"shards"); kLog10Histogram {dead}, {total}; kGroupCurves {names}; kPareto
// {seeds}, {group}. Titles of kGroupHeatmaps may use {dataset}.
struct KindFigure {
  std::string type;  // what a spec's `report: figures:` names, e.g. "loss_curves"
  FigureRenderer renderer = FigureRenderer::kCurve;
  std::string x, y, sign;  // dataset paths (kCurve, kSeries' x, kLog10Histogram's y); metric
                           // names (kPareto)
  std::vector<std::pair<std::string, std::string>> series;  // kSeries: dataset, panel title
  std::string prefix;                                       // kMetricHeatmap
  std::vector<std::string> first;                           // kMetricHeatmap
  std::string group;  // kGroupHeatmaps, kGroupCurves; kPareto: the axis or param of a front
  std::string title, caption, xlabel, ylabel;
  std::string ylabel_signed;  // kCurve, when some shard had `sign`
  std::string zlabel;         // heatmaps' colour bar (kGroupHeatmaps: the dataset's name)
  std::string unit;           // kLog10Histogram: what a value counts ("components")
  bool by_default = true;     // drawn when the spec's report: section lists no figures
};

// What `seedgrid report` shows of a kind when the spec's report: section does not say.
struct KindReport {
  // Metrics shown first in a table, in order; a name ending in '*' selects by prefix.
  std::vector<std::string> metrics;
  // Show only `metrics` when any of them was recorded (otherwise every other metric follows).
  bool only_these = false;
  std::vector<KindFigure> figures;
};

struct KindConfig {
  std::string name;
  std::string summary;  // one line, for `seedgrid kinds`
  // Every accepted param with its default. Spec params are merged over these; a key that is
  // not here is an error ("unknown param"), and so is a value whose JSON type differs
  // (an integer is accepted where a float is expected). A default of null accepts any type.
  Json defaults = Json::object();
  // Extra checks on the merged params; each problem is "dotted.key: message".
  std::function<std::vector<std::string>(const Json& params)> validate;
  // `shards: n` on a stage of this kind makes n map shards plus one reduce shard that needs
  // them all. Without it, `shards: n` makes n independent replicas.
  bool has_reduce = false;
  // Shards of this kind may run on `ranks: k > 1` workers as one gang.
  bool supports_gang = false;
  // The datasets every published file of a shard of this kind holds, given its resolved params
  // and role ("single", "map", "reduce"). A launch checks them when it verifies a done shard's
  // file: a file without one is damaged (moved aside, recomputed). Unset: only the shard
  // attributes are checked.
  std::function<std::vector<std::string>(const Json& params, std::string_view role)> datasets;
  // The report's defaults for stages of this kind.
  KindReport report;
  // Params the kind does not list are accepted, with any type (kind: command, whose params are
  // the user's own: `grid: {lr: [...]}` with `{lr}` in its argv).
  bool open_params = false;
  // Top-level params left out of the shard id: where things are on this machine, not what is
  // computed (kind: command's absolute `cwd`, so a moved checkout keeps its shard ids). They
  // still reach the runner and the registry.
  std::vector<std::string> unhashed_params;
  // Settles a stage's params with what only the spec knows, after validate and before
  // expansion: the directory of the spec file and the stage's needs and axes. May rewrite the
  // params (a command stage hashes its `code:` files into them, so an edited script changes
  // the shard ids). Problems as validate's, "dotted.key: message" (exit 2, file:line).
  struct StageContext {
    std::string spec_dir;                // absolute
    std::vector<std::string> needs;      // needed stage names
    std::vector<std::string> axis_keys;  // grid and zip keys (set per shard at expansion)
  };
  std::function<std::vector<std::string>(Json& params, const StageContext& stage)> resolve;
  // The params that do not apply to one config, given its resolved params (grid and zip values
  // substituted): dotted paths, a map's path naming everything under it (lora_steer: "lora"
  // when the adapter is ia3). Expansion resets them to their defaults before the shard id is
  // derived and marks the axes that set them as not applying (null), so configs that differ
  // only in them are one shard (`run --dry-run` lists what collapsed), and a config that uses
  // every param, or leaves the others at their defaults, keeps the id it had before the hook.
  // Unset: every param applies.
  std::function<std::vector<std::string>(const Json& params)> inapplicable;
  // One line of meaning per param (dotted key of a leaf of `defaults`):
  // `seedgrid kinds` prints each with its type and default, and docs/kinds.md is that output
  // (`seedgrid kinds --markdown`; tests/integration/test_cli.py checks they match).
  std::vector<std::pair<std::string, std::string>> param_docs;
  // What `seedgrid kinds KIND --yaml` adds so that its starter spec runs: stages before the
  // kind's own (YAML list items, e.g. the pretrain stage it needs), keys of its stage
  // (e.g. "    needs: base\n") and params in place of their defaults (a command's argv).
  std::string starter_stages, starter_keys;
  Json starter_params = Json::object();
};

class KindRegistry {
 public:
  void Add(KindConfig kind);  // throws std::logic_error on a duplicate name
  const KindConfig* Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  // Every figure type some kind offers, sorted and unique (what `report: figures:` accepts).
  std::vector<std::string> FigureTypes() const;

 private:
  std::map<std::string, KindConfig> kinds_;
};

// One param of a kind as `seedgrid kinds` and docs/kinds.md show it: every leaf of the kind's
// defaults (a map's keys are followed; a list or an empty map is one param), by key.
struct ParamRow {
  std::string key;      // dotted
  std::string type;     // string, integer, float, bool, list, map, any
  std::string value;    // the default, as YAML flow text
  std::string meaning;  // from KindConfig::param_docs; empty when the kind gives none
};
std::vector<ParamRow> ParamRows(const KindConfig& kind);

// `seedgrid kinds`: every kind (or the one named) with its summary and params.
std::string KindsText(const KindRegistry& kinds, const std::string& only = "");
// `seedgrid kinds --markdown`: docs/kinds.md, the same rows as tables.
std::string KindsMarkdown(const KindRegistry& kinds);
// `seedgrid kinds KIND --yaml`: a spec with one stage of the kind and every param at its
// default, each with its meaning as a comment; `seedgrid run` accepts it as it is.
std::string StarterSpec(const KindConfig& kind);

// Every kind this build knows: the kinds registered in experiments/CMakeLists.txt (defined in
// experiments/all_kinds.cpp).
const KindRegistry& AllKinds();

}  // namespace seedgrid

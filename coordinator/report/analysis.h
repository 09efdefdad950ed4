// Multi-seed analysis of a sweep, as the weight-steering work does it (docs/report.md):
//   ranking  each seed ranks a stage's configs by one metric (1 = best); the report shows the
//            ranks per seed, the mean rank, and how stable the ranking is across seeds: the mean
//            Spearman ρ over every pair of seeds and Kendall's W (stats.h);
//   paired   config a against config b over the same seeds: the mean paired difference a − b
//            with its 95% t-interval and an exact sign test.
// Both read the metric from the same rows and groups the tables use (tables.h), so a config's
// per-seed values here are the values of its table row.
#pragma once

#include <string>
#include <vector>

#include "coordinator/report/stats.h"
#include "coordinator/report/tables.h"
#include "core/spec.h"

namespace seedgrid::report {

struct Ranking {
  std::string id;  // file stem: ranking-<stage>-<metric>
  std::string stage, metric;
  bool higher_is_better = true;
  std::vector<std::string> keys;     // what a config is
  std::vector<std::string> configs;  // group labels, in table order
  std::vector<int64_t> seeds;        // seeds every config has a value for (the rankings)
  std::vector<std::string> dropped;  // "seed 3: no value for adapter=ia3" (left out)
  // ranks[s][c]: seed s's rank of config c (1 = best; ties share the mean rank);
  // values[s][c]: the value ranked (the mean of the config's rows with that seed).
  std::vector<std::vector<double>> ranks, values;
  std::vector<double> mean_rank;  // per config
  double mean_spearman = 0;       // over seed pairs whose rankings are not constant; NaN: none
  size_t spearman_pairs = 0;
  double kendall_w = 0;  // NaN with fewer than 2 seeds or configs
};

struct Paired {
  std::string stage, metric;
  std::string a, b;                // "adapter=lora"
  std::vector<std::string> pairs;  // per pair: "seed 0" or "seed 0, lora.rank=4"
  std::vector<double> a_values, b_values;
  PairedSummary summary;
  std::vector<std::string> unpaired;  // rows of a or b without a partner, and why
  bool matched = false;               // both a and b select some row of the stage
};

// The spec's `report: ranking:` and `report: paired:` entries, each for its stage or for every
// stage with the metric. A problem (no stage has the metric, a selection matches nothing) is
// appended to `problems`.
std::vector<Ranking> BuildRankings(const SweepData& data, const std::vector<ReportRankingSpec>& r,
                                   std::vector<std::string>& problems);
std::vector<Paired> BuildPaired(const SweepData& data, const std::vector<ReportPairedSpec>& p,
                                std::vector<std::string>& problems);

// Renderings; CSV as the tables' (RFC 4180, full precision, CRLF).
std::string RankingMarkdown(const Ranking& r);
std::string RankingCsv(const Ranking& r, const std::string& sweep);
std::string RankingHtml(const Ranking& r);
std::string RankingSummary(const Ranking& r);  // one sentence: seeds, configs, ρ, W
std::string PairedMarkdown(const std::vector<Paired>& p);
std::string PairedCsv(const std::vector<Paired>& p, const std::string& sweep);
std::string PairedHtml(const std::vector<Paired>& p);

}  // namespace seedgrid::report

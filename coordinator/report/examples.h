// The report's "Examples" section: text examples that a shard file describes itself, shown as
// decoded text around a highlighted token. The report stays kind-free (it names no kind and no
// kind's datasets): a file opts in with the root attribute `seedgrid_examples`, a JSON object
//   {"title": "…",                       the section's heading for this file
//    "prefix": DS, "token": DS, "suffix": DS,   string datasets [R·K], row-major [R, K]
//    "items": DS,                        int64 [R]: filled slots of each row (the first n)
//    "rank": DS, "rank_name": "…",       float64 [R]: rows shown in descending order
//    "label": [DS, …], "label_name": "…"}     int64 [R] datasets, a row's label joined by '.'
// Read from the files alone: the report needs neither LibTorch nor a tokenizer. (Kinds that
// write it say so in their docs; the report knows none of them.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/report/tables.h"

namespace seedgrid::report {

inline constexpr char kExamplesAttr[] = "seedgrid_examples";

// A row's examples, in slot order.
struct ExampleRow {
  std::string label;
  double rank = 0;
  struct Example {
    std::string prefix, token, suffix;
  };
  std::vector<Example> examples;
};

// One done shard whose file has examples.
struct ShardExamples {
  std::string stage, label, shard, title, label_name, rank_name;
  int64_t n_rows = 0;
  std::vector<ExampleRow> rows;  // the highest ranked rows with examples
};

// How much the section shows.
inline constexpr size_t kExampleRows = 8;     // rows per shard, by rank
inline constexpr size_t kExamplesEach = 3;    // examples per row
inline constexpr size_t kExampleShards = 12;  // shards
inline constexpr size_t kExampleFiles = 400;  // files opened to look for the attribute

// The done shards (a stage's reduce shards when it has any) of `stage` (empty: every stage)
// whose files have examples. A file whose attribute or datasets are unusable adds a warning.
std::vector<ShardExamples> LoadExamples(const SweepData& data, const std::string& stage,
                                        std::vector<std::string>& warnings);

// "## Examples" in Markdown (the token in «guillemets», line breaks as ⏎) and HTML (the token in
// <mark>); "" when there is nothing to show.
std::string ExamplesMarkdown(const std::vector<ShardExamples>& shards);
std::string ExamplesHtml(const std::vector<ShardExamples>& shards);

}  // namespace seedgrid::report

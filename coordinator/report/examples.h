// The report's "Examples" section: reservoir examples of text harvests (data.source: text;
// experiments/harvest/text.h), shown as the decoded text around the firing token. Read from the
// shard files' decoded strings (reservoir/text_prefix, _token, _suffix): the report needs neither
// LibTorch nor the tokenizer. Harvests of token ids (synthetic or file sources) have no text and
// no section.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/report/tables.h"

namespace seedgrid::report {

// A component's decoded examples, in reservoir rank order.
struct ComponentExamples {
  int64_t component = 0, layer = 0, unit = 0;
  double density = 0;  // firing density
  struct Example {
    std::string prefix, token, suffix;
  };
  std::vector<Example> examples;
};

// One finished text harvest (a single or reduce shard).
struct ShardExamples {
  std::string stage, label, shard;
  int64_t n_components = 0;
  std::vector<ComponentExamples> components;  // the most often firing ones with examples
};

// How much the section shows per shard.
inline constexpr size_t kExampleComponents = 8;  // components, by firing density
inline constexpr size_t kExamplesEach = 3;       // examples per component

// The done text harvests of `stage` (empty: every stage); files that cannot be read add a
// warning and are skipped.
std::vector<ShardExamples> LoadExamples(const SweepData& data, const std::string& stage,
                                        std::vector<std::string>& warnings);

// "## Examples" in Markdown (the firing token in «guillemets», line breaks as ⏎) and HTML (the
// firing token in <mark>); "" when there is nothing to show.
std::string ExamplesMarkdown(const std::vector<ShardExamples>& shards);
std::string ExamplesHtml(const std::vector<ShardExamples>& shards);

}  // namespace seedgrid::report

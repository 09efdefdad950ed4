#include "coordinator/report/examples.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "coordinator/report/render.h"
#include "core/store.h"
#include "experiments/harvest/layout.h"

namespace seedgrid::report {
namespace {

namespace L = harvest_layout;

// Line breaks inside an example would break a table row: shown as ⏎.
std::string OneLine(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "⏎";
    } else if (c != '\r') {
      out += c;
    }
  }
  return out;
}

ShardExamples ReadShard(const H5Reader& r, const SweepData& data, size_t row,
                        const std::string& label) {
  ShardExamples s;
  s.stage = data.stages[static_cast<size_t>(data.shards[row].stage_index)].name;
  s.label = label;
  s.shard = data.shards[row].key.id().hex;
  Shape shape;
  r.Read<int64_t>("reservoir/row", &shape);
  const auto prefix = r.ReadStrings(L::kTextPrefix), token = r.ReadStrings(L::kTextToken),
             suffix = r.ReadStrings(L::kTextSuffix);
  const auto density = r.Read<double>("firing_density");
  const auto layer = r.Read<int64_t>("components/layer");
  const auto unit = r.Read<int64_t>("components/unit");
  const auto n_items = r.Read<int64_t>("reservoir/n_items");
  const size_t C = static_cast<size_t>(shape.at(0)), K = static_cast<size_t>(shape.at(1));
  if (prefix.size() != C * K || token.size() != C * K || suffix.size() != C * K ||
      density.size() != C || layer.size() != C || unit.size() != C || n_items.size() != C)
    throw std::runtime_error(fmt::format("{}: decoded examples of the wrong size", s.shard));
  s.n_components = static_cast<int64_t>(C);
  std::vector<size_t> order(C);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return density[a] > density[b]; });
  for (size_t c : order) {
    if (s.components.size() == kExampleComponents) break;
    if (n_items[c] <= 0) continue;
    ComponentExamples ce{static_cast<int64_t>(c), layer[c], unit[c], density[c], {}};
    for (size_t k = 0; k < std::min<size_t>(kExamplesEach, static_cast<size_t>(n_items[c])); ++k)
      ce.examples.push_back({prefix[c * K + k], token[c * K + k], suffix[c * K + k]});
    s.components.push_back(std::move(ce));
  }
  return s;
}

}  // namespace

std::vector<ShardExamples> LoadExamples(const SweepData& data, const std::string& stage,
                                        std::vector<std::string>& warnings) {
  std::vector<ShardExamples> out;
  for (const auto& st : data.stages) {
    if (!stage.empty() && st.name != stage) continue;
    const auto rows = TabulatedRows(st, data);
    for (const Group& g : ConfigGroups(data, st.name)) {
      for (size_t i : g.shards) {
        if (std::find(rows.begin(), rows.end(), i) == rows.end()) continue;
        if (data.shards[i].status != ShardStatus::kDone) continue;
        const std::string path = data.ArtifactPath(i);
        if (path.empty()) continue;
        try {
          const H5Reader r(path);
          if (!r.Has(L::kTextToken)) continue;
          out.push_back(ReadShard(r, data, i,
                                  fmt::format("{}, seed {}", g.label, data.shards[i].key.seed())));
        } catch (const std::exception& e) {
          warnings.push_back(fmt::format("examples of {}: {}", path, e.what()));
        }
      }
    }
  }
  return out;
}

std::string ExamplesMarkdown(const std::vector<ShardExamples>& shards) {
  if (shards.empty()) return "";
  std::string md = fmt::format(
      "## Examples\n\nDecoded reservoir examples of the text harvests: for the {} components "
      "that fire most often, up to {} examples each, the firing token in «guillemets» "
      "(line breaks: ⏎).\n\n",
      kExampleComponents, kExamplesEach);
  for (const auto& s : shards) {
    md += fmt::format("### {}: {}\n\nShard `{}`, {} components.\n\n", EscapeMarkdownCell(s.stage),
                      EscapeMarkdownCell(s.label), s.shard, s.n_components);
    md += "| component | layer.unit | density | example |\n|--:|---|--:|---|\n";
    for (const auto& c : s.components)
      for (const auto& e : c.examples)
        md += fmt::format("| {} | {}.{} | {} | {}«{}»{} |\n", c.component, c.layer, c.unit,
                          FormatNumber(c.density), EscapeMarkdownCell(OneLine(e.prefix)),
                          EscapeMarkdownCell(OneLine(e.token)),
                          EscapeMarkdownCell(OneLine(e.suffix)));
    md += "\n";
  }
  return md;
}

std::string ExamplesHtml(const std::vector<ShardExamples>& shards) {
  if (shards.empty()) return "";
  std::string h = fmt::format(
      "<h2>Examples</h2>\n<p class=\"note\">Decoded reservoir examples of the text harvests: for "
      "the {} components that fire most often, up to {} examples each, the firing token "
      "highlighted (line breaks: ⏎).</p>\n",
      kExampleComponents, kExamplesEach);
  for (const auto& s : shards) {
    h += fmt::format("<h3>{}: {}</h3>\n<p>Shard <code>{}</code>, {} components.</p>\n",
                     EscapeHtml(s.stage), EscapeHtml(s.label), s.shard, s.n_components);
    h += "<table>\n<thead><tr><th>component</th><th>layer.unit</th><th>density</th>"
         "<th>example</th></tr></thead>\n<tbody>\n";
    for (const auto& c : s.components)
      for (const auto& e : c.examples)
        h += fmt::format(
            "<tr><td class=\"num\">{}</td><td>{}.{}</td><td class=\"num\">{}</td>"
            "<td><code>{}<mark>{}</mark>{}</code></td></tr>\n",
            c.component, c.layer, c.unit, FormatNumber(c.density), EscapeHtml(OneLine(e.prefix)),
            EscapeHtml(OneLine(e.token)), EscapeHtml(OneLine(e.suffix)));
    h += "</tbody>\n</table>\n";
  }
  return h;
}

}  // namespace seedgrid::report

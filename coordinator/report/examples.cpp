#include "coordinator/report/examples.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "coordinator/report/render.h"
#include "core/store.h"

namespace seedgrid::report {
namespace {

// Line breaks inside an example would break a table row: shown as ⏎.
std::string OneLine(const std::string& s) {
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

// The examples a file describes (see examples.h). Throws std::runtime_error naming what is wrong.
ShardExamples ReadExamples(const H5Reader& r, const Json& spec) {
  ShardExamples s;
  s.title = spec.value("title", "Examples");
  s.rank_name = spec.value("rank_name", "rank");
  s.label_name = spec.value("label_name", "row");
  const auto prefix = r.ReadStrings(spec.at("prefix").get<std::string>());
  const auto token = r.ReadStrings(spec.at("token").get<std::string>());
  const auto suffix = r.ReadStrings(spec.at("suffix").get<std::string>());
  const auto items = r.Read<int64_t>(spec.at("items").get<std::string>());
  const auto rank = r.Read<double>(spec.at("rank").get<std::string>());
  std::vector<std::vector<int64_t>> labels;
  for (const auto& ds : spec.value("label", Json::array()))
    labels.push_back(r.Read<int64_t>(ds.get<std::string>()));
  const size_t R = items.size(), K = R ? prefix.size() / R : 0;
  bool sizes = R > 0 && prefix.size() == R * K && token.size() == R * K && suffix.size() == R * K &&
               rank.size() == R;
  for (const auto& l : labels) sizes = sizes && l.size() == R;
  if (!sizes) throw std::runtime_error("the datasets its seedgrid_examples names differ in size");
  s.n_rows = static_cast<int64_t>(R);
  std::vector<size_t> order(R);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rank[a] > rank[b]; });
  for (size_t i : order) {
    if (s.rows.size() == kExampleRows) break;
    if (items[i] <= 0) continue;
    ExampleRow row;
    std::vector<int64_t> parts;
    for (const auto& l : labels) parts.push_back(l[i]);
    row.label = labels.empty() ? std::to_string(i) : fmt::format("{}", fmt::join(parts, "."));
    row.rank = rank[i];
    const size_t n = std::min({kExamplesEach, K, static_cast<size_t>(items[i])});
    for (size_t k = 0; k < n; ++k)
      row.examples.push_back({prefix[i * K + k], token[i * K + k], suffix[i * K + k]});
    s.rows.push_back(std::move(row));
  }
  return s;
}

}  // namespace

std::vector<ShardExamples> LoadExamples(const SweepData& data, const std::string& stage,
                                        std::vector<std::string>& warnings) {
  std::vector<ShardExamples> out;
  size_t opened = 0;
  for (const auto& st : data.stages) {
    if (!stage.empty() && st.name != stage) continue;
    const auto rows = TabulatedRows(st, data);
    for (const Group& g : ConfigGroups(data, st.name)) {
      for (size_t i : g.shards) {
        if (out.size() == kExampleShards || opened == kExampleFiles) return out;
        if (data.shards[i].status != ShardStatus::kDone) continue;
        if (std::find(rows.begin(), rows.end(), i) == rows.end()) continue;
        const std::string path = data.ArtifactPath(i);
        if (path.empty()) continue;
        try {
          ++opened;
          const H5Reader r(path);
          const auto attr = r.AttrString("/", kExamplesAttr);
          if (!attr) continue;
          ShardExamples s = ReadExamples(r, Json::parse(*attr));
          s.stage = st.name;
          s.label = fmt::format("{}, seed {}", g.label, data.shards[i].key.seed());
          s.shard = data.shards[i].key.id().hex;
          out.push_back(std::move(s));
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
      "## Examples\n\nFor the {} highest ranked rows of each file, up to {} examples each, the "
      "token in «guillemets» (line breaks: ⏎).\n\n",
      kExampleRows, kExamplesEach);
  for (const auto& s : shards) {
    md +=
        fmt::format("### {}, stage {}: {}\n\nShard `{}`, {} rows.\n\n", EscapeMarkdownCell(s.title),
                    EscapeMarkdownCell(s.stage), EscapeMarkdownCell(s.label), s.shard, s.n_rows);
    md += fmt::format("| {} | {} | example |\n|---|--:|---|\n", EscapeMarkdownCell(s.label_name),
                      EscapeMarkdownCell(s.rank_name));
    for (const auto& row : s.rows)
      for (const auto& e : row.examples)
        md +=
            fmt::format("| {} | {} | {}«{}»{} |\n", row.label, FormatNumber(row.rank),
                        EscapeMarkdownCell(OneLine(e.prefix)), EscapeMarkdownCell(OneLine(e.token)),
                        EscapeMarkdownCell(OneLine(e.suffix)));
    md += "\n";
  }
  return md;
}

std::string ExamplesHtml(const std::vector<ShardExamples>& shards) {
  if (shards.empty()) return "";
  std::string h = fmt::format(
      "<h2>Examples</h2>\n<p class=\"note\">For the {} highest ranked rows of each file, up to {} "
      "examples each, the token highlighted (line breaks: ⏎).</p>\n",
      kExampleRows, kExamplesEach);
  for (const auto& s : shards) {
    h += fmt::format("<h3>{}, stage {}: {}</h3>\n<p>Shard <code>{}</code>, {} rows.</p>\n",
                     EscapeHtml(s.title), EscapeHtml(s.stage), EscapeHtml(s.label), s.shard,
                     s.n_rows);
    h += fmt::format(
        "<table>\n<thead><tr><th>{}</th><th>{}</th><th>example</th></tr></thead>\n<tbody>\n",
        EscapeHtml(s.label_name), EscapeHtml(s.rank_name));
    for (const auto& row : s.rows)
      for (const auto& e : row.examples)
        h += fmt::format(
            "<tr><td>{}</td><td class=\"num\">{}</td><td><code>{}<mark>{}</mark>{}</code></td>"
            "</tr>\n",
            EscapeHtml(row.label), FormatNumber(row.rank), EscapeHtml(OneLine(e.prefix)),
            EscapeHtml(OneLine(e.token)), EscapeHtml(OneLine(e.suffix)));
    h += "</tbody>\n</table>\n";
  }
  return h;
}

}  // namespace seedgrid::report

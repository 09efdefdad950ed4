#include "experiments/harvest/text.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "experiments/data/text_data.h"
#include "experiments/harvest/layout.h"
#include "experiments/tokens/cache.h"
#include "text/tokenizer.h"

namespace seedgrid::harvest {
namespace {

namespace fs = std::filesystem;
namespace L = harvest_layout;

std::string UnderDataDir(const Json& params, const char* key) {
  const fs::path dir = params.at(data::kDataDirParam).get<std::string>();
  return (dir / params.at("data").at(key).get<std::string>()).lexically_normal().string();
}

std::string Decode(const text::Tokenizer& tok, std::span<const int32_t> ids) {
  return ids.empty() ? std::string() : tok.Decode(ids);
}

// Does cutting `ids` at i decode to the same text as the whole (no character split)?
bool CleanCut(const text::Tokenizer& tok, std::span<const int32_t> ids, size_t i,
              const std::string& all) {
  return Decode(tok, ids.subspan(0, i)) + Decode(tok, ids.subspan(i)) == all;
}

// How far a cut may move to reach a clean one: a UTF-8 character has at most 4 bytes.
constexpr size_t kMaxWiden = 3;

}  // namespace

bool IsTextSource(const Json& params) { return params.at("data").at("source") == "text"; }

std::string CorpusPath(const Json& params) { return UnderDataDir(params, "path"); }

std::string CorpusTokenizerDir(const Json& params) { return UnderDataDir(params, "tokenizer"); }

std::vector<int32_t> HarvestCorpusTokens(const Json& params,
                                         const std::vector<ShardInput>& inputs) {
  return data::CorpusTokens(inputs, params.at("data"));
}

void CheckCorpusVocab(const std::vector<int32_t>& stream, int64_t vocab, const Json& params) {
  const auto bad = std::find_if(stream.begin(), stream.end(),
                                [vocab](int32_t id) { return id < 0 || id >= vocab; });
  if (bad != stream.end())
    throw std::runtime_error(fmt::format(
        "data.tokenizer: {} gives token id {} for {}, outside the model's vocab of {} (a "
        "tokenizer for another model?)",
        CorpusTokenizerDir(params), *bad, CorpusPath(params), vocab));
}

DecodedExample DecodeExample(const text::Tokenizer& tok, std::span<const int32_t> window,
                             int64_t context) {
  if (static_cast<int64_t>(window.size()) != 2 * context + 1)
    throw std::invalid_argument(
        fmt::format("DecodeExample: a window of {} ids for context {}", window.size(), context));
  // The ids inside the row (−1 only at the edges), the firing token at index c.
  std::vector<int32_t> ids;
  size_t c = 0;
  for (size_t i = 0; i < window.size(); ++i) {
    if (window[i] < 0) continue;
    if (i == static_cast<size_t>(context)) c = ids.size();
    ids.push_back(window[i]);
  }
  if (window[static_cast<size_t>(context)] < 0)
    throw std::invalid_argument("DecodeExample: the firing position holds no token");
  const std::span<const int32_t> v = ids;
  const std::string all = Decode(tok, v);
  // Widen [lo, hi) from the firing token until both cuts are clean.
  size_t lo = c, hi = c + 1;
  while (lo > 0 && c - lo < kMaxWiden && !CleanCut(tok, v, lo, all)) --lo;
  while (hi < v.size() && hi - c - 1 < kMaxWiden && !CleanCut(tok, v, hi, all)) ++hi;
  if (!CleanCut(tok, v, lo, all) || !CleanCut(tok, v, hi, all)) lo = c, hi = c + 1;
  return {Decode(tok, v.subspan(0, lo)), Decode(tok, v.subspan(lo, hi - lo)),
          Decode(tok, v.subspan(hi))};
}

std::vector<int64_t> HarvestedWindows(const Accumulators& acc) {
  const Options& o = acc.options;
  std::vector<int64_t> batches = acc.batches;
  std::sort(batches.begin(), batches.end());
  // Every batch is full but the harvest's last one, which holds what is left of n_rows.
  const int64_t full = static_cast<int64_t>(batches.size()) * o.batch_rows;
  const int64_t last_rows = o.batch_rows - (full - acc.n_rows);
  std::vector<int64_t> windows;
  for (int64_t b : batches) {
    const int64_t n = b == o.n_batches - 1 ? last_rows : o.batch_rows;
    for (int64_t r = 0; r < n; ++r) windows.push_back(b * o.batch_rows + r);
  }
  return windows;
}

void WriteTextExamples(H5Writer& w, const Accumulators& acc, const Json& params,
                       const text::Tokenizer& tok, bool finished) {
  const Options& o = acc.options;
  const Reservoir::Arrays res = acc.reservoir.Canonical();
  const int64_t C = o.components, K = o.k, W = o.window();
  std::vector<std::string> prefix, token, suffix;
  for (int64_t i = 0; i < C * K; ++i) {
    DecodedExample d;
    if (res.row[static_cast<size_t>(i)] >= 0)
      d = DecodeExample(tok,
                        std::span<const int32_t>(res.tokens)
                            .subspan(static_cast<size_t>(i * W), static_cast<size_t>(W)),
                        o.context);
    prefix.push_back(std::move(d.prefix));
    token.push_back(std::move(d.token));
    suffix.push_back(std::move(d.suffix));
  }
  w.WriteStrings(L::kTextPrefix, prefix);
  w.WriteStrings(L::kTextToken, token);
  w.WriteStrings(L::kTextSuffix, suffix);
  w.Write(L::kEvalWindows, HarvestedWindows(acc));
  const Json& data = params.at("data");
  w.Attr("eval", "data_digest", data.at("digest").get<std::string>());
  w.Attr("eval", "data_path", CorpusPath(params));
  w.Attr("eval", "data_column", data.at("column").get<std::string>());
  w.Attr("eval", "data_tokenizer", CorpusTokenizerDir(params));
  w.Attr("eval", "data_window", o.seq_len);
  // What `seedgrid report` shows (coordinator/report/examples.h): the most often firing
  // components' decoded examples, labelled layer.unit.
  const Json examples = {{"title", "Decoded harvest examples"},
                         {"prefix", L::kTextPrefix},
                         {"token", L::kTextToken},
                         {"suffix", L::kTextSuffix},
                         {"items", "reservoir/n_items"},
                         {"rank", L::kFiringDensity},
                         {"rank_name", "firing density"},
                         {"label", {L::kComponentsLayer, "components/unit"}},
                         {"label_name", "layer.unit"}};
  if (finished) w.Attr("/", L::kReportExamples, examples.dump());
}

}  // namespace seedgrid::harvest

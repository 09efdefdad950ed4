#include "experiments/tokens/cache.h"

#include <hdf5.h>

#include <filesystem>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/store.h"
#include "experiments/data/text_data.h"
#include "experiments/tokens/layout.h"
#include "text/template.h"
#include "text/tokenizer.h"

namespace seedgrid::data {
namespace {

namespace fs = std::filesystem;
namespace L = tokens_layout;

// An HDF5 id closed by `close` when it goes out of scope (never throws).
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t), const std::string& where) : id_(id), close_(close) {
    if (id < 0) throw StoreError(fmt::format("token cache: {}", where));
  }
  Handle(Handle&& o) noexcept { *this = std::move(o); }
  Handle& operator=(Handle&& o) noexcept {
    Reset();
    id_ = std::exchange(o.id_, -1);
    close_ = o.close_;
    return *this;
  }
  ~Handle() { Reset(); }
  hid_t get() const { return id_; }
  void Reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

void Check(herr_t rc, const std::string& where) {
  if (rc < 0) throw StoreError(fmt::format("token cache: {}", where));
}

std::string SplitPath(const std::string& split) { return fmt::format("{}/{}", L::kGroup, split); }

// A 1-D dataset with an unlimited dimension, chunked so that appends extend it in place.
Handle CreateAppendable(hid_t group, const char* name, hid_t file_type, hsize_t chunk,
                        const std::string& where) {
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED;
  Handle space(H5Screate_simple(1, &zero, &unlimited), H5Sclose, where + ": dataspace");
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, where + ": plist");
  Check(H5Pset_chunk(dcpl.get(), 1, &chunk), where + ": chunk");
  return Handle(
      H5Dcreate2(group, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      H5Dclose, fmt::format("{}/{}: cannot create", where, name));
}

template <typename T>
void AppendTo(hid_t ds, hid_t mem_type, const std::vector<T>& data, const std::string& where) {
  if (data.empty()) return;
  Handle space(H5Dget_space(ds), H5Sclose, where + ": dataspace");
  hsize_t size = 0;
  Check(H5Sget_simple_extent_dims(space.get(), &size, nullptr), where + ": extent");
  const hsize_t n = data.size(), grown = size + n;
  Check(H5Dset_extent(ds, &grown), where + ": cannot extend");
  Handle file_space(H5Dget_space(ds), H5Sclose, where + ": dataspace");
  Check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &size, nullptr, &n, nullptr),
        where + ": select");
  Handle mem_space(H5Screate_simple(1, &n, nullptr), H5Sclose, where + ": memory space");
  Check(H5Dwrite(ds, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data.data()),
        where + ": cannot write");
}

std::string Path(const Json& v, const std::string& data_dir) {
  const std::string s = v.get<std::string>();
  if (s.empty()) return s;
  const fs::path p(s);
  return (p.is_absolute() ? p : fs::path(data_dir) / p).lexically_normal().string();
}

CacheStats WriteCorpus(const std::string& file, const Json& data, const std::string& data_dir,
                       const CacheProgress& progress) {
  const std::string path = Path(data.at("path"), data_dir);
  const auto tok = text::Tokenizer::FromDirectory(Path(data.at("tokenizer"), data_dir));
  std::error_code ec;
  const auto total = static_cast<int64_t>(fs::file_size(path, ec));
  SplitWriter w(file, L::kCorpus, false, false);
  CacheStats stats;
  ForEachCell(path, data.value("column", "text"),
              [&](std::string_view cell, int64_t line, int64_t bytes) {
                w.Append(CorpusRowIds(cell, tok), line);
                stats.bytes = bytes;
                if (progress) progress(bytes, ec ? 0 : total);
              });
  w.Close();
  stats.rows = w.rows();
  stats.tokens = w.tokens();
  return stats;
}

// The rows of one lora_steer split, or a DataError listing what the plan-time checks missed.
template <typename Rows>
Rows SteerRows(const std::string& path, const TextDataSpec& spec, std::vector<int64_t>& lines,
               Rows (*read)(const Table&, const TextDataSpec&, std::vector<std::string>&)) {
  std::vector<std::string> problems;
  const Table t = ReadTable(path);
  Rows rows = read(t, spec, problems);
  if (!problems.empty())
    throw DataError(fmt::format("{} (edited since the plan?)", fmt::join(problems, "; ")));
  lines = t.lines;
  return rows;
}

// lora_steer's splits: the pairs as θ+ and θ− see them, the eval prompts, the neutral texts
// (TextEncoder: template, generation prompt, max_len and truncation). Files of this kind are
// small (rows are checked whole at plan time), so they are read whole.
CacheStats WriteSteer(const std::string& file, const Json& data, const std::string& data_dir,
                      const CacheProgress& progress) {
  const auto spec = TextDataSpec::FromParams(data, data_dir);
  const auto tok = text::Tokenizer::FromDirectory(spec.tokenizer);
  const auto tmpl = text::PromptTemplate::FromJson(spec.template_json);
  const TextEncoder enc(tok, tmpl, spec);
  CacheStats stats;
  const auto count = [&](const SplitWriter& w) {
    stats.rows += w.rows();
    stats.tokens += w.tokens();
  };
  std::vector<int64_t> lines;
  const auto pairs = SteerRows(spec.train, spec, lines, &PairRows);
  SplitWriter pos(file, L::kTrainPos, true, false), neg(file, L::kTrainNeg, true, false);
  for (const auto& r : pairs) {
    const auto p = enc.Pair(r.system_pos, r.prompt, r.response_pos);
    const auto n = enc.Pair(r.system_neg, r.prompt, r.response_neg);
    pos.Append(p.ids, r.line, p.prompt_len);
    neg.Append(n.ids, r.line, n.prompt_len);
  }
  pos.Close();
  neg.Close();
  count(pos);
  count(neg);
  if (progress) progress(1, 3);
  SplitWriter ev(file, L::kEval, false, true);
  for (const auto& r : SteerRows(spec.eval, spec, lines, &EvalRows))
    ev.Append(enc.Prompt(r.system, r.prompt).ids, r.line, 0, r.label);
  ev.Close();
  count(ev);
  if (progress) progress(2, 3);
  SplitWriter neutral(file, L::kNeutral, false, false);
  const auto texts = SteerRows(spec.neutral, spec, lines, &NeutralRows);
  for (size_t i = 0; i < texts.size(); ++i) neutral.Append(enc.Plain(texts[i]).ids, lines[i]);
  neutral.Close();
  count(neutral);
  if (progress) progress(3, 3);
  for (const auto& f : {spec.train, spec.eval, spec.neutral})
    stats.bytes += static_cast<int64_t>(fs::file_size(f));
  return stats;
}

}  // namespace

Json TokenCacheParams(const Json& data) {
  if (!data.is_object() || data.value("source", "") != "text") return nullptr;
  const auto pick = [&](std::initializer_list<const char*> keys) {
    Json out = Json::object();
    for (const char* k : keys)
      if (data.contains(k)) out[k] = data.at(k);
    return out;
  };
  if (data.contains("train") && data.contains("eval"))
    return {{"format", "steer"},
            {"data", pick({"tokenizer", "template", "generation_prompt", "train", "eval", "neutral",
                           "columns", "max_len", "truncation", "digest"})}};
  if (data.contains("path") && data.contains("tokenizer"))
    return {{"format", "corpus"}, {"data", pick({"tokenizer", "path", "column", "digest"})}};
  return nullptr;
}

struct SplitWriter::Impl {
  std::string where;
  Handle file, group, ids, offsets, line, prompt_len, label;
  std::vector<int32_t> buf_ids;
  std::vector<int64_t> buf_offsets, buf_line, buf_prompt_len, buf_label;
  size_t flush_tokens = 0;
};

SplitWriter::SplitWriter(const std::string& file, const std::string& split, bool prompt_len,
                         bool label, size_t flush_tokens)
    : impl_(new Impl) {
  try {
    Impl& m = *impl_;
    m.where = fmt::format("{}: {}", file, SplitPath(split));
    m.flush_tokens = flush_tokens;
    // The same access properties as the store's H5Writer, which holds the file open.
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, m.where + ": plist");
#if H5_VERSION_GE(1, 10, 7)
    Check(H5Pset_file_locking(fapl.get(), false, true), m.where + ": file locking");
#endif
    m.file = Handle(H5Fopen(file.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose,
                    m.where + ": cannot open the shard file");
    Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose, m.where + ": plist");
    Check(H5Pset_create_intermediate_group(lcpl.get(), 1), m.where + ": plist");
    m.group = Handle(
        H5Gcreate2(m.file.get(), SplitPath(split).c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
        H5Gclose, m.where + ": cannot create the group");
    const hid_t g = m.group.get();
    m.ids = CreateAppendable(g, L::kIds, H5T_STD_I32LE, 1 << 16, m.where);
    m.offsets = CreateAppendable(g, L::kOffsets, H5T_STD_I64LE, 1 << 14, m.where);
    m.line = CreateAppendable(g, L::kLine, H5T_STD_I64LE, 1 << 14, m.where);
    if (prompt_len)
      m.prompt_len = CreateAppendable(g, L::kPromptLen, H5T_STD_I64LE, 1 << 14, m.where);
    if (label) m.label = CreateAppendable(g, L::kLabel, H5T_STD_I64LE, 1 << 14, m.where);
    m.buf_offsets.push_back(0);
  } catch (...) {
    delete impl_;
    throw;
  }
}

SplitWriter::~SplitWriter() { delete impl_; }

void SplitWriter::Append(const std::vector<int32_t>& ids, int64_t line, int64_t prompt_len,
                         int64_t label) {
  Impl& m = *impl_;
  m.buf_ids.insert(m.buf_ids.end(), ids.begin(), ids.end());
  tokens_ += static_cast<int64_t>(ids.size());
  ++rows_;
  m.buf_offsets.push_back(tokens_);
  m.buf_line.push_back(line);
  if (m.prompt_len.get() >= 0) m.buf_prompt_len.push_back(prompt_len);
  if (m.label.get() >= 0) m.buf_label.push_back(label);
  if (m.buf_ids.size() >= m.flush_tokens || m.buf_line.size() >= m.flush_tokens) Flush();
}

void SplitWriter::Flush() {
  Impl& m = *impl_;
  AppendTo(m.ids.get(), H5T_NATIVE_INT32, m.buf_ids, m.where + "/ids");
  AppendTo(m.offsets.get(), H5T_NATIVE_INT64, m.buf_offsets, m.where + "/offsets");
  AppendTo(m.line.get(), H5T_NATIVE_INT64, m.buf_line, m.where + "/line");
  if (m.prompt_len.get() >= 0)
    AppendTo(m.prompt_len.get(), H5T_NATIVE_INT64, m.buf_prompt_len, m.where + "/prompt_len");
  if (m.label.get() >= 0)
    AppendTo(m.label.get(), H5T_NATIVE_INT64, m.buf_label, m.where + "/label");
  for (auto* b : {&m.buf_offsets, &m.buf_line, &m.buf_prompt_len, &m.buf_label}) b->clear();
  m.buf_ids.clear();
}

void SplitWriter::Close() {
  Flush();
  Impl& m = *impl_;
  for (Handle* h : {&m.ids, &m.offsets, &m.line, &m.prompt_len, &m.label, &m.group}) h->Reset();
  Check(H5Fflush(m.file.get(), H5F_SCOPE_LOCAL), m.where + ": cannot flush");
  m.file.Reset();
}

std::vector<int32_t> TokenSplit::Row(int64_t r) const {
  return std::vector<int32_t>(ids.begin() + offsets.at(static_cast<size_t>(r)),
                              ids.begin() + offsets.at(static_cast<size_t>(r) + 1));
}

TokenSplit ReadTokenSplit(const std::string& file, const std::string& split) {
  const H5Reader r(file);
  const std::string g = SplitPath(split);
  if (!r.Has(g)) throw StoreError(fmt::format("{}: no token split '{}'", file, g));
  TokenSplit s;
  s.ids = r.Read<int32_t>(g + "/" + L::kIds);
  s.offsets = r.Read<int64_t>(g + "/" + L::kOffsets);
  s.line = r.Read<int64_t>(g + "/" + L::kLine);
  if (r.Has(g + "/" + L::kPromptLen)) s.prompt_len = r.Read<int64_t>(g + "/" + L::kPromptLen);
  if (r.Has(g + "/" + L::kLabel)) s.label = r.Read<int64_t>(g + "/" + L::kLabel);
  if (s.offsets.size() != s.line.size() + 1 || s.offsets.front() != 0 ||
      s.offsets.back() != static_cast<int64_t>(s.ids.size()))
    throw StoreError(
        fmt::format("{}: {}: offsets do not match the ids (a damaged cache)", file, g));
  return s;
}

CacheStats WriteTokenCache(const std::string& file, const Json& params, const std::string& data_dir,
                           const CacheProgress& progress) {
  const auto format = params.at("format").get<std::string>();
  if (format == "corpus") return WriteCorpus(file, params.at("data"), data_dir, progress);
  if (format == "steer") return WriteSteer(file, params.at("data"), data_dir, progress);
  throw std::runtime_error(fmt::format(
      "tokens: format '{}' is not corpus or steer (tokens shards are added by the planner for "
      "stages with data.source: text; docs/data.md)",
      format));
}

std::vector<std::pair<std::string, std::string>> TokenCacheAttributes(const Json& params,
                                                                      const std::string& data_dir) {
  const Json& data = params.at("data");
  TextDataSpec tok_only;
  tok_only.tokenizer = Path(data.at("tokenizer"), data_dir);
  return {{L::kAttrFormat, params.at("format").get<std::string>()},
          {L::kAttrDataDigest, data.value("digest", "")},
          {L::kAttrTokenizerDigest, DigestTextData(tok_only)},
          {L::kAttrTemplate, data.contains("template") ? data.at("template").dump() : ""},
          {L::kAttrParams, data.dump()}};
}

const ShardInput& TokenCacheInput(const std::vector<ShardInput>& inputs, const Json& data) {
  const std::string digest = data.value("digest", "");
  std::vector<std::string> seen;
  for (const auto& in : inputs) {
    if (in.key.kind() != "tokens") continue;
    const auto d = H5Reader(in.path).AttrString(L::kGroup, L::kAttrDataDigest);
    if (d && *d == digest) return in;
    seen.push_back(fmt::format("{} (data digest {})", in.path, d.value_or("missing")));
  }
  throw std::runtime_error(fmt::format(
      "no token cache for data digest {} among the needed shards{}{} (the planner adds a tokens "
      "shard to every shard with data.source: text; re-plan with this seedgrid)",
      digest, seen.empty() ? "" : ": ", fmt::join(seen, ", ")));
}

std::vector<int32_t> CorpusTokens(const std::vector<ShardInput>& inputs, const Json& data) {
  return ReadTokenSplit(TokenCacheInput(inputs, data).path, L::kCorpus).ids;
}

}  // namespace seedgrid::data

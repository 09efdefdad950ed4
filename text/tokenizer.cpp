#include "text/tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "text/bpe.h"
#include "text/unicode.h"

namespace seedgrid::text {

using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched in the normalized text (HF), not the raw text
};

// A byte trie over the added tokens' contents, for the leftmost-longest cut of step 1.
class AddedTrie {
 public:
  AddedTrie() { root_.fill(-1); }
  void Insert(std::string_view s, int32_t value) {
    if (s.empty()) return;
    auto& first = root_[static_cast<unsigned char>(s[0])];
    if (first < 0) first = NewNode();
    int32_t node = first;
    for (size_t i = 1; i < s.size(); ++i)
      node = Child(node, static_cast<unsigned char>(s[i]), true);
    nodes_[node].value = value;
  }
  // The value and length of the longest token starting at text[pos], or {-1, 0}.
  std::pair<int32_t, size_t> LongestAt(std::string_view text, size_t pos) const {
    int32_t node = root_[static_cast<unsigned char>(text[pos])];
    std::pair<int32_t, size_t> best{-1, 0};
    for (size_t j = pos + 1; node >= 0; ++j) {
      if (nodes_[node].value >= 0) best = {nodes_[node].value, j - pos};
      if (j >= text.size()) break;
      node = Find(node, static_cast<unsigned char>(text[j]));
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> kids;
    int32_t value = -1;
  };
  int32_t NewNode() {
    nodes_.emplace_back();
    return static_cast<int32_t>(nodes_.size() - 1);
  }
  int32_t Find(int32_t node, unsigned char c) const {
    for (auto [k, n] : nodes_[node].kids) {
      if (k == c) return n;
    }
    return -1;
  }
  int32_t Child(int32_t node, unsigned char c, bool create) {
    if (int32_t found = Find(node, c); found >= 0 || !create) return found;
    int32_t n = NewNode();
    nodes_[node].kids.emplace_back(c, n);
    return n;
  }
  std::array<int32_t, 256> root_;
  std::vector<Node> nodes_;
};

// A piece of the input: plain text, or an added token (its index in the added list).
struct Section {
  std::string_view text;
  int32_t added = -1;
};

// Cuts the added tokens of `trie` out of text, leftmost-longest, and applies their
// lstrip/rstrip to the plain text beside them.
std::vector<Section> CutAdded(std::string_view text, const AddedTrie& trie,
                              const std::vector<AddedToken>& added) {
  std::vector<Section> sections;
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    auto [a, len] = trie.LongestAt(text, i);
    if (a < 0) {
      ++i;
      continue;
    }
    if (i > start) sections.push_back({text.substr(start, i - start), -1});
    sections.push_back({text.substr(i, len), a});
    i += len;
    start = i;
  }
  if (start < text.size()) sections.push_back({text.substr(start), -1});
  for (size_t k = 0; k < sections.size(); ++k) {
    if (sections[k].added < 0) continue;
    const AddedToken& t = added[sections[k].added];
    if (t.lstrip && k > 0 && sections[k - 1].added < 0) {
      sections[k - 1].text = TrimEnd(sections[k - 1].text);
    }
    if (t.rstrip && k + 1 < sections.size() && sections[k + 1].added < 0) {
      sections[k + 1].text = TrimStart(sections[k + 1].text);
    }
  }
  return sections;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(fmt::format("{}: cannot open", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw TokenizerError(fmt::format("{}: read failed", path.string()));
  return ss.str();
}

// GPT-2's original files as the tokenizer.json HF builds from them.
Json Gpt2Json(const fs::path& vocab_path, const fs::path& merges_path) {
  Json vocab = Json::parse(ReadFile(vocab_path));
  Json merges = Json::array();
  std::istringstream lines(ReadFile(merges_path));
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.starts_with("#version")) continue;
    merges.push_back(line);
  }
  Json byte_level = {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  Json j = {{"normalizer", nullptr},
            {"pre_tokenizer", byte_level},
            {"post_processor", byte_level},
            {"decoder", byte_level},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
            {"added_tokens", Json::array()}};
  if (vocab.contains("<|endoftext|>")) {
    j["added_tokens"].push_back(
        {{"id", vocab["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}});
  }
  return j;
}

std::vector<std::pair<std::string, std::string>> ParseMerges(const Json& merges) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const Json& m = merges[i];
    if (m.is_array() && m.size() == 2) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    std::string s = m.get<std::string>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos) {
      throw TokenizerError(fmt::format("model.merges[{}]: '{}' is not two tokens", i, s));
    }
    size_t end = s.find(' ', sp + 1);
    out.emplace_back(s.substr(0, sp),
                     s.substr(sp + 1, end == std::string::npos ? end : end - sp - 1));
  }
  return out;
}

std::unique_ptr<Bpe> MakeBpe(const Json& model) {
  std::string type = model.value("type", "BPE");
  if (type != "BPE") {
    throw TokenizerError(fmt::format("model.type: unsupported '{}' (supported: BPE)", type));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
      throw TokenizerError(fmt::format("model.{}: a non-empty value is not supported", key));
    }
  }
  if (model.contains("dropout") && model["dropout"].is_number() &&
      model["dropout"].get<double>() > 0) {
    throw TokenizerError("model.dropout: BPE dropout (a training option) is not supported");
  }
  Vocab vocab;
  const Json& v = model.at("vocab");
  vocab.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) vocab.emplace(it.key(), it.value().get<int32_t>());
  Bpe::Options opt;
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    opt.unk_token = model["unk_token"].get<std::string>();
  }
  auto flag = [&](const char* k) {
    return model.contains(k) && model[k].is_boolean() && model[k].get<bool>();
  };
  opt.byte_fallback = flag("byte_fallback");
  opt.fuse_unk = flag("fuse_unk");
  opt.ignore_merges = flag("ignore_merges");
  try {
    return std::make_unique<Bpe>(std::move(vocab), ParseMerges(model.at("merges")), opt);
  } catch (const std::invalid_argument& e) {
    throw TokenizerError(fmt::format("model: {}", e.what()));
  }
}

// A special-token entry of tokenizer_config.json: "text" or {"content": "text", ...}.
std::optional<std::string> ConfigTokenText(const Json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) {
    return j["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

struct Tokenizer::Impl {
  std::unique_ptr<Bpe> bpe;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  SpecialFrame frame;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> added_ids;  // content -> id
  std::unordered_set<std::string> added_contents;      // for the ByteLevel decoder
  AddedTrie raw_trie;                                  // normalized: false (most special tokens)
  AddedTrie norm_trie;                                 // normalized: true
  bool any_normalized = false;
  std::vector<std::string> id_to_token;
  std::vector<bool> has_id;
  std::unordered_set<int32_t> special_ids;

  void AddToken(AddedToken t);
  void Build(const Json& j, const Json& config);
  std::optional<int32_t> Lookup(std::string_view token) const {
    if (auto it = added_ids.find(std::string(token)); it != added_ids.end()) return it->second;
    return bpe->TokenToId(token);
  }
  void EncodeWords(std::string text, size_t index, std::vector<int32_t>& ids) const;
  void EncodeSection(std::string_view text, size_t& index, std::vector<int32_t>& ids) const;
};

void Tokenizer::Impl::AddToken(AddedToken t) {
  if (t.id < 0 || t.content.empty()) return;
  if (added_ids.count(t.content)) return;
  added_ids.emplace(t.content, t.id);
  added_contents.insert(t.content);
  (t.normalized ? norm_trie : raw_trie).Insert(t.content, static_cast<int32_t>(added.size()));
  any_normalized = any_normalized || t.normalized;
  if (t.special) special_ids.insert(t.id);
  added.push_back(std::move(t));
}

void Tokenizer::Impl::Build(const Json& j, const Json& config) {
  bpe = MakeBpe(j.at("model"));
  if (j.contains("added_tokens")) {
    const Json& list = j["added_tokens"];
    for (const auto& a : list) {
      AddToken({a.at("content").get<std::string>(), a.at("id").get<int32_t>(),
                a.value("special", false), a.value("lstrip", false), a.value("rstrip", false),
                a.value("normalized", !a.value("special", false))});
    }
  }
  if (config.is_object() && config.contains("added_tokens_decoder")) {
    for (auto it = config["added_tokens_decoder"].begin();
         it != config["added_tokens_decoder"].end(); ++it) {
      const Json& a = it.value();
      AddToken({a.at("content").get<std::string>(), std::stoi(it.key()), a.value("special", false),
                a.value("lstrip", false), a.value("rstrip", false),
                a.value("normalized", !a.value("special", false))});
    }
  }
  // The config's named and additional special tokens count as special for skip_special.
  if (config.is_object()) {
    std::vector<Json> named;
    for (const char* k : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token",
                          "cls_token", "mask_token"}) {
      if (config.contains(k)) named.push_back(config[k]);
    }
    if (config.contains("additional_special_tokens") &&
        config["additional_special_tokens"].is_array()) {
      for (const auto& t : config["additional_special_tokens"]) named.push_back(t);
    }
    for (const auto& t : named) {
      if (auto text = ConfigTokenText(t)) {
        if (auto id = Lookup(*text)) special_ids.insert(*id);
      }
    }
  }
  size_t n = 0;
  for (const auto& [tok, id] : bpe->vocab()) n = std::max(n, static_cast<size_t>(id) + 1);
  for (const auto& a : added) n = std::max(n, static_cast<size_t>(a.id) + 1);
  id_to_token.assign(n, {});
  has_id.assign(n, false);
  for (const auto& [tok, id] : bpe->vocab()) id_to_token[id] = tok, has_id[id] = true;
  for (const auto& a : added) id_to_token[a.id] = a.content, has_id[a.id] = true;

  auto get = [&](const char* k) { return j.contains(k) ? j[k] : Json(); };
  normalizer = MakeNormalizer(get("normalizer"), "normalizer");
  pre_tokenizer = MakePreTokenizer(get("pre_tokenizer"), "pre_tokenizer");
  decoder = MakeDecoder(get("decoder"), "decoder", &added_contents);
  frame = MakePostProcessor(get("post_processor"), "post_processor",
                            [this](const std::string& t) { return Lookup(t); });
}

void Tokenizer::Impl::EncodeWords(std::string text, size_t index, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::vector<std::string> words;
  words.push_back(std::move(text));
  if (pre_tokenizer) pre_tokenizer->Apply(words, index);
  for (const auto& w : words) bpe->EncodeWord(w, ids);
}

// One plain-text section of step 1: normalized, then cut again at the normalized added tokens
// (HF's second pass), each piece pre-tokenized and BPE'd. index counts the sections so far.
void Tokenizer::Impl::EncodeSection(std::string_view text, size_t& index,
                                    std::vector<int32_t>& ids) const {
  std::string norm = normalizer ? normalizer->Apply(std::string(text)) : std::string(text);
  if (!any_normalized) {
    EncodeWords(std::move(norm), index++, ids);
    return;
  }
  for (const Section& s : CutAdded(norm, norm_trie, added)) {
    if (s.added >= 0) {
      ids.push_back(added[s.added].id);
    } else {
      EncodeWords(std::string(s.text), index, ids);
    }
    ++index;
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::FromJsonText(std::string_view tokenizer_json, std::string_view config_json,
                                  const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  try {
    Json j = Json::parse(tokenizer_json);
    Json config = config_json.empty() ? Json() : Json::parse(config_json);
    impl->Build(j, config);
  } catch (const TokenizerError& e) {
    throw TokenizerError(fmt::format("{}: {}", origin, e.what()));
  } catch (const Json::exception& e) {
    throw TokenizerError(fmt::format("{}: {}", origin, e.what()));
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::FromDirectory(const fs::path& dir) {
  if (!fs::is_directory(dir)) {
    throw TokenizerError(fmt::format("{}: not a directory", dir.string()));
  }
  fs::path tj = dir / "tokenizer.json";
  fs::path tc = dir / "tokenizer_config.json";
  std::string config = fs::exists(tc) ? ReadFile(tc) : std::string();
  if (fs::exists(tj)) return FromJsonText(ReadFile(tj), config, tj.string());
  for (const char* v : {"vocab.json", "encoder.json"}) {
    for (const char* m : {"merges.txt", "vocab.bpe"}) {
      if (fs::exists(dir / v) && fs::exists(dir / m)) {
        std::string origin = (dir / v).string() + " + " + m;
        try {
          return FromJsonText(Gpt2Json(dir / v, dir / m).dump(), config, origin);
        } catch (const Json::exception& e) {
          throw TokenizerError(fmt::format("{}: {}", origin, e.what()));
        }
      }
    }
  }
  throw TokenizerError(fmt::format(
      "{}: no tokenizer.json (nor GPT-2's vocab.json/encoder.json + merges.txt/vocab.bpe)",
      dir.string()));
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special) const {
  if (size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    throw std::invalid_argument(fmt::format("text is not valid UTF-8 (byte {})", bad));
  }
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special) ids = m.frame.prefix;
  size_t index = 0;  // sections so far (Metaspace's prepend_scheme "first" reads it)
  for (const Section& s : CutAdded(text, m.raw_trie, m.added)) {
    if (s.added >= 0) {
      ids.push_back(m.added[s.added].id);
      ++index;
    } else {
      m.EncodeSection(s.text, index, ids);
    }
  }
  if (add_special) ids.insert(ids.end(), m.frame.suffix.begin(), m.frame.suffix.end());
  return ids;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special && m.special_ids.count(id)) continue;
    tokens.push_back(IdToToken(id));
  }
  std::string out;
  if (m.decoder) {
    m.decoder->Apply(tokens);
    for (const auto& t : tokens) out += t;
  } else {  // HF joins with spaces when there is no decoder
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  }
  return out;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  return impl_->Lookup(token);
}

const std::string& Tokenizer::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->has_id.size() || !impl_->has_id[id]) {
    throw std::out_of_range(
        fmt::format("token id {} is not in the vocab (size {})", id, VocabSize()));
  }
  return impl_->id_to_token[id];
}

size_t Tokenizer::VocabSize() const { return impl_->id_to_token.size(); }

bool Tokenizer::IsSpecial(int32_t id) const { return impl_->special_ids.count(id) > 0; }

}  // namespace seedgrid::text

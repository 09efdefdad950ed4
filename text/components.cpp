#include "text/components.h"

#include <fmt/format.h>
#include <utf8proc.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "text/unicode.h"

namespace seedgrid::text {

using Json = nlohmann::json;

namespace {

std::string TypeOf(const Json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    throw TokenizerError(fmt::format("{}: expected an object with a \"type\"", where));
  }
  return j["type"].get<std::string>();
}

[[noreturn]] void Unsupported(const std::string& where, const std::string& type,
                              std::string_view supported) {
  throw TokenizerError(
      fmt::format("{}: unsupported type '{}' (supported: {})", where, type, supported));
}

template <typename T>
T Get(const Json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

// The elements of a Sequence's list (the key differs per stage).
const Json& ListOf(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) {
    throw TokenizerError(fmt::format("{}: a Sequence needs an array \"{}\"", where, key));
  }
  return *it;
}

}  // namespace

// ---- Pattern ---------------------------------------------------------------------------------

Pattern::Pattern(const Json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    literal_ = j["String"].get<std::string>();
    if (literal_.empty()) throw TokenizerError(where + ": an empty String pattern");
  } else if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    try {
      regex_ = std::make_unique<Regex>(j["Regex"].get<std::string>());
    } catch (const std::invalid_argument& e) {
      throw TokenizerError(fmt::format("{}: {}", where, e.what()));
    }
  } else {
    throw TokenizerError(where + ": a pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
}

std::vector<std::pair<size_t, size_t>> Pattern::FindAll(std::string_view s) const {
  if (regex_) return regex_->FindAll(s);
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t pos = s.find(literal_); pos != std::string_view::npos;
       pos = s.find(literal_, pos + literal_.size())) {
    spans.emplace_back(pos, pos + literal_.size());
  }
  return spans;
}

std::string Pattern::ReplaceAll(std::string_view s, std::string_view with) const {
  auto spans = FindAll(s);
  if (spans.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size() + spans.size() * with.size());
  size_t prev = 0;
  for (auto [b, e] : spans) {
    out.append(s.substr(prev, b - prev));
    out.append(with);
    prev = e;
  }
  out.append(s.substr(prev));
  return out;
}

// ---- Normalizers -----------------------------------------------------------------------------

namespace {

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(NormForm f) : form_(f) {}
  std::string Apply(std::string s) const override { return Normalize(s, form_); }

 private:
  NormForm form_;
};

class LowercaseNorm : public Normalizer {
 public:
  std::string Apply(std::string s) const override { return Lowercase(s); }
};

class StripAccentsNorm : public Normalizer {
 public:
  std::string Apply(std::string s) const override { return StripMarks(s); }
};

class PrependNorm : public Normalizer {
 public:
  explicit PrependNorm(std::string p) : prefix_(std::move(p)) {}
  std::string Apply(std::string s) const override { return s.empty() ? s : prefix_ + s; }

 private:
  std::string prefix_;
};

class ReplaceNorm : public Normalizer {
 public:
  ReplaceNorm(const Json& j, const std::string& where)
      : pattern_(j.at("pattern"), where + ".pattern"),
        content_(Get<std::string>(j, "content", "")) {}
  std::string Apply(std::string s) const override { return pattern_.ReplaceAll(s, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripNorm : public Normalizer {
 public:
  StripNorm(bool left, bool right) : left_(left), right_(right) {}
  std::string Apply(std::string s) const override {
    std::string_view v = s;
    if (left_) v = TrimStart(v);
    if (right_) v = TrimEnd(v);
    return std::string(v);
  }

 private:
  bool left_, right_;
};

class NormSequence : public Normalizer {
 public:
  explicit NormSequence(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  std::string Apply(std::string s) const override {
    for (const auto& p : parts_) s = p->Apply(std::move(s));
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> MakeNormalizer(const Json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = TypeOf(j, where);
  if (type == "NFC") return std::make_unique<UnicodeForm>(NormForm::kNFC);
  if (type == "NFD") return std::make_unique<UnicodeForm>(NormForm::kNFD);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(NormForm::kNFKC);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(NormForm::kNFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNorm>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNorm>();
  if (type == "Prepend") return std::make_unique<PrependNorm>(j.at("prepend").get<std::string>());
  if (type == "Replace") return std::make_unique<ReplaceNorm>(j, where);
  if (type == "Strip") {
    return std::make_unique<StripNorm>(Get(j, "strip_left", true), Get(j, "strip_right", true));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    const Json& list = ListOf(j, "normalizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto p = MakeNormalizer(list[i], fmt::format("{}.normalizers[{}]", where, i))) {
        parts.push_back(std::move(p));
      }
    }
    return std::make_unique<NormSequence>(std::move(parts));
  }
  Unsupported(where, type,
              "NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Prepend, Replace, "
              "Strip, Sequence");
}

// ---- Split behaviours ------------------------------------------------------------------------

std::vector<std::string> SplitBy(std::string_view s,
                                 const std::vector<std::pair<size_t, size_t>>& matches,
                                 SplitBehavior behavior, bool invert) {
  // Every byte of s in one (span, is_delimiter) part, as HF's NormalizedString::split.
  struct Part {
    size_t b, e;
    bool delim;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < s.size()) parts.push_back({prev, s.size(), invert});

  std::vector<Part> out;
  bool previous_delim = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Part& p : parts) {
        if (!p.delim) out.push_back(p);
      }
      break;
    case SplitBehavior::kIsolated: out = parts; break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Part& p : parts) {
        if (p.delim && !previous_delim && !out.empty()) {
          out.back().e = p.e;
        } else {
          out.push_back(p);
        }
        previous_delim = p.delim;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->delim && !previous_delim && !out.empty()) {
          out.back().b = it->b;
        } else {
          out.push_back(*it);
        }
        previous_delim = it->delim;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::kContiguous:
      for (const Part& p : parts) {
        if (p.delim && previous_delim && !out.empty()) {
          out.back().e = p.e;
        } else {
          out.push_back(p);
        }
        previous_delim = p.delim;
      }
      break;
  }
  std::vector<std::string> words;
  words.reserve(out.size());
  for (const Part& p : out) {
    if (p.e > p.b) words.emplace_back(s.substr(p.b, p.e - p.b));
  }
  return words;
}

namespace {

SplitBehavior ParseBehavior(const Json& j, const std::string& where) {
  std::string b = Get<std::string>(j, "behavior", "Isolated");
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  throw TokenizerError(fmt::format(
      "{}.behavior: unknown '{}' (Removed, Isolated, MergedWithPrevious, MergedWithNext, "
      "Contiguous)",
      where, b));
}

// Applies f(word) -> words to each word, in place.
template <typename F>
void SplitEach(std::vector<std::string>& words, F&& f) {
  std::vector<std::string> out;
  out.reserve(words.size());
  for (auto& w : words) {
    for (auto& piece : f(w)) out.push_back(std::move(piece));
  }
  words = std::move(out);
}

// The matches of a character predicate, one span per character (kIsolated/kContiguous input).
template <typename Pred>
std::vector<std::pair<size_t, size_t>> CharMatches(std::string_view s, Pred&& pred) {
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    char32_t cp = NextCodePoint(s, i);
    if (pred(cp)) spans.emplace_back(start, i);
  }
  return spans;
}

// ---- Pre-tokenizers --------------------------------------------------------------------------

class SplitPre : public PreTokenizer {
 public:
  SplitPre(const Json& j, const std::string& where)
      : pattern_(j.at("pattern"), where + ".pattern"),
        behavior_(ParseBehavior(j, where)),
        invert_(Get(j, "invert", false)) {}
  void Apply(std::vector<std::string>& words, size_t) const override {
    SplitEach(words, [&](const std::string& w) {
      return SplitBy(w, pattern_.FindAll(w), behavior_, invert_);
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's pre-tokenization pattern, which ByteLevel applies when use_regex is set.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre : public PreTokenizer {
 public:
  explicit ByteLevelPre(const Json& j)
      : add_prefix_space_(Get(j, "add_prefix_space", true)),
        regex_(Get(j, "use_regex", true) ? std::make_unique<Regex>(kGpt2Pattern) : nullptr) {}
  void Apply(std::vector<std::string>& words, size_t) const override {
    const auto& table = ByteToUnicode();
    SplitEach(words, [&](std::string& w) {
      if (add_prefix_space_ && (w.empty() || w[0] != ' ')) w.insert(w.begin(), ' ');
      std::vector<std::string> parts;
      if (regex_) {
        parts = SplitBy(w, regex_->FindAll(w), SplitBehavior::kIsolated, false);
      } else {
        parts.push_back(std::move(w));
      }
      for (auto& p : parts) {
        std::string mapped;
        mapped.reserve(p.size() * 2);
        for (char c : p) mapped += table[static_cast<unsigned char>(c)];
        p = std::move(mapped);
      }
      return parts;
    });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class Prepend { kAlways, kFirst, kNever };

Prepend ParsePrependScheme(const Json& j, const std::string& where) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "always") return Prepend::kAlways;
    if (s == "first") return Prepend::kFirst;
    if (s == "never") return Prepend::kNever;
    throw TokenizerError(
        fmt::format("{}.prepend_scheme: unknown '{}' (always, first, never)", where, s));
  }
  return Get(j, "add_prefix_space", true) ? Prepend::kAlways : Prepend::kNever;
}

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(const Json& j, const std::string& where)
      : replacement_(Get<std::string>(j, "replacement", "\u2581")),
        prepend_(ParsePrependScheme(j, where)),
        split_(Get(j, "split", true)),
        space_(Json{{"String", " "}}, where) {}
  void Apply(std::vector<std::string>& words, size_t section_index) const override {
    SplitEach(words, [&](const std::string& w) {
      std::string s = space_.ReplaceAll(w, replacement_);
      bool prepend =
          prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && section_index == 0);
      if (prepend && s.rfind(replacement_, 0) != 0) s.insert(0, replacement_);
      if (!split_) return std::vector<std::string>{std::move(s)};
      std::vector<std::pair<size_t, size_t>> spans;
      for (size_t p = s.find(replacement_); p != std::string::npos;
           p = s.find(replacement_, p + replacement_.size())) {
        spans.emplace_back(p, p + replacement_.size());
      }
      return SplitBy(s, spans, SplitBehavior::kMergedWithNext, false);
    });
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
  Pattern space_;
};

class DigitsPre : public PreTokenizer {
 public:
  explicit DigitsPre(bool individual) : individual_(individual) {}
  void Apply(std::vector<std::string>& words, size_t) const override {
    SplitEach(words, [&](const std::string& w) {
      auto spans = CharMatches(w, [](char32_t c) { return c >= '0' && c <= '9'; });
      return SplitBy(w, spans, individual_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                     false);
    });
  }

 private:
  bool individual_;
};

class WhitespacePre : public PreTokenizer {
 public:
  WhitespacePre() : regex_(R"(\w+|[^\w\s]+)") {}
  void Apply(std::vector<std::string>& words, size_t) const override {
    SplitEach(words, [&](const std::string& w) {
      return SplitBy(w, regex_.FindAll(w), SplitBehavior::kRemoved, true);
    });
  }

 private:
  Regex regex_;
};

class WhitespaceSplitPre : public PreTokenizer {
 public:
  void Apply(std::vector<std::string>& words, size_t) const override {
    SplitEach(words, [&](const std::string& w) {
      return SplitBy(w, CharMatches(w, IsSpace), SplitBehavior::kRemoved, false);
    });
  }
};

bool IsPunctuation(char32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

class PunctuationPre : public PreTokenizer {
 public:
  explicit PunctuationPre(SplitBehavior b) : behavior_(b) {}
  void Apply(std::vector<std::string>& words, size_t) const override {
    SplitEach(words, [&](const std::string& w) {
      return SplitBy(w, CharMatches(w, IsPunctuation), behavior_, false);
    });
  }

 private:
  SplitBehavior behavior_;
};

class PreSequence : public PreTokenizer {
 public:
  explicit PreSequence(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void Apply(std::vector<std::string>& words, size_t section_index) const override {
    for (const auto& p : parts_) p->Apply(words, section_index);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> MakePreTokenizer(const Json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = TypeOf(j, where);
  if (type == "Split") return std::make_unique<SplitPre>(j, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelPre>(j);
  if (type == "Metaspace") return std::make_unique<MetaspacePre>(j, where);
  if (type == "Digits") return std::make_unique<DigitsPre>(Get(j, "individual_digits", false));
  if (type == "Whitespace") return std::make_unique<WhitespacePre>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPre>();
  if (type == "Punctuation") return std::make_unique<PunctuationPre>(ParseBehavior(j, where));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    const Json& list = ListOf(j, "pretokenizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto p = MakePreTokenizer(list[i], fmt::format("{}.pretokenizers[{}]", where, i))) {
        parts.push_back(std::move(p));
      }
    }
    return std::make_unique<PreSequence>(std::move(parts));
  }
  Unsupported(where, type,
              "Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation, "
              "Sequence");
}

// ---- Decoders --------------------------------------------------------------------------------

namespace {

class ByteLevelDec : public Decoder {
 public:
  explicit ByteLevelDec(const std::unordered_set<std::string>* added) : added_(added) {}
  // Runs of ordinary tokens are mapped back to bytes and decoded (lossy); added tokens are
  // their own text, as in transformers.js and HF.
  void Apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (!bytes.empty()) out.push_back(Utf8Lossy(bytes));
      bytes.clear();
    };
    for (const auto& t : tokens) {
      if (added_ && added_->count(t)) {
        flush();
        out.push_back(t);
        continue;
      }
      for (size_t i = 0; i < t.size();) {
        size_t start = i;
        int b = UnicodeToByte(NextCodePoint(t, i));
        if (b >= 0) {
          bytes.push_back(static_cast<char>(b));
        } else {
          bytes.append(t, start, i - start);
        }
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  const std::unordered_set<std::string>* added_;
};

class ReplaceDec : public Decoder {
 public:
  ReplaceDec(const Json& j, const std::string& where)
      : pattern_(j.at("pattern"), where + ".pattern"),
        content_(Get<std::string>(j, "content", "")) {}
  void Apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = pattern_.ReplaceAll(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// <0xXX> tokens -> their bytes, each run decoded lossily.
class ByteFallbackDec : public Decoder {
 public:
  void Apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
          std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4]))) {
        bytes.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
        continue;
      }
      if (!bytes.empty()) out.push_back(Utf8Lossy(bytes)), bytes.clear();
      out.push_back(std::move(t));
    }
    if (!bytes.empty()) out.push_back(Utf8Lossy(bytes));
    tokens = std::move(out);
  }
};

class FuseDec : public Decoder {
 public:
  void Apply(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDec : public Decoder {
 public:
  explicit StripDec(const Json& j)
      : content_(Get<std::string>(j, "content", " ")),
        start_(Get<size_t>(j, "start", 0)),
        stop_(Get<size_t>(j, "stop", 0)) {}
  void Apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::string_view v = t;
      for (size_t i = 0; i < start_ && v.starts_with(content_); ++i)
        v.remove_prefix(content_.size());
      for (size_t i = 0; i < stop_ && v.ends_with(content_); ++i) v.remove_suffix(content_.size());
      t = std::string(v);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class MetaspaceDec : public Decoder {
 public:
  MetaspaceDec(const Json& j, const std::string& where)
      : replacement_(Get<std::string>(j, "replacement", "\u2581")),
        prepend_(ParsePrependScheme(j, where)),
        marker_(Json{{"String", replacement_}}, where + ".replacement") {}
  void Apply(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = marker_.ReplaceAll(tokens[i], " ");
      if (i == 0 && prepend_ != Prepend::kNever && !tokens[i].empty() && tokens[i][0] == ' ') {
        tokens[i].erase(0, 1);
      }
    }
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  Pattern marker_;
};

class DecSequence : public Decoder {
 public:
  explicit DecSequence(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void Apply(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->Apply(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> MakeDecoder(const Json& j, const std::string& where,
                                     const std::unordered_set<std::string>* added) {
  if (j.is_null()) return nullptr;
  std::string type = TypeOf(j, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>(added);
  if (type == "Replace") return std::make_unique<ReplaceDec>(j, where);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Strip") return std::make_unique<StripDec>(j);
  if (type == "Metaspace") return std::make_unique<MetaspaceDec>(j, where);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    const Json& list = ListOf(j, "decoders", where);
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto p = MakeDecoder(list[i], fmt::format("{}.decoders[{}]", where, i), added)) {
        parts.push_back(std::move(p));
      }
    }
    return std::make_unique<DecSequence>(std::move(parts));
  }
  Unsupported(where, type, "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence");
}

// ---- Post-processors -------------------------------------------------------------------------

namespace {

int32_t IdOf(const TokenLookup& lookup, const std::string& token, const std::string& where) {
  auto id = lookup(token);
  if (!id)
    throw TokenizerError(fmt::format("{}: special token '{}' is not in the vocab", where, token));
  return *id;
}

// TemplateProcessing's "single": special-token pieces before and after the one $A.
SpecialFrame FromTemplate(const Json& j, const std::string& where) {
  SpecialFrame frame;
  const Json& single = j.at("single");
  const Json& specials = j.contains("special_tokens") ? j["special_tokens"] : Json::object();
  bool seen_a = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const Json& piece = single[i];
    std::string at = fmt::format("{}.single[{}]", where, i);
    if (piece.contains("Sequence")) {
      if (piece["Sequence"].value("id", "A") != "A" || seen_a) {
        throw TokenizerError(at + ": a single template holds exactly one Sequence A");
      }
      seen_a = true;
    } else if (piece.contains("SpecialToken")) {
      std::string name = piece["SpecialToken"].at("id").get<std::string>();
      if (!specials.contains(name)) {
        throw TokenizerError(fmt::format("{}: '{}' is not in special_tokens", at, name));
      }
      auto ids = specials[name].at("ids").get<std::vector<int32_t>>();
      auto& dst = seen_a ? frame.suffix : frame.prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    } else {
      throw TokenizerError(at + ": expected a Sequence or a SpecialToken");
    }
  }
  return frame;
}

}  // namespace

SpecialFrame MakePostProcessor(const Json& j, const std::string& where, const TokenLookup& lookup) {
  if (j.is_null()) return {};
  std::string type = TypeOf(j, where);
  if (type == "TemplateProcessing") return FromTemplate(j, where);
  if (type == "ByteLevel") return {};  // offsets only: the ids are unchanged
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    // "cls": [token, id], "sep": [token, id]
    SpecialFrame f;
    f.prefix.push_back(IdOf(lookup, j.at("cls").at(0).get<std::string>(), where + ".cls"));
    f.suffix.push_back(IdOf(lookup, j.at("sep").at(0).get<std::string>(), where + ".sep"));
    return f;
  }
  if (type == "Sequence") {
    SpecialFrame all;
    const Json& list = ListOf(j, "processors", where);
    for (size_t i = 0; i < list.size(); ++i) {
      SpecialFrame f =
          MakePostProcessor(list[i], fmt::format("{}.processors[{}]", where, i), lookup);
      all.prefix.insert(all.prefix.begin(), f.prefix.begin(), f.prefix.end());
      all.suffix.insert(all.suffix.end(), f.suffix.begin(), f.suffix.end());
    }
    return all;
  }
  Unsupported(where, type,
              "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, "
              "Sequence");
}

}  // namespace seedgrid::text

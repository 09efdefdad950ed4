#include "experiments/model/model_cli.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/store.h"
#include "core/types.h"
#include "experiments/model/checkpoint.h"
#include "experiments/model/model.h"
#include "text/tokenizer.h"

namespace seedgrid {
namespace {

constexpr const char* kUsage =
    "usage: seedgrid model inspect DIR [--json]\n"
    "       seedgrid model logits DIR (--tokens FILE.json | --text S [--text S ...]) --out F.h5\n"
    "                             [--tokenizer TOKDIR] [--no-special] [--dtype float32|bfloat16]\n"
    "  --text S        encode S with DIR's tokenizer (tokenizer.json, or GPT-2's vocab.json/\n"
    "                  encoder.json + merges.txt/vocab.bpe), or TOKDIR's with --tokenizer;\n"
    "                  repeat for a batch: the texts must encode to the same number of tokens\n"
    "  --no-special    no special tokens from the tokenizer's post-processor (e.g. BOS)\n";
constexpr size_t kShownProblems = 10;

struct UsageFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Prints a checkpoint's first problems; true when there were any.
bool ReportProblems(const CheckpointInfo& info) {
  if (info.ok()) return false;
  fmt::print(stderr, "seedgrid: checkpoint {}: {} problem(s)\n", info.dir, info.problems.size());
  for (size_t i = 0; i < info.problems.size() && i < kShownProblems; ++i)
    fmt::print(stderr, "  {}\n", info.problems[i]);
  return true;
}

std::string HumanBytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

int Inspect(const std::string& dir, bool json) {
  const CheckpointInfo info = InspectCheckpoint(dir);
  if (ReportProblems(info)) return exit_code::kUsage;
  const Json j = CheckpointJson(info);
  if (json) {
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  const ModelConfig& c = info.config;
  std::string rope = "learned positions (no RoPE)";
  if (!c.learned_positions) {
    rope = fmt::format("theta {}, rotary dim {}/{}", c.rope_theta, c.rope_dim(), c.head_dim);
    if (!c.rope_scaling_type.empty())
      rope += fmt::format(", scaling {} x{}", c.rope_scaling_type, c.rope_scaling_factor);
  }
  fmt::print("checkpoint   {}\n", dir);
  fmt::print("family       {}\n", c.model_type);
  fmt::print("parameters   {}\n", c.num_params());
  fmt::print("dtype        {}\n", info.DTypeSummary());
  fmt::print("layers       {}\n", c.num_hidden_layers);
  fmt::print("hidden       {} (mlp {})\n", c.hidden_size, c.intermediate_size);
  fmt::print("heads        {} (kv heads {}, head dim {})\n", c.num_attention_heads,
             c.num_key_value_heads, c.head_dim);
  fmt::print("vocab        {}\n", c.vocab_size);
  fmt::print("positions    {} max; {}\n", c.max_position_embeddings, rope);
  if (c.sliding_window > 0)
    fmt::print("sliding      window {} on {} layers\n", c.sliding_window,
               c.sliding_alternate ? "even" : "all");
  fmt::print("tied         {}\n", c.tie_word_embeddings ? "yes" : "no");
  fmt::print("on disk      {} in {} file(s)\n", HumanBytes(info.bytes_on_disk), info.files.size());
  fmt::print("LoRA roles\n");
  for (const auto& [role, where] : RoleTargets(c)) fmt::print("  {:<5} {}\n", role, where);
  return 0;
}

// Token rows for a forward: B rows of T ids each, row-major.
struct TokenRows {
  std::vector<int64_t> ids;
  int64_t B = 0, T = 0;
};

// Checks that `rows` fits the model: ids in [0, vocab), at most max_len per row. `what` names
// the source in errors ("FILE.json", "--text").
void CheckTokenRows(const TokenRows& rows, int64_t vocab, int64_t max_len,
                    const std::string& what) {
  for (size_t i = 0; i < rows.ids.size(); ++i)
    if (rows.ids[i] < 0 || rows.ids[i] >= vocab)
      throw UsageFailure(fmt::format("{}: row {} position {}: {} is not a token id in [0, {})",
                                     what, static_cast<int64_t>(i) / rows.T,
                                     static_cast<int64_t>(i) % rows.T, rows.ids[i], vocab));
  if (rows.T > max_len)
    throw UsageFailure(
        fmt::format("{}: {} tokens per row, the model takes at most {}", what, rows.T, max_len));
}

// A JSON array of ids, or of equal-length arrays of ids.
TokenRows ReadTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageFailure(path + ": cannot open token file");
  Json j;
  try {
    j = Json::parse(in);
  } catch (const Json::exception& e) {
    throw UsageFailure(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  if (!j.is_array() || j.empty()) throw UsageFailure(path + ": expected a non-empty JSON array");
  const Json rows = j[0].is_array() ? j : Json::array({j});
  TokenRows out;
  out.B = static_cast<int64_t>(rows.size());
  out.T = static_cast<int64_t>(rows[0].size());
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].is_array() || static_cast<int64_t>(rows[r].size()) != out.T || out.T == 0)
      throw UsageFailure(
          fmt::format("{}: row {} is not a list of {} token ids (rows must be "
                      "non-empty and of equal length)",
                      path, r, out.T));
    for (size_t i = 0; i < rows[r].size(); ++i) {
      const Json& v = rows[r][i];
      if (!v.is_number_integer())
        throw UsageFailure(
            fmt::format("{}: row {} position {}: {} is not a token id", path, r, i, v.dump()));
      out.ids.push_back(v.get<int64_t>());
    }
  }
  return out;
}

// The texts encoded by the tokenizer in `tokenizer_dir`: one row each. Rows are not padded
// (seedgrid's forward has no padding mask), so texts of different token lengths are refused
// with each one's length, rather than run with a padding the logits would silently depend on.
TokenRows EncodeTexts(const std::vector<std::string>& texts, const std::string& tokenizer_dir,
                      bool add_special) {
  std::optional<text::Tokenizer> tok;
  try {
    tok.emplace(text::Tokenizer::FromDirectory(tokenizer_dir));
  } catch (const std::exception& e) {  // TokenizerError, or a filesystem error reading it
    throw UsageFailure(fmt::format(
        "--text: no usable tokenizer in {} ({}); a Hugging Face checkpoint ships tokenizer.json "
        "beside config.json, else name a tokenizer directory with --tokenizer TOKDIR",
        tokenizer_dir, e.what()));
  }
  TokenRows out;
  std::vector<size_t> lengths;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> ids;
    try {
      ids = tok->Encode(texts[i], add_special);
    } catch (const std::invalid_argument& e) {
      throw UsageFailure(fmt::format("--text #{}: {}", i + 1, e.what()));
    }
    if (ids.empty())
      throw UsageFailure(fmt::format("--text #{}: '{}' encodes to no tokens", i + 1, texts[i]));
    lengths.push_back(ids.size());
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
  }
  if (std::adjacent_find(lengths.begin(), lengths.end(), std::not_equal_to<>()) != lengths.end())
    throw UsageFailure(fmt::format(
        "--text: the texts encode to {} tokens: a batch needs rows of equal length (seedgrid does "
        "not pad); run them one per command",
        fmt::join(lengths, ", ")));
  out.B = static_cast<int64_t>(texts.size());
  out.T = static_cast<int64_t>(lengths.front());
  return out;
}

// What `model logits` was asked: the token source (a file or texts) and the output.
struct LogitsArgs {
  std::string dir, tokens, out, dtype = "float32", tokenizer;
  std::vector<std::string> texts;
  bool no_special = false;
};

int Logits(const LogitsArgs& a) {
  if (a.dtype != "float32" && a.dtype != "bfloat16")
    throw UsageFailure(fmt::format("--dtype: '{}' is not float32 or bfloat16", a.dtype));
  if (a.tokens.empty() == a.texts.empty() || a.out.empty())
    throw UsageFailure("model logits: --out and one of --tokens or --text are required");
  if (a.texts.empty() && (!a.tokenizer.empty() || a.no_special))
    throw UsageFailure("model logits: --tokenizer and --no-special go with --text");
  const CheckpointInfo info = InspectCheckpoint(a.dir);
  if (ReportProblems(info)) return exit_code::kUsage;
  TokenRows rows = a.texts.empty() ? ReadTokens(a.tokens)
                                   : EncodeTexts(a.texts, a.tokenizer.empty() ? a.dir : a.tokenizer,
                                                 !a.no_special);
  CheckTokenRows(rows, info.config.vocab_size, info.config.max_position_embeddings,
                 a.texts.empty() ? a.tokens : "--text");
  const int64_t B = rows.B, T = rows.T;
  // The compute dtype; the logits come back float32 either way.
  Model model = Model::Load(a.dir, torch::kCPU, ParseComputeDtype(a.dtype));
  torch::InferenceMode guard;
  const auto tokens = torch::from_blob(rows.ids.data(), {B, T}, torch::kLong).clone();
  const auto logits = model.Forward(tokens).to(torch::kFloat32).contiguous();
  H5Writer w(a.out);
  w.Write("logits", logits.data_ptr<float>(), Shape{B, T, info.config.vocab_size});
  w.Write("tokens", rows.ids.data(), Shape{B, T});
  w.Attr("/", "checkpoint", a.dir);
  w.Attr("/", "family", info.config.model_type);
  w.Attr("/", "dtype", a.dtype);
  w.Close();
  return 0;
}

}  // namespace

int ModelCommandMain(int argc, char** argv) {
  std::vector<std::string> a(argv + 2, argv + argc);
  try {
    if (a.empty() || a[0] == "-h" || a[0] == "--help") {
      fmt::print("{}", kUsage);
      return a.empty() ? exit_code::kUsage : 0;
    }
    const std::string cmd = a[0];
    LogitsArgs la;
    std::string& dir = la.dir;
    bool json = false;
    for (size_t i = 1; i < a.size(); ++i) {
      const auto value = [&](const char* flag) {
        if (i + 1 >= a.size()) throw UsageFailure(fmt::format("{} needs a value", flag));
        return a[++i];
      };
      if (a[i] == "--json" && cmd == "inspect") {
        json = true;
      } else if (a[i] == "--tokens" && cmd == "logits") {
        la.tokens = value("--tokens");
      } else if (a[i] == "--text" && cmd == "logits") {
        la.texts.push_back(value("--text"));
      } else if (a[i] == "--tokenizer" && cmd == "logits") {
        la.tokenizer = value("--tokenizer");
      } else if (a[i] == "--no-special" && cmd == "logits") {
        la.no_special = true;
      } else if (a[i] == "--out" && cmd == "logits") {
        la.out = value("--out");
      } else if (a[i] == "--dtype" && cmd == "logits") {
        la.dtype = value("--dtype");
      } else if (dir.empty() && a[i].rfind("--", 0) != 0) {
        dir = a[i];
      } else {
        throw UsageFailure(fmt::format("model {}: unexpected argument '{}'", cmd, a[i]));
      }
    }
    if (dir.empty()) throw UsageFailure("model " + cmd + ": DIR is required");
    if (cmd == "inspect") return Inspect(dir, json);
    if (cmd == "logits") return Logits(la);
    throw UsageFailure(fmt::format("model: unknown command '{}'", cmd));
  } catch (const UsageFailure& e) {
    fmt::print(stderr, "seedgrid: {}\n{}", e.what(), kUsage);
    return exit_code::kUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "seedgrid: error: {}\n", e.what());
    return exit_code::kInternal;
  }
}

}  // namespace seedgrid

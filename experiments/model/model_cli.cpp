#include "experiments/model/model_cli.h"

#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/store.h"
#include "core/types.h"
#include "experiments/model/checkpoint.h"
#include "experiments/model/model.h"

namespace seedgrid {
namespace {

constexpr const char* kUsage =
    "usage: seedgrid model inspect DIR [--json]\n"
    "       seedgrid model logits DIR --tokens FILE.json --out F.h5 [--dtype float32|bfloat16]\n";
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

// A JSON array of ids, or of equal-length arrays of ids -> (row-major ids, B, T).
std::vector<int64_t> ReadTokens(const std::string& path, int64_t vocab, int64_t max_len, int64_t& B,
                                int64_t& T) {
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
  B = static_cast<int64_t>(rows.size());
  T = static_cast<int64_t>(rows[0].size());
  std::vector<int64_t> ids;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].is_array() || static_cast<int64_t>(rows[r].size()) != T || T == 0)
      throw UsageFailure(
          fmt::format("{}: row {} is not a list of {} token ids (rows must be "
                      "non-empty and of equal length)",
                      path, r, T));
    for (size_t i = 0; i < rows[r].size(); ++i) {
      const Json& v = rows[r][i];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab)
        throw UsageFailure(fmt::format("{}: row {} position {}: {} is not a token id in [0, {})",
                                       path, r, i, v.dump(), vocab));
      ids.push_back(v.get<int64_t>());
    }
  }
  if (T > max_len)
    throw UsageFailure(
        fmt::format("{}: {} tokens per row, the model takes at most {}", path, T, max_len));
  return ids;
}

int Logits(const std::string& dir, const std::string& tokens_path, const std::string& out,
           const std::string& dtype) {
  if (dtype != "float32" && dtype != "bfloat16")
    throw UsageFailure(fmt::format("--dtype: '{}' is not float32 or bfloat16", dtype));
  const CheckpointInfo info = InspectCheckpoint(dir);
  if (ReportProblems(info)) return exit_code::kUsage;
  int64_t B = 0, T = 0;
  auto ids =
      ReadTokens(tokens_path, info.config.vocab_size, info.config.max_position_embeddings, B, T);
  // The compute dtype; the logits come back float32 either way.
  Model model = Model::Load(dir, torch::kCPU, ParseComputeDtype(dtype));
  torch::InferenceMode guard;
  const auto tokens = torch::from_blob(ids.data(), {B, T}, torch::kLong).clone();
  const auto logits = model.Forward(tokens).to(torch::kFloat32).contiguous();
  H5Writer w(out);
  w.Write("logits", logits.data_ptr<float>(), Shape{B, T, info.config.vocab_size});
  w.Write("tokens", ids.data(), Shape{B, T});
  w.Attr("/", "checkpoint", dir);
  w.Attr("/", "family", info.config.model_type);
  w.Attr("/", "dtype", dtype);
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
    std::string dir, tokens, out, dtype = "float32";
    bool json = false;
    for (size_t i = 1; i < a.size(); ++i) {
      const auto value = [&](const char* flag) {
        if (i + 1 >= a.size()) throw UsageFailure(fmt::format("{} needs a value", flag));
        return a[++i];
      };
      if (a[i] == "--json" && cmd == "inspect") {
        json = true;
      } else if (a[i] == "--tokens" && cmd == "logits") {
        tokens = value("--tokens");
      } else if (a[i] == "--out" && cmd == "logits") {
        out = value("--out");
      } else if (a[i] == "--dtype" && cmd == "logits") {
        dtype = value("--dtype");
      } else if (dir.empty() && a[i].rfind("--", 0) != 0) {
        dir = a[i];
      } else {
        throw UsageFailure(fmt::format("model {}: unexpected argument '{}'", cmd, a[i]));
      }
    }
    if (dir.empty()) throw UsageFailure("model " + cmd + ": DIR is required");
    if (cmd == "inspect") return Inspect(dir, json);
    if (cmd == "logits") {
      if (tokens.empty() || out.empty())
        throw UsageFailure("model logits: --tokens and --out are required");
      return Logits(dir, tokens, out, dtype);
    }
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

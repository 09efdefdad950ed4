// The config half of kind: command: params, their checks, and the plan-time resolution
// (the `code:` digest, the working directory, every placeholder checked).
#include <filesystem>

#include <fmt/format.h>

#include "experiments/command/code_hash.h"
#include "experiments/command/command.h"
#include "experiments/command/layout.h"
#include "experiments/command/template.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

bool Scalar(const Json& v) { return v.is_string() || v.is_number() || v.is_boolean(); }

std::vector<std::string> ValidateCommand(const Json& p) {
  std::vector<std::string> problems;
  const Json& argv = p["argv"];
  if (!argv.is_array() || argv.empty()) {
    problems.push_back("argv: give the command as a non-empty list, e.g. [python3, train.py]");
  } else {
    for (size_t i = 0; i < argv.size(); ++i) {
      if (!Scalar(argv[i]))
        problems.push_back(fmt::format("argv[{}]: expected a string, got {}", i, argv[i].dump()));
    }
  }
  const Json& env = p["env"];
  if (!env.is_null() && !env.is_object()) {
    problems.push_back("env: expected a map of NAME: value");
  } else if (env.is_object()) {
    for (const auto& [k, v] : env.items()) {
      if (k.empty() || k.find('=') != std::string::npos)
        problems.push_back(fmt::format("env.{}: not a variable name", k));
      if (!Scalar(v))
        problems.push_back(fmt::format("env.{}: expected a string, got {}", k, v.dump()));
    }
  }
  if (!p["cwd"].is_string() || p["cwd"].get<std::string>().empty())
    problems.push_back("cwd: expected a directory (relative to the spec file)");
  const Json& code = p["code"];
  if (code.is_array()) {
    for (size_t i = 0; i < code.size(); ++i) {
      if (!code[i].is_string() || code[i].get<std::string>().empty())
        problems.push_back(fmt::format("code[{}]: expected a path or glob", i));
    }
  }
  if (p["code_digest"] != "")
    problems.push_back(
        "code_digest: set by seedgrid from the files of `code:`; do not set it in the spec");
  return problems;
}

// The placeholders of every string seedgrid expands (argv, env values, cwd).
void CheckPlaceholders(const Json& p, const KindConfig::StageContext& st,
                       std::vector<std::string>& problems) {
  auto check = [&](const std::string& key, const Json& v) {
    if (!v.is_string()) return;
    for (const auto& m : command::CheckTemplate(v.get<std::string>(), p, st.axis_keys, st.needs))
      problems.push_back(fmt::format("{}: {}", key, m));
  };
  for (size_t i = 0; i < p["argv"].size(); ++i) check(fmt::format("argv[{}]", i), p["argv"][i]);
  if (p["env"].is_object()) {
    for (const auto& [k, v] : p["env"].items()) check("env." + k, v);
  }
  check("cwd", p["cwd"]);
}

std::vector<std::string> ResolveCommand(Json& p, const KindConfig::StageContext& st) {
  std::vector<std::string> problems;
  CheckPlaceholders(p, st, problems);
  // The working directory, absolute (the worker may run elsewhere). Placeholders in it stay.
  const std::string cwd = p["cwd"].get<std::string>();
  if (cwd.find('{') == std::string::npos) {
    fs::path dir = fs::path(cwd).is_absolute() ? fs::path(cwd) : fs::path(st.spec_dir) / cwd;
    dir = dir.lexically_normal();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      problems.push_back(fmt::format("cwd: {} is not a directory", dir.string()));
    }
    std::string text = dir.string();
    if (text.size() > 1 && text.back() == '/') text.pop_back();
    p["cwd"] = text;
  } else if (!fs::path(cwd).is_absolute()) {
    p["cwd"] = (fs::path(st.spec_dir) / cwd).lexically_normal().string();
  }
  std::vector<std::string> patterns;
  for (const auto& c : p["code"]) patterns.push_back(c.get<std::string>());
  command::CodeDigest d = command::DigestCode(patterns, st.spec_dir);
  problems.insert(problems.end(), d.problems.begin(), d.problems.end());
  p["code_digest"] = d.hex;
  return problems;
}

// The report draws what the command logged with steps; its table shows every metric.
KindReport CommandReport() {
  KindFigure curves;
  curves.type = "metric_curves";
  curves.renderer = FigureRenderer::kGroupCurves;
  curves.group = command::kCurvesGroup;
  curves.title = "Logged metrics, stage {stage}: mean over seeds, band {band}";
  curves.caption =
      "Step-wise metrics the command logged to metrics.jsonl ({names}) against the step; a line "
      "per config, band: {band} over seeds.";
  curves.xlabel = "step";
  return {.metrics = {}, .only_these = false, .figures = {curves}};
}

}  // namespace

void RegisterCommandConfig(KindRegistry& kinds) {
  KindConfig k;
  k.name = "command";
  k.summary = "runs your own executable per shard (argv, env, cwd, code; docs/command.md)";
  k.defaults = {
      {"argv", Json::array()}, {"env", nullptr},    {"cwd", "."},
      {"code", Json::array()}, {"code_digest", ""},
  };
  k.open_params = true;
  k.unhashed_params = {"cwd"};  // absolute: where the checkout is, not what is computed
  k.validate = ValidateCommand;
  k.resolve = ResolveCommand;
  k.supports_gang = true;
  k.report = CommandReport();
  k.param_docs = {
      {"argv", "the command, a non-empty list; {param} placeholders (docs/command.md)"},
      {"env", "map of environment variables set for the command"},
      {"cwd", "working directory, relative to the spec file (not part of the shard id)"},
      {"code", "files and directories whose content is part of the shard id"},
      {"code_digest", "set by seedgrid from the files of code; not set in a spec"},
  };
  k.starter_params = {{"argv", {"python3", "-c", "print('seed {seed}')"}}};
  kinds.Add(std::move(k));
}

}  // namespace seedgrid

#include "experiments/command/results.h"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "core/runner.h"
#include "experiments/command/layout.h"

namespace seedgrid::command {
namespace {

namespace fs = std::filesystem;

void SetFinal(ParsedMetrics& m, const std::string& name, double v) {
  for (auto& [k, old] : m.finals) {
    if (k == name) {
      old = v;
      return;
    }
  }
  m.finals.emplace_back(name, v);
}

double Number(const Json& v, const std::string& where, const std::string& what) {
  if (v.is_number()) return v.get<double>();
  throw std::runtime_error(
      fmt::format("{}: {} must be a number, got {}", where, what, v.dump().substr(0, 80)));
}

void ReadJsonl(const fs::path& path, ParsedMetrics& m) {
  std::ifstream in(path);
  std::string line;
  std::map<std::string, size_t> curve_of;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path.string(), n);
    Json j;
    try {
      j = Json::parse(line);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: not JSON ({})", where, e.what()));
    }
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("value")) {
      throw std::runtime_error(
          fmt::format("{}: expected {{\"name\": ..., \"value\": ..., \"step\": ...}}", where));
    }
    const std::string name = j["name"].get<std::string>();
    if (name.empty()) throw std::runtime_error(where + ": empty metric name");
    const double value = Number(j["value"], where, "value");
    SetFinal(m, name, value);
    if (j.contains("step") && !j["step"].is_null()) {
      const double step = Number(j["step"], where, "step");
      auto [it, fresh] = curve_of.emplace(name, m.curves.size());
      if (fresh) m.curves.push_back(Curve{name, {}, {}});
      m.curves[it->second].steps.push_back(step);
      m.curves[it->second].values.push_back(value);
    }
  }
}

// Copies every root object of `src` into the open file `dst` (same names). A name already in
// `dst` (another .h5 of the command, or seedgrid's curves/) is an error.
void CopyRoot(const std::string& src, hid_t dst) {
  hid_t f = H5Fopen(src.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error(fmt::format("{}: not a readable HDF5 file", src));
  std::vector<std::string> names;
  H5Literate(
      f, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* op) -> herr_t {
        static_cast<std::vector<std::string>*>(op)->push_back(name);
        return 0;
      },
      &names);
  std::string problem;
  for (const auto& n : names) {
    if (H5Lexists(dst, n.c_str(), H5P_DEFAULT) > 0) {
      problem = fmt::format(
          "{}: '/{}' is already in the shard's HDF5 (from another .h5 or "
          "seedgrid's curves/); give each array a distinct name",
          src, n);
      break;
    }
    if (H5Ocopy(f, n.c_str(), dst, n.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0) {
      problem = fmt::format("{}: cannot copy '/{}' into the shard's HDF5", src, n);
      break;
    }
  }
  H5Fclose(f);
  if (!problem.empty()) throw std::runtime_error(problem);
}

void CopyH5Files(const std::vector<fs::path>& files, ShardContext& ctx) {
  const std::string target = ctx.out().path();  // creates the shard's file (temp name)
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl, false, true);
#endif
  // A second handle on the writer's open file: HDF5 shares the one open file between them.
  hid_t dst = H5Fopen(target.c_str(), H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  if (dst < 0) throw std::runtime_error(fmt::format("{}: cannot reopen the shard's HDF5", target));
  try {
    for (const auto& f : files) CopyRoot(f.string(), dst);
  } catch (...) {
    H5Fclose(dst);
    throw;
  }
  if (H5Fclose(dst) < 0) throw std::runtime_error(fmt::format("{}: close failed", target));
}

}  // namespace

ParsedMetrics ReadMetrics(const std::string& dir) {
  ParsedMetrics m;
  const fs::path jsonl = fs::path(dir) / "metrics.jsonl";
  if (fs::exists(jsonl)) ReadJsonl(jsonl, m);
  const fs::path json = fs::path(dir) / "metrics.json";
  if (fs::exists(json)) {
    std::ifstream in(json);
    Json j;
    try {
      j = Json::parse(in);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: not JSON ({})", json.string(), e.what()));
    }
    if (!j.is_object()) {
      throw std::runtime_error(
          fmt::format("{}: expected an object of name -> number", json.string()));
    }
    for (const auto& [k, v] : j.items()) SetFinal(m, k, Number(v, json.string(), "'" + k + "'"));
  }
  return m;
}

void PublishResults(const std::string& scratch, const std::string& files_dir, ShardContext& ctx) {
  ParsedMetrics m = ReadMetrics(scratch);
  for (const auto& c : m.curves) {
    ctx.out().Write(std::string(kCurvesGroup) + "/" + c.name + "/step", c.steps);
    ctx.out().Write(std::string(kCurvesGroup) + "/" + c.name + "/value", c.values);
  }
  for (const auto& [k, v] : m.finals) ctx.Metric(k, v);
  std::vector<fs::path> h5;
  for (const auto& e : fs::directory_iterator(scratch)) {
    if (e.is_regular_file() && e.path().extension() == ".h5") h5.push_back(e.path());
  }
  std::sort(h5.begin(), h5.end());
  if (!h5.empty()) CopyH5Files(h5, ctx);
  for (const auto& f : h5) fs::remove(f);
  fs::remove_all(files_dir);  // a failed attempt's leftovers: this attempt's files replace them
  if (fs::is_empty(scratch)) {
    fs::remove(scratch);
  } else {
    fs::rename(scratch, files_dir);
  }
}

}  // namespace seedgrid::command

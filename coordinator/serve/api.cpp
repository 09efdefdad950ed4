#include "coordinator/serve/api.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "coordinator/serve/safety.h"
#include "core/store.h"
#include "core/types.h"

namespace seedgrid::serve {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStatuses[] = {"pending", "running", "done", "failed", "preempted"};
constexpr int kMaxPage = 500;
constexpr size_t kMaxReportFiles = 200;

Answer JsonAnswer(const Json& j) {
  return Answer{200, "application/json", j.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string ContentType(const fs::path& p) {
  const std::string ext = p.extension().string();
  if (ext == ".png") return "image/png";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".json") return "application/json";
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".h5") return "application/x-hdf5";
  if (ext == ".csv" || ext == ".md" || ext == ".tex" || ext == ".txt" || ext == ".out" ||
      ext == ".err" || ext == ".log" || ext == ".yaml") {
    return "text/plain; charset=utf-8";
  }
  return "application/octet-stream";
}

// The last `max` bytes of a file (whole lines where it was cut), or "" when unreadable.
std::string Tail(const fs::path& p, size_t max, bool* truncated) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = size > static_cast<std::streamoff>(max) ? size - max : 0;
  in.seekg(start);
  std::string s(static_cast<size_t>(size - start), '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(in.gcount()));
  *truncated = start > 0;
  if (start > 0) {
    if (auto nl = s.find('\n'); nl != std::string::npos) s.erase(0, nl + 1);
  }
  return s;
}

// "/files/<sweep>/<rel>" for a path under the sweep's directory ("" when it is not).
std::string FileUrl(const std::string& sweep, const fs::path& sweep_dir, const fs::path& p) {
  const fs::path rel = p.lexically_relative(sweep_dir);
  if (rel.empty() || rel.begin()->string() == "..") return "";
  return fmt::format("/files/{}/{}", sweep, rel.generic_string());
}

Json ShardBriefJson(const ShardBrief& b) {
  Json params = Json::parse(b.params_json, nullptr, false);
  Json axes = Json::parse(b.axes_json, nullptr, false);
  return Json{{"id", b.id},
              {"seq", b.seq},
              {"stage", b.stage},
              {"status", b.status},
              {"attempts", b.attempts},
              {"error", b.error},
              {"updated", b.updated},
              {"params", params.is_discarded() ? Json(b.params_json) : params},
              {"axes", axes.is_discarded() ? Json(b.axes_json) : axes}};
}

// The report's files under <out>/<sweep>/report, by what the page does with them.
Json ReportFiles(const std::string& sweep, const fs::path& sweep_dir) {
  const fs::path dir = sweep_dir / "report";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return nullptr;
  Json figures = Json::array(), tables = Json::array(), documents = Json::array();
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator() && files.size() < kMaxReportFiles;
       it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const std::string ext = f.extension().string();
    Json e{{"name", f.lexically_relative(dir).generic_string()},
           {"url", FileUrl(sweep, sweep_dir, f)}};
    if (ext == ".png") {
      figures.push_back(e);
    } else if (ext == ".csv") {
      bool cut = false;
      e["text"] = Tail(f, Api::kLogTail, &cut);
      e["truncated"] = cut;
      tables.push_back(e);
    } else if (ext == ".md" || ext == ".html" || ext == ".tex" || ext == ".svg") {
      documents.push_back(e);
    }
  }
  return Json{{"figures", figures}, {"tables", tables}, {"documents", documents}};
}

// The training curves a done shard's file holds: every 1-D dataset under train/ (pretrain's
// train/loss, lora_steer's train/loss_pos and train/loss_neg), each thinned to at most
// kCurvePoints evenly spaced steps (the last one kept). Live curves of running shards need
// workers to push them: see LiveCurveJson.
constexpr size_t kCurvePoints = 400;
constexpr int64_t kMaxCurveSteps = 10'000'000;

Json Curves(const fs::path& file) {
  Json out = Json::array();
  try {
    H5Reader r(file.string());
    if (!r.Has("train")) return out;
    for (const auto& name : r.List("train")) {
      const std::string ds = "train/" + name;
      const Shape shape = r.DatasetShape(ds);
      if (shape.size() != 1 || shape[0] < 2 || shape[0] > kMaxCurveSteps) continue;
      const std::vector<double> v = r.Read<double>(ds);
      const size_t stride = (v.size() + kCurvePoints - 1) / kCurvePoints;
      Json steps = Json::array(), values = Json::array();
      for (size_t i = 0; i < v.size(); i += stride) {
        steps.push_back(i);
        values.push_back(v[i]);
      }
      if ((v.size() - 1) % stride != 0) {
        steps.push_back(v.size() - 1);
        values.push_back(v.back());
      }
      out.push_back(Json{{"name", ds}, {"steps", steps}, {"values", values}, {"length", v.size()}});
    }
  } catch (const std::exception&) {
    // Not readable as HDF5 (being replaced, damaged): no curves; the file's own check is the
    // coordinator's business.
  }
  return out;
}

// A live curve of a running attempt (live_points) as the page draws it, with its newest point.
Json LiveCurveJson(const LiveCurveRow& c) {
  return Json{{"attempt", c.attempt},
              {"name", c.name},
              {"steps", c.steps},
              {"values", c.values},
              {"t", c.t},
              {"latest", Json{{"step", c.steps.back()}, {"value", c.values.back()}}}};
}

}  // namespace

Answer ErrorAnswer(int status, const std::string& message) {
  return Answer{status, "application/json",
                Json{{"error", message}}.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

Api::Api(Registry& reg, std::function<double()> now, const SummaryCache* cache)
    : reg_(reg), now_(now ? std::move(now) : WallNow), cache_(cache) {}

SweepAggregates Api::Aggregates(const std::string& sweep) {
  if (cache_) {
    if (auto a = cache_->Get(sweep)) return *a;
  }
  SweepAggregates a;
  a.computed_at = now_();
  a.counts = reg_.CountByStatusSince(sweep, a.computed_at - kThroughputWindow);
  a.failed = reg_.ShardPage(ShardPageQuery{sweep, "", "failed", 0, Refresher::kFailedPage});
  return a;
}

Answer Api::Get(const std::string& path, const std::map<std::string, std::string>& query) {
  auto parts = std::vector<std::string>{};
  for (size_t s = 1, e; s <= path.size(); s = e + 1) {
    e = path.find('/', s);
    if (e == std::string::npos) e = path.size();
    parts.push_back(path.substr(s, e - s));
  }
  try {
    if (parts.size() >= 3 && parts[0] == "files") {
      return File(parts[1], path.substr(std::string("/files/").size() + parts[1].size() + 1));
    }
    if (parts.empty() || parts[0] != "api") return ErrorAnswer(404, "no such route: " + path);
    if (parts.size() == 2 && parts[1] == "version") return Version();
    if (parts.size() == 2 && parts[1] == "sweeps") return SweepList();
    if (parts.size() == 3 && parts[1] == "sweeps") return SweepDetail(parts[2]);
    if (parts.size() == 4 && parts[1] == "sweeps" && parts[3] == "shards") {
      return ShardList(parts[2], query);
    }
    if (parts.size() == 4 && parts[1] == "sweeps" && parts[3] == "live") {
      return SweepLive(parts[2]);
    }
    if (parts.size() == 3 && parts[1] == "shards") return ShardDetail(parts[2]);
    if (parts.size() == 4 && parts[1] == "shards" && parts[3] == "live") {
      return ShardLive(parts[2]);
    }
    return ErrorAnswer(404, "no such route: " + path);
  } catch (const UsageError& e) {
    return ErrorAnswer(400, e.what());
  }
}

Answer Api::Version() {
  const std::string v = fmt::format("{}.{}", reg_.DataVersion(), cache_ ? cache_->generation() : 0);
  return JsonAnswer(Json{{"version", v}, {"now", now_()}});
}

// Counts per stage and status, throughput over the last kThroughputWindow seconds, the ETA
// from it, and the launches (newest last).
Json Api::SweepSummary(const SweepRow& s, const SweepAggregates& a) {
  Json stages = Json::array();
  Json totals = Json::object();
  for (const char* st : kStatuses) totals[st] = 0;
  int64_t recent_done = 0, total = 0;
  for (const auto& c : a.counts) {
    if (stages.empty() || stages.back()["stage"] != c.stage) {
      Json counts = Json::object();
      for (const char* st : kStatuses) counts[st] = 0;
      stages.push_back(Json{{"stage", c.stage},
                            {"index", c.stage_index},
                            {"kind", c.kind},
                            {"counts", counts},
                            {"total", 0}});
    }
    Json& g = stages.back();
    g["counts"][c.status] = c.count;
    g["total"] = g["total"].get<int64_t>() + c.count;
    totals[c.status] = totals[c.status].get<int64_t>() + c.count;
    total += c.count;
    if (c.status == "done" || c.status == "failed") recent_done += c.recent;
  }
  Json launches = Json::array();
  bool running = false;
  for (const auto& l : reg_.Launches(s.name)) {
    running = l.ended.empty() && !l.exit_code;
    launches.push_back(Json{{"id", l.id},
                            {"started", l.started},
                            {"ended", l.ended},
                            {"host", l.host},
                            {"pid", l.pid},
                            {"workers", l.workers},
                            {"job_id", l.job_id},
                            {"exit_code", l.exit_code ? Json(*l.exit_code) : Json(nullptr)}});
  }
  const int64_t left = totals["pending"].get<int64_t>() + totals["running"].get<int64_t>() +
                       totals["preempted"].get<int64_t>();
  const double throughput = recent_done / kThroughputWindow;
  Json eta = nullptr;
  if (left == 0) {
    eta = 0;
  } else if (throughput > 0) {
    eta = std::ceil(left / throughput);
  }
  return Json{{"name", s.name},
              {"created", s.created},
              {"updated", s.updated},
              {"spec_hash", s.spec_hash},
              {"out_dir", s.out_dir},
              {"host", s.host},
              {"git_commit", s.git_commit},
              {"stages", stages},
              {"totals", totals},
              {"total", total},
              {"throughput", throughput},
              {"eta_s", eta},
              {"running", running},
              {"launches", launches},
              {"counts_at", a.computed_at}};
}

Answer Api::SweepList() {
  Json out = Json::array();
  for (const auto& s : reg_.Sweeps()) out.push_back(SweepSummary(s, Aggregates(s.name)));
  return JsonAnswer(Json{{"sweeps", out}, {"now", now_()}});
}

Answer Api::SweepDetail(const std::string& name) {
  auto s = reg_.Sweep(name);
  if (!s) return ErrorAnswer(404, fmt::format("no sweep '{}'", name));
  const SweepAggregates a = Aggregates(name);
  Json j = SweepSummary(*s, a);
  j["spec_text"] = s->spec_text;
  Json failed = Json::array();
  for (const auto& b : a.failed) failed.push_back(ShardBriefJson(b));
  j["failed"] = failed;
  j["report"] = ReportFiles(name, fs::path(s->out_dir) / name);
  Json jobs = Json::array();
  for (const auto& job : reg_.SlurmJobs(name)) {
    jobs.push_back(Json{{"job_id", job.job_id},
                        {"submitted", job.submitted},
                        {"mode", job.mode},
                        {"nodes", job.nodes},
                        {"log", job.log}});
  }
  j["slurm_jobs"] = jobs;
  j["provenance"] = reg_.Provenance(name);
  j["now"] = now_();
  return JsonAnswer(j);
}

Answer Api::ShardList(const std::string& name, const std::map<std::string, std::string>& query) {
  if (!reg_.Sweep(name)) return ErrorAnswer(404, fmt::format("no sweep '{}'", name));
  ShardPageQuery q;
  q.sweep = name;
  auto get = [&](const char* k) {
    auto it = query.find(k);
    return it == query.end() ? std::string() : it->second;
  };
  q.stage = get("stage");
  q.status = get("status");
  if (!q.status.empty() &&
      std::find(std::begin(kStatuses), std::end(kStatuses), q.status) == std::end(kStatuses)) {
    return ErrorAnswer(400, fmt::format("status '{}': expected pending, running, done, failed "
                                        "or preempted",
                                        q.status));
  }
  try {
    if (!get("after").empty()) q.after_seq = std::stoll(get("after"));
    if (!get("limit").empty()) q.limit = std::clamp(std::stoi(get("limit")), 1, kMaxPage);
  } catch (const std::exception&) {
    return ErrorAnswer(400, "after and limit must be integers");
  }
  Json shards = Json::array();
  const auto page = reg_.ShardPage(q);
  for (const auto& b : page) shards.push_back(ShardBriefJson(b));
  Json next = static_cast<int>(page.size()) == q.limit ? Json(page.back().seq) : Json(nullptr);
  return JsonAnswer(Json{{"shards", shards}, {"next_after", next}});
}

// Params, attempts, metrics, files and per-attempt log tails of one shard. Its files live in
// the directory of the sweep that recorded it first (ShardRow::sweep).
Answer Api::ShardDetail(const std::string& id) {
  if (!IsShardIdText(id)) return ErrorAnswer(400, "a shard id is 1 to 64 lowercase hex digits");
  std::optional<ShardRow> row = reg_.Shard(ShardId{id});
  if (!row) row = reg_.FindShardByPrefix(id);
  if (!row) return ErrorAnswer(404, fmt::format("no shard '{}'", id));
  Json j{{"id", row->key.id().hex},         {"sweep", row->sweep},
         {"stage", row->key.stage()},       {"kind", row->key.kind()},
         {"params", row->key.params()},     {"axes", row->key.axes()},
         {"seed", row->key.seed()},         {"role", std::string(ToString(row->key.role()))},
         {"status", ToString(row->status)}, {"attempts_charged", row->attempts},
         {"artifact", row->artifact},       {"error", row->error}};
  Json needs = Json::array();
  for (const auto& n : row->key.needs()) needs.push_back(n.hex);
  j["needs"] = needs;
  if (auto u = reg_.ShardUpdated(row->key.id())) j["updated"] = *u;
  Json attempts = Json::array();
  for (const auto& a : reg_.Attempts(row->key.id())) {
    attempts.push_back(Json{{"n", a.n},
                            {"rank", a.rank},
                            {"host", a.host},
                            {"gpu", a.gpu},
                            {"start", a.start},
                            {"end", a.end},
                            {"outcome", ToString(a.outcome)},
                            {"signal", a.signal},
                            {"exit_code", a.exit_code},
                            {"error", a.error},
                            {"peak_rss_kb", a.peak_rss_kb},
                            {"job_id", a.job_id}});
  }
  j["attempts"] = attempts;
  j["metrics"] = reg_.Metrics(row->key.id());
  Json files = Json::array(), logs = Json::array();
  if (auto s = reg_.Sweep(row->sweep)) {
    const fs::path sweep_dir = fs::path(s->out_dir) / row->sweep;
    std::error_code ec;
    if (!row->artifact.empty()) {
      const fs::path a = fs::path(reg_.path()).parent_path() / row->artifact;
      if (fs::is_regular_file(a, ec)) {
        j["curves"] = Curves(a);
        files.push_back(Json{{"name", a.filename().string()},
                             {"size", fs::file_size(a, ec)},
                             {"url", FileUrl(row->sweep, sweep_dir, a.lexically_normal())}});
      }
    }
    const fs::path log_dir = sweep_dir / row->key.stage() / (row->key.id().hex + ".logs");
    std::vector<fs::path> names;
    for (auto it = fs::directory_iterator(log_dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (it->is_regular_file(ec)) names.push_back(it->path());
    }
    std::sort(names.begin(), names.end());
    for (const auto& p : names) {
      bool cut = false;
      std::string tail = Tail(p, kLogTail, &cut);
      logs.push_back(Json{{"name", p.filename().string()},
                          {"size", fs::file_size(p, ec)},
                          {"url", FileUrl(row->sweep, sweep_dir, p)},
                          {"tail", tail},
                          {"truncated", cut}});
    }
  }
  if (!j.contains("curves")) j["curves"] = Json::array();
  j["files"] = files;
  j["logs"] = logs;
  return JsonAnswer(j);
}

// The live curves of a shard, every attempt's (a retry's beside the attempt that failed); none
// once it is done (its final curves are its file's, in ShardDetail).
Answer Api::ShardLive(const std::string& id) {
  if (!IsShardIdText(id)) return ErrorAnswer(400, "a shard id is 1 to 64 lowercase hex digits");
  std::optional<ShardRow> row = reg_.Shard(ShardId{id});
  if (!row) row = reg_.FindShardByPrefix(id);
  if (!row) return ErrorAnswer(404, fmt::format("no shard '{}'", id));
  Json curves = Json::array();
  for (const auto& c : reg_.LiveCurves(row->key.id(), kLivePoints)) {
    curves.push_back(LiveCurveJson(c));
  }
  return JsonAnswer(Json{{"id", row->key.id().hex},
                         {"status", ToString(row->status)},
                         {"curves", curves},
                         {"now", now_()}});
}

// The running shards of a sweep that report live curves (the first kLiveShards in plan order),
// each with its latest attempt's curves and their newest values.
Answer Api::SweepLive(const std::string& name) {
  if (!reg_.Sweep(name)) return ErrorAnswer(404, fmt::format("no sweep '{}'", name));
  Json shards = Json::array();
  for (const auto& s : reg_.LiveShards(name, kLiveShards, kLivePoints)) {
    Json curves = Json::array();
    for (const auto& c : s.curves) curves.push_back(LiveCurveJson(c));
    shards.push_back(Json{{"id", s.id}, {"stage", s.stage}, {"curves", curves}});
  }
  return JsonAnswer(Json{{"shards", shards}, {"now", now_()}});
}

Answer Api::File(const std::string& sweep, const std::string& rel) {
  auto s = reg_.Sweep(sweep);
  if (!s) return ErrorAnswer(404, fmt::format("no sweep '{}'", sweep));
  const fs::path root = fs::path(s->out_dir) / sweep;
  auto p = ResolveUnder(root, rel);
  if (!p) return ErrorAnswer(403, "path outside the sweep's directory");
  std::error_code ec;
  if (!fs::is_regular_file(*p, ec)) return ErrorAnswer(404, "no such file");
  const uintmax_t size = fs::file_size(*p, ec);
  if (ec || size > kMaxFile) return ErrorAnswer(413, "file too large to serve");
  std::ifstream in(*p, std::ios::binary);
  if (!in) return ErrorAnswer(404, "cannot read the file");
  std::ostringstream body;
  body << in.rdbuf();
  return Answer{200, ContentType(*p), body.str()};
}

}  // namespace seedgrid::serve

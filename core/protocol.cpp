#include "core/protocol.h"

#include <cstring>

#include <fmt/format.h>

namespace seedgrid {
namespace {

constexpr size_t kHeader = 4 + 2 + 1;
constexpr uint32_t kMaxFrame = 1u << 30;

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  template <typename T>
  void Pod(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_->append(b, sizeof(T));
  }
  void Str(std::string_view s) {
    Pod<uint32_t>(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }
  void Id(const ShardId& id) { Str(id.hex); }

 private:
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  T Pod() {
    Need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string Str() {
    auto n = Pod<uint32_t>();
    Need(n);
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  ShardId Id() { return ShardId{Str()}; }
  size_t Left() const { return in_.size() - pos_; }
  void End() const {
    if (pos_ != in_.size()) {
      throw ProtocolError(fmt::format("{} trailing bytes in frame", in_.size() - pos_));
    }
  }

 private:
  void Need(size_t n) const {
    if (pos_ + n > in_.size()) throw ProtocolError("truncated frame");
  }
  std::string_view in_;
  size_t pos_ = 0;
};

// Tags: ToWorker 1.., FromWorker 64..
enum Tag : uint8_t {
  kRunShard = 1,
  kShutdown = 2,
  kHello = 64,
  kProgress = 65,
  kShardDone = 66,
  kLivePoints = 67,
};

size_t BeginFrame(std::string* out, Tag tag) {
  size_t start = out->size();
  Writer w(out);
  w.Pod<uint32_t>(0);
  w.Pod<uint16_t>(kProtocolVersion);
  w.Pod<uint8_t>(tag);
  return start;
}

void EndFrame(std::string* out, size_t start) {
  uint32_t len = static_cast<uint32_t>(out->size() - start - kHeader);
  std::memcpy(out->data() + start, &len, 4);
}

std::pair<Tag, std::string_view> OpenFrame(std::string_view frame) {
  if (frame.size() < kHeader) throw ProtocolError("frame shorter than its header");
  uint32_t len;
  uint16_t version;
  std::memcpy(&len, frame.data(), 4);
  std::memcpy(&version, frame.data() + 4, 2);
  if (version != kProtocolVersion) {
    throw ProtocolError(fmt::format(
        "protocol version {} received, this seedgrid speaks {} (mixed seedgrid builds?)", version,
        kProtocolVersion));
  }
  if (len != frame.size() - kHeader) {
    throw ProtocolError(
        fmt::format("frame length {} but {} bytes received", len, frame.size() - kHeader));
  }
  return {static_cast<Tag>(static_cast<uint8_t>(frame[6])), frame.substr(kHeader)};
}

// A shard's .h5 path and artifact directory: when they are <dir>/<id>.h5 and <dir>/<id>.files
// (the store's layout, nearly always), only <dir> travels.
void PutPaths(Writer& w, const ShardId& id, const std::string& path,
              const std::string& artifact_dir) {
  const size_t name = id.hex.size() + 4;  // "/<id>.h5"
  const bool layout = path.size() > name &&
                      path.compare(path.size() - name, name, "/" + id.hex + ".h5") == 0 &&
                      artifact_dir == ArtifactDirFor(path);
  w.Pod<uint8_t>(layout ? 1 : 0);
  if (layout) {
    w.Str(std::string_view(path).substr(0, path.size() - name));
  } else {
    w.Str(path);
    w.Str(artifact_dir);
  }
}

void GetPaths(Reader& r, const ShardId& id, std::string* path, std::string* artifact_dir) {
  const auto layout = r.Pod<uint8_t>();
  if (layout > 1) throw ProtocolError("bad path layout flag");
  *path = r.Str();
  if (layout) {
    *path += "/" + id.hex + ".h5";
    *artifact_dir = ArtifactDirFor(*path);
  } else {
    *artifact_dir = r.Str();
  }
}

// A shard's key: the same layout for a shard and for each of its inputs.
void PutKey(Writer& w, const ShardKey& k) {
  w.Id(k.id());
  w.Str(k.stage());
  w.Str(k.kind());
  w.Pod<uint8_t>(static_cast<uint8_t>(k.role()));
  w.Pod<int64_t>(k.seed());
  w.Str(k.params_json());
  w.Str(k.axes_json());
  w.Pod<uint32_t>(static_cast<uint32_t>(k.needs().size()));
  for (const auto& n : k.needs()) w.Id(n);
}

ShardKey GetKey(Reader& r) {
  ShardKey::Fields f;
  f.id = r.Id();
  f.stage = r.Str();
  f.kind = r.Str();
  const auto role = r.Pod<uint8_t>();
  if (role > static_cast<uint8_t>(ShardRole::kReduce)) throw ProtocolError("bad role value");
  f.role = static_cast<ShardRole>(role);
  f.seed = r.Pod<int64_t>();
  f.params_json = r.Str();
  f.axes_json = r.Str();
  const auto n = r.Pod<uint32_t>();
  if (n > r.Left() / 4) throw ProtocolError(fmt::format("bad needs count {}", n));
  f.needs.resize(n);
  for (auto& id : f.needs) id = r.Id();
  return ShardKey(std::move(f));
}

void Put(Writer& w, const RunShard& m) {
  PutKey(w, m.key);
  w.Str(m.sweep);
  w.Pod<int32_t>(m.attempt);
  w.Pod<uint32_t>(static_cast<uint32_t>(m.inputs.size()));
  for (const auto& in : m.inputs) {
    PutKey(w, in.key);
    PutPaths(w, in.key.id(), in.path, in.artifact_dir);
  }
  PutPaths(w, m.key.id(), m.out_path, m.artifact_dir);
  w.Pod<double>(m.timeout_s);
  w.Pod<int64_t>(m.memory_mb);
  w.Pod<double>(m.grace_s);
  w.Pod<uint8_t>(static_cast<uint8_t>(m.isolation));
  w.Pod<uint32_t>(static_cast<uint32_t>(m.gang.size()));
  for (int32_t r : m.gang) w.Pod<int32_t>(r);
  w.Pod<int32_t>(m.gang_id);
}

RunShard GetRunShard(Reader& r) {
  RunShard m;
  m.key = GetKey(r);
  m.sweep = r.Str();
  m.attempt = r.Pod<int32_t>();
  auto n = r.Pod<uint32_t>();
  m.inputs.resize(n);
  for (auto& in : m.inputs) {
    in.key = GetKey(r);
    GetPaths(r, in.key.id(), &in.path, &in.artifact_dir);
  }
  GetPaths(r, m.key.id(), &m.out_path, &m.artifact_dir);
  m.timeout_s = r.Pod<double>();
  m.memory_mb = r.Pod<int64_t>();
  m.grace_s = r.Pod<double>();
  if (!(m.grace_s >= 0)) throw ProtocolError("bad grace value");
  auto iso = r.Pod<uint8_t>();
  if (iso > static_cast<uint8_t>(Isolation::kInline)) throw ProtocolError("bad isolation value");
  m.isolation = static_cast<Isolation>(iso);
  auto g = r.Pod<uint32_t>();
  m.gang.resize(g);
  for (auto& x : m.gang) x = r.Pod<int32_t>();
  m.gang_id = r.Pod<int32_t>();
  return m;
}

void Put(Writer& w, const ShardDone& m) {
  w.Id(m.id);
  w.Pod<int32_t>(m.attempt);
  w.Pod<uint8_t>(static_cast<uint8_t>(m.outcome));
  w.Pod<int32_t>(m.signal);
  w.Pod<int32_t>(m.exit_code);
  w.Str(m.error);
  w.Pod<uint32_t>(static_cast<uint32_t>(m.metrics.size()));
  for (const auto& [k, v] : m.metrics) {
    w.Str(k);
    w.Pod<double>(v);
  }
  w.Str(m.artifact);
  w.Pod<double>(m.start);
  w.Pod<double>(m.end);
  w.Pod<int64_t>(m.peak_rss_kb);
}

ShardDone GetShardDone(Reader& r) {
  ShardDone m;
  m.id = r.Id();
  m.attempt = r.Pod<int32_t>();
  auto o = r.Pod<uint8_t>();
  if (o > static_cast<uint8_t>(Outcome::kPreempted)) throw ProtocolError("bad outcome value");
  m.outcome = static_cast<Outcome>(o);
  m.signal = r.Pod<int32_t>();
  m.exit_code = r.Pod<int32_t>();
  m.error = r.Str();
  auto n = r.Pod<uint32_t>();
  m.metrics.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    auto k = r.Str();
    m.metrics.emplace_back(std::move(k), r.Pod<double>());
  }
  m.artifact = r.Str();
  m.start = r.Pod<double>();
  m.end = r.Pod<double>();
  m.peak_rss_kb = r.Pod<int64_t>();
  return m;
}

void Put(Writer& w, const LivePoints& m) {
  w.Id(m.id);
  w.Pod<int32_t>(m.attempt);
  w.Pod<uint32_t>(static_cast<uint32_t>(m.curves.size()));
  for (const auto& c : m.curves) {
    w.Str(c.name);
    w.Pod<uint32_t>(static_cast<uint32_t>(c.steps.size()));
    for (size_t i = 0; i < c.steps.size(); ++i) {
      w.Pod<int64_t>(c.steps[i]);
      w.Pod<double>(i < c.values.size() ? c.values[i] : 0.0);
    }
  }
}

LivePoints GetLivePoints(Reader& r) {
  LivePoints m;
  m.id = r.Id();
  m.attempt = r.Pod<int32_t>();
  const auto n = r.Pod<uint32_t>();
  if (n > r.Left() / 8) throw ProtocolError(fmt::format("bad curve count {}", n));
  m.curves.resize(n);
  for (auto& c : m.curves) {
    c.name = r.Str();
    const auto k = r.Pod<uint32_t>();
    if (k > r.Left() / 16) throw ProtocolError(fmt::format("bad point count {}", k));
    c.steps.resize(k);
    c.values.resize(k);
    for (uint32_t i = 0; i < k; ++i) {
      c.steps[i] = r.Pod<int64_t>();
      c.values[i] = r.Pod<double>();
    }
  }
  return m;
}

}  // namespace

std::string ArtifactDirFor(std::string_view h5_path) {
  if (h5_path.size() >= 3 && h5_path.substr(h5_path.size() - 3) == ".h5") h5_path.remove_suffix(3);
  return std::string(h5_path) + ".files";
}

void Encode(const RunShard& msg, std::string* out) {
  Writer w(out);
  size_t s = BeginFrame(out, kRunShard);
  Put(w, msg);
  EndFrame(out, s);
}

void Encode(const ToWorker& msg, std::string* out) {
  Writer w(out);
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, RunShard>) {
          Encode(m, out);
        } else {
          size_t s = BeginFrame(out, kShutdown);
          w.Pod<int32_t>(m.exit_code);
          EndFrame(out, s);
        }
      },
      msg);
}

void Encode(const FromWorker& msg, std::string* out) {
  Writer w(out);
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>) {
          size_t s = BeginFrame(out, kHello);
          w.Str(m.host);
          w.Pod<int32_t>(m.local_rank);
          w.Str(m.gpu);
          w.Pod<int64_t>(m.pid);
          w.Pod<int32_t>(m.threads);
          w.Str(m.slurm_job);
          EndFrame(out, s);
        } else if constexpr (std::is_same_v<T, Progress>) {
          size_t s = BeginFrame(out, kProgress);
          w.Id(m.id);
          w.Pod<int32_t>(m.attempt);
          w.Pod<int64_t>(m.step);
          w.Pod<int64_t>(m.total);
          EndFrame(out, s);
        } else if constexpr (std::is_same_v<T, LivePoints>) {
          size_t s = BeginFrame(out, kLivePoints);
          Put(w, m);
          EndFrame(out, s);
        } else {
          size_t s = BeginFrame(out, kShardDone);
          Put(w, m);
          EndFrame(out, s);
        }
      },
      msg);
}

ToWorker DecodeToWorker(std::string_view frame) {
  auto [tag, payload] = OpenFrame(frame);
  Reader r(payload);
  ToWorker out;
  switch (tag) {
    case kRunShard: out = GetRunShard(r); break;
    case kShutdown: out = Shutdown{r.Pod<int32_t>()}; break;
    default: throw ProtocolError(fmt::format("unexpected message tag {} for a worker", int(tag)));
  }
  r.End();
  return out;
}

FromWorker DecodeFromWorker(std::string_view frame) {
  auto [tag, payload] = OpenFrame(frame);
  Reader r(payload);
  FromWorker out;
  switch (tag) {
    case kHello: {
      Hello h;
      h.host = r.Str();
      h.local_rank = r.Pod<int32_t>();
      h.gpu = r.Str();
      h.pid = r.Pod<int64_t>();
      h.threads = r.Pod<int32_t>();
      h.slurm_job = r.Str();
      out = std::move(h);
      break;
    }
    case kProgress: {
      Progress p;
      p.id = r.Id();
      p.attempt = r.Pod<int32_t>();
      p.step = r.Pod<int64_t>();
      p.total = r.Pod<int64_t>();
      out = std::move(p);
      break;
    }
    case kShardDone: out = GetShardDone(r); break;
    case kLivePoints: out = GetLivePoints(r); break;
    default:
      throw ProtocolError(fmt::format("unexpected message tag {} for the coordinator", int(tag)));
  }
  r.End();
  return out;
}

std::optional<size_t> WholeFrameSize(std::string_view buf) {
  if (buf.size() < kHeader) return std::nullopt;
  uint32_t len;
  std::memcpy(&len, buf.data(), 4);
  if (len > kMaxFrame) throw ProtocolError(fmt::format("impossible frame length {}", len));
  if (buf.size() < kHeader + len) return std::nullopt;
  return kHeader + len;
}

std::string_view MessageName(const ToWorker& msg) {
  return std::holds_alternative<RunShard>(msg) ? "RunShard" : "Shutdown";
}

std::string_view MessageName(const FromWorker& msg) {
  switch (msg.index()) {
    case 0: return "Hello";
    case 1: return "Progress";
    case 2: return "ShardDone";
    default: return "LivePoints";
  }
}

}  // namespace seedgrid

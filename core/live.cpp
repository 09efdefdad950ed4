#include "core/live.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <system_error>

#include "core/types.h"

namespace seedgrid {
namespace {

std::atomic<LiveSink*> g_sink{nullptr};

}  // namespace

void LivePoint(std::string_view name, int64_t step, double value) {
  if (LiveSink* s = g_sink.load(std::memory_order_acquire)) s->Point(name, step, value);
}

void LiveFile(const std::string& path) {
  if (LiveSink* s = g_sink.load(std::memory_order_acquire)) s->File(path);
}

ScopedLiveSink::ScopedLiveSink(LiveSink* sink) : previous_(g_sink.exchange(sink)) {}

ScopedLiveSink::~ScopedLiveSink() { g_sink.store(previous_); }

void LiveCoalescer::Add(std::string_view name, int64_t step, double value) {
  if (!std::isfinite(value) || name.empty()) return;
  LiveCurve* curve = nullptr;
  for (auto& c : curves_) {
    if (c.name == name) curve = &c;
  }
  if (!curve) {
    bool known = false;
    for (const auto& n : names_) known = known || n == name;
    if (!known) {
      if (names_.size() >= options_.max_curves) return;
      names_.emplace_back(name);
    }
    curve = &curves_.emplace_back(LiveCurve{std::string(name), {}, {}});
  }
  if (curve->steps.size() >= options_.max_points) {
    // Every other point dropped, the newest kept: the curve stays evenly thinned.
    const size_t n = curve->steps.size();
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2, ++k) {
      curve->steps[k] = curve->steps[i];
      curve->values[k] = curve->values[i];
    }
    curve->steps[k] = curve->steps[n - 1];
    curve->values[k] = curve->values[n - 1];
    ++k;
    held_ -= n - k;
    curve->steps.resize(k);
    curve->values.resize(k);
  }
  curve->steps.push_back(step);
  curve->values.push_back(value);
  ++held_;
}

std::optional<std::vector<LiveCurve>> LiveCoalescer::Take(double now) {
  if (held_ == 0) return std::nullopt;
  if (last_take_ && now - *last_take_ < options_.interval_s) return std::nullopt;
  last_take_ = now;
  return Flush();
}

std::optional<std::vector<LiveCurve>> LiveCoalescer::Flush() {
  if (held_ == 0) return std::nullopt;
  std::vector<LiveCurve> out;
  for (auto& c : curves_) {
    if (!c.steps.empty()) out.push_back(std::move(c));
  }
  curves_.clear();
  held_ = 0;
  return out;
}

void LiveCoalescer::Reset() {
  curves_.clear();
  names_.clear();
  held_ = 0;
  last_take_.reset();
}

void JsonlTail::ReadMore(size_t max_bytes) {
  if (!fd_) {
    fd_ = Fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) return;  // not written yet: nothing new
  }
  char tmp[65536];
  size_t got = 0;
  while (got < max_bytes) {
    const ssize_t r = ::pread(fd_.get(), tmp, sizeof tmp, static_cast<off_t>(offset_));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    buf_.append(tmp, static_cast<size_t>(r));
    offset_ += static_cast<uint64_t>(r);
    got += static_cast<size_t>(r);
  }
}

bool JsonlTail::ParseLine(std::string_view line, std::string* name, int64_t* step, double* value) {
  const Json j = Json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  const auto n = j.find("name"), s = j.find("step"), v = j.find("value");
  if (n == j.end() || s == j.end() || v == j.end() || !n->is_string() || !s->is_number_integer() ||
      !v->is_number()) {
    return false;
  }
  *name = n->get<std::string>();
  *step = s->get<int64_t>();
  *value = v->get<double>();
  return std::isfinite(*value);
}

}  // namespace seedgrid

// The JSON API of `seedgrid serve` (docs/serve.md documents every route), apart from HTTP:
// a request is a decoded path and its query parameters, an answer a status, a content type
// and a body. The page (assets/app.js) uses nothing but these routes, and the unit tests
// (tests/serve/) call them on a registry made by a real sweep, without a socket.
//
// Threading: an Api reads through one Registry connection, which is not thread-safe; the
// server calls it under one mutex. Every answer is bounded: counts are aggregated in SQL,
// shard lists are pages (keyset, by seq), log tails and files have size limits; so a sweep of
// 10^6 shards answers as quickly as one of ten (BENCHMARKS.md §8).
//
// Files: only under a sweep's own directory, <out>/<sweep>/ (shard files, per-attempt logs
// <stage>/<id>.logs/attempt-<n>.out|.err, the report); a path that could leave it is refused
// with 403 (safety.h).
#pragma once

#include <functional>
#include <map>
#include <string>

#include "coordinator/serve/summary_cache.h"
#include "core/registry.h"

namespace seedgrid::serve {

struct Answer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class Api {
 public:
  // `now`: unix seconds (injected so tests can pin throughput windows). `cache`: aggregates
  // kept fresh by a Refresher (summary_cache.h); without one, every summary is computed.
  explicit Api(Registry& reg, std::function<double()> now = {},
               const SummaryCache* cache = nullptr);

  // GET `path` (percent-decoded) with `query`; every route of docs/serve.md, /files/ included.
  Answer Get(const std::string& path, const std::map<std::string, std::string>& query);

  // Seconds of state changes that make the throughput (done shards per second over them).
  static constexpr double kThroughputWindow = 60;
  // Most bytes of a log a shard's answer carries (its tail).
  static constexpr size_t kLogTail = 16 * 1024;
  // Largest file /files/ serves.
  static constexpr uintmax_t kMaxFile = 64ull << 20;
  // Live curves (live_points): points per curve in an answer, and running shards a sweep's
  // answer shows (the first in plan order that have points).
  static constexpr size_t kLivePoints = 300;
  static constexpr int kLiveShards = 8;

 private:
  Answer Version();
  Answer SweepList();
  Answer SweepDetail(const std::string& name);
  Answer ShardList(const std::string& name, const std::map<std::string, std::string>& query);
  Answer ShardDetail(const std::string& id);
  Answer ShardLive(const std::string& id);
  Answer SweepLive(const std::string& name);
  Answer File(const std::string& sweep, const std::string& rel);
  Json SweepSummary(const SweepRow& s, const SweepAggregates& a);
  SweepAggregates Aggregates(const std::string& sweep);

  Registry& reg_;
  std::function<double()> now_;
  const SummaryCache* cache_;
};

// An answer of `status` with {"error": message}.
Answer ErrorAnswer(int status, const std::string& message);

}  // namespace seedgrid::serve

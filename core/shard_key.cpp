#include "core/shard_key.h"

#include <mutex>

#include <fmt/format.h>

namespace seedgrid {
namespace {

// The dump that is hashed, stored and sent (core/spec/shard_id.h's CanonicalJson).
std::string Canonical(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

const Json& ParseOnce(std::once_flag& once, Json& slot, const std::string& text) {
  std::call_once(once, [&] { slot = Json::parse(text); });
  return slot;
}

}  // namespace

std::string_view ToString(ShardRole r) {
  switch (r) {
    case ShardRole::kSingle: return "single";
    case ShardRole::kMap: return "map";
    case ShardRole::kReduce: return "reduce";
  }
  return "unknown";
}

ShardRole ParseShardRole(std::string_view s) {
  for (auto r : {ShardRole::kSingle, ShardRole::kMap, ShardRole::kReduce}) {
    if (ToString(r) == s) return r;
  }
  throw std::invalid_argument(fmt::format("unknown shard role '{}' (single, map or reduce)", s));
}

ShardKey::ShardKey() {
  static const std::shared_ptr<const Data> empty = [] {
    auto d = std::make_shared<Data>();
    d->f.params_json = d->f.axes_json = "{}";
    return d;
  }();
  d_ = empty;
}

ShardKey::ShardKey(Fields f) {
  auto d = std::make_shared<Data>();
  d->f = std::move(f);
  if (d->f.params_json.empty()) d->f.params_json = "{}";
  if (d->f.axes_json.empty()) d->f.axes_json = "{}";
  d_ = std::move(d);
}

ShardKey::ShardKey(Fields f, Json params, Json axes) {
  auto d = std::make_shared<Data>();
  d->f = std::move(f);
  if (d->f.params_json.empty()) d->f.params_json = Canonical(params);
  if (d->f.axes_json.empty()) d->f.axes_json = Canonical(axes);
  d->params = std::move(params);
  d->axes = std::move(axes);
  std::call_once(d->params_once, [] {});  // already parsed
  std::call_once(d->axes_once, [] {});
  d_ = std::move(d);
}

const Json& ShardKey::params() const {
  return ParseOnce(d_->params_once, d_->params, d_->f.params_json);
}

const Json& ShardKey::axes() const { return ParseOnce(d_->axes_once, d_->axes, d_->f.axes_json); }

std::string ShardKey::needs_json() const { return NeedsJson(d_->f.needs); }

bool operator==(const ShardKey& a, const ShardKey& b) {
  if (a.d_ == b.d_) return true;
  const auto& x = a.d_->f;
  const auto& y = b.d_->f;
  return x.id == y.id && x.stage == y.stage && x.kind == y.kind && x.seed == y.seed &&
         x.role == y.role && x.params_json == y.params_json && x.axes_json == y.axes_json &&
         x.needs == y.needs;
}

std::string NeedsJson(const std::vector<ShardId>& needs) {
  std::string j = "[";
  for (const auto& n : needs) j += (j.size() > 1 ? ",\"" : "\"") + n.hex + "\"";
  return j + "]";
}

}  // namespace seedgrid

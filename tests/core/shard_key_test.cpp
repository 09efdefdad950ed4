// The shard key (core/shard_key.h): one value from the plan to the registry, the wire and the
// shard file, every field (role and needs included) surviving each round trip.
#include "core/shard_key.h"

#include <unistd.h>

#include <filesystem>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/protocol.h"
#include "core/registry.h"
#include "core/store.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr ShardRole kRoles[] = {ShardRole::kSingle, ShardRole::kMap, ShardRole::kReduce};

ShardKey Sample(ShardRole role, int i = 0) {
  return ShardKey({.id = ShardId{fmt::format("{:016x}", 0xabc0 + i)},
                   .stage = "steer",
                   .kind = "lora_steer",
                   .seed = -7 + i,
                   .role = role,
                   .needs = {ShardId{"00000000000000aa"}, ShardId{"00000000000000bb"}}},
                  Json{{"lora", {{"rank", 4}}}, {"name", "é"}, {"shard_index", i}},
                  Json{{"lora.rank", 4}});
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "seedgrid-key-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

TEST(ShardRole, TextRoundTripsAndUnknownTextIsRefused) {
  EXPECT_EQ(ToString(ShardRole::kSingle), "single");
  EXPECT_EQ(ToString(ShardRole::kMap), "map");
  EXPECT_EQ(ToString(ShardRole::kReduce), "reduce");
  for (ShardRole r : kRoles) EXPECT_EQ(ParseShardRole(ToString(r)), r);
  for (const char* bad : {"", "Map", "reducer", "single "}) {
    try {
      ParseShardRole(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(fmt::format("unknown shard role '{}'", bad)));
    }
  }
}

TEST(ShardKey, FromJsonDumpsCanonicallyAndFromTextParsesOnDemand) {
  const ShardKey k = Sample(ShardRole::kMap);
  EXPECT_EQ(k.params_json(), R"({"lora":{"rank":4},"name":"é","shard_index":0})");
  EXPECT_EQ(k.axes_json(), R"({"lora.rank":4})");
  EXPECT_EQ(k.needs_json(), R"(["00000000000000aa","00000000000000bb"])");
  const ShardKey text(k.fields());  // the text alone, as the registry or the wire gives it
  EXPECT_EQ(text, k);
  EXPECT_EQ(text.params(), k.params());
  EXPECT_EQ(text.axes()["lora.rank"], 4);
  // Parsed once, shared by every copy: the same object each time, from any thread.
  const ShardKey copy = text;
  std::vector<const Json*> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { seen[t] = &copy.params(); });
  for (auto& t : threads) t.join();
  for (const Json* p : seen) EXPECT_EQ(p, &text.params());
}

TEST(ShardKey, EmptyKeyAndEmptyTextReadAsEmptyObjects) {
  const ShardKey none;
  EXPECT_TRUE(none.id().hex.empty());
  EXPECT_EQ(none.params(), Json::object());
  EXPECT_EQ(none.axes_json(), "{}");
  EXPECT_EQ(none.role(), ShardRole::kSingle);
  EXPECT_EQ(none.needs_json(), "[]");
  EXPECT_EQ(ShardKey({.id = ShardId{"x"}}).params_json(), "{}");
  EXPECT_EQ(ShardKey(), ShardKey(ShardKey::Fields{}));
}

TEST(ShardKey, EqualityIsByEveryField) {
  const ShardKey k = Sample(ShardRole::kReduce);
  auto differs = [&](auto change) {
    ShardKey::Fields f = k.fields();
    change(f);
    return !(ShardKey(f) == k);
  };
  EXPECT_FALSE(differs([](ShardKey::Fields&) {}));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.id.hex += "0"; }));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.stage = "other"; }));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.kind = "other"; }));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.seed += 1; }));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.role = ShardRole::kMap; }));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.params_json = "{}"; }));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.axes_json = "{}"; }));
  EXPECT_TRUE(differs([](ShardKey::Fields& f) { f.needs.pop_back(); }));
}

TEST(ShardKey, RoundTripsThroughTheProtocolWithItsInputs) {
  for (ShardRole role : kRoles) {
    RunShard m;
    m.key = Sample(role);
    m.sweep = "demo";
    m.attempt = 5;
    for (ShardRole in_role : kRoles) {
      m.inputs.push_back({Sample(in_role, 1 + static_cast<int>(in_role)),
                          "/r/in" + std::string(ToString(in_role)) + ".h5", "/r/files"});
    }
    m.out_path = "/r/" + m.key.id().hex + ".h5";
    m.artifact_dir = ArtifactDirFor(m.out_path);
    std::string frame;
    Encode(m, &frame);
    const RunShard got = std::get<RunShard>(DecodeToWorker(frame));
    EXPECT_EQ(got, m);
    EXPECT_EQ(got.key.role(), role);
    EXPECT_EQ(got.attempt, 5);
    ASSERT_EQ(got.inputs.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(got.inputs[i].key.role(), kRoles[i]);
      EXPECT_EQ(got.inputs[i].key.needs(), m.inputs[i].key.needs());
      EXPECT_EQ(got.inputs[i].key.params(), m.inputs[i].key.params());
    }
  }
}

TEST(ShardKey, AnImpossibleRoleByteOnTheWireIsAProtocolError) {
  RunShard m;
  m.key = Sample(ShardRole::kMap);
  std::string frame;
  Encode(m, &frame);
  // Header (7 bytes), then the id and the stage and kind strings (u32 length + text), then the
  // role byte.
  const size_t role_at = 7 + (4 + 16) + (4 + m.key.stage().size()) + (4 + m.key.kind().size());
  ASSERT_EQ(frame[role_at], static_cast<char>(ShardRole::kMap));
  frame[role_at] = 3;
  try {
    DecodeToWorker(frame);
    FAIL() << "decoded role 3";
  } catch (const ProtocolError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad role value"));
  }
}

TEST(ShardKey, RoundTripsThroughTheRegistryWithItsRole) {
  TempDir dir;
  const std::string path = dir / "registry.sqlite";
  std::vector<ShardKey> keys;
  // 40: one bulk statement (32 rows) and single-row ones.
  for (int i = 0; i < 40; ++i) keys.push_back(Sample(kRoles[i % 3], i));
  {
    Registry reg(path, Registry::Mode::kWrite);
    std::vector<ShardSpecRow> rows;
    for (const auto& k : keys) rows.push_back({k, "demo", 0});
    reg.InsertShardSpecs(rows);
    const auto got = reg.Shards("demo");
    ASSERT_EQ(got.size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(got[i].key, keys[i]) << i;
      EXPECT_EQ(got[i].key.role(), kRoles[i % 3]);
      EXPECT_EQ(got[i].key.params(), keys[i].params());
    }
    ASSERT_TRUE(reg.Shard(keys[2].id()));
    EXPECT_EQ(reg.Shard(keys[2].id())->key, keys[2]);
  }
  // Stored as text a person can query.
  SQLite::Database db(path, SQLite::OPEN_READWRITE);
  EXPECT_EQ(db.execAndGet("SELECT role FROM shard_specs WHERE id = '000000000000abc2'").getString(),
            "reduce");
  // And only ShardRole's text: the schema refuses anything else.
  try {
    db.exec("UPDATE shard_specs SET role = 'Reduce' WHERE id = '000000000000abc2'");
    FAIL() << "stored role 'Reduce'";
  } catch (const SQLite::Exception& e) {
    EXPECT_THAT(e.what(), HasSubstr("shard_specs.role must be single, map or reduce"));
  }
}

TEST(ShardKey, RoundTripsThroughTheShardFileHeader) {
  TempDir dir;
  for (ShardRole role : kRoles) {
    const std::string path = dir / fmt::format("{}.h5", ToString(role));
    const ShardFileHeader h{Sample(role), "demo", 4};
    {
      H5Writer w(path);
      WriteShardAttributes(w, h, {{"loss", 0.5}});
      w.Close();
    }
    auto info = ReadShardFileInfo(path);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->header.key, h.key);
    EXPECT_EQ(info->header.key.role(), role);
    EXPECT_EQ(info->header.sweep, "demo");
    EXPECT_EQ(info->header.attempt, 4);
    H5Reader r(path);
    EXPECT_EQ(r.AttrString("/", "seedgrid_role"), std::string(ToString(role)));  // as before
  }
  // A file whose role attribute is none of ShardRole's does not read as a shard file.
  const std::string bad = dir / "bad.h5";
  {
    H5Writer w(bad);
    WriteShardAttributes(w, ShardFileHeader{Sample(ShardRole::kMap), "demo", 1}, {});
    w.Attr("/", "seedgrid_role", std::string("mapper"));
    w.Close();
  }
  EXPECT_FALSE(ReadShardFileInfo(bad));
}

}  // namespace
}  // namespace seedgrid

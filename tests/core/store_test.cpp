#include "core/store.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/sysutil.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "seedgrid-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  static ShardFileHeader Header(const std::string& hex, const std::string& stage = "base") {
    ShardFileHeader h;
    h.key = ShardKey({.id = ShardId{hex},
                      .stage = stage,
                      .kind = "pretrain",
                      .seed = -42,
                      .role = ShardRole::kReduce,
                      .needs = {ShardId{"00000000000000aa"}}},
                     Json{{"lr", 0.001}, {"layers", 2}}, Json{{"lr", 0.001}});
    h.sweep = "demo";
    h.attempt = 3;
    return h;
  }

  // A complete, published shard file with one dataset.
  std::string WriteShard(const std::string& out, const std::string& stage, const std::string& hex,
                         const std::vector<double>& values) {
    std::string final_path = ShardFilePath(out, "demo", stage, ShardId{hex});
    std::string temp = TempPathFor(final_path, 1);
    H5Writer w(temp);
    w.Write("eval/values", values);
    ShardFileHeader h = Header(hex, stage);
    WriteShardAttributes(w, h, {{"loss", values.at(0)}});
    w.Close();
    PublishFile(temp, final_path);
    return final_path;
  }

  std::string dir_;
};

TEST_F(StoreTest, WritesAndReadsEveryDtypeAndShape) {
  std::vector<float> f = {1.5f, -2.25f, 3.0f};
  std::vector<double> d(2 * 3);
  for (size_t i = 0; i < d.size(); ++i) d[i] = 0.1 * static_cast<double>(i);
  std::vector<int32_t> i32(2 * 2 * 2);
  for (size_t i = 0; i < i32.size(); ++i) i32[i] = static_cast<int32_t>(i) - 4;
  int64_t scalar = int64_t{1} << 40;
  std::vector<uint8_t> u8 = {0, 7, 255};
  {
    H5Writer w(P("a.h5"));
    w.Write("f", f);
    w.Write("grid/d", d.data(), Shape{2, 3});
    w.Write("grid/deep/i32", i32.data(), Shape{2, 2, 2});
    w.Write("count", &scalar, Shape{});
    w.Write("u8", u8);
    w.Write<float>("empty", nullptr, Shape{0, 4});
    w.Close();
  }
  H5Reader r(P("a.h5"));
  Shape s;
  EXPECT_EQ(r.Read<float>("f", &s), f);
  EXPECT_EQ(s, Shape{3});
  EXPECT_EQ(r.Read<double>("grid/d", &s), d);
  EXPECT_EQ(s, (Shape{2, 3}));
  EXPECT_EQ(r.Read<int32_t>("/grid/deep/i32", &s), i32);
  EXPECT_EQ(s, (Shape{2, 2, 2}));
  EXPECT_EQ(r.Read<int64_t>("count", &s), std::vector<int64_t>{scalar});
  EXPECT_EQ(s, Shape{});
  EXPECT_EQ(r.Read<uint8_t>("u8"), u8);
  EXPECT_TRUE(r.Read<float>("empty", &s).empty());
  EXPECT_EQ(s, (Shape{0, 4}));
  EXPECT_EQ(r.DatasetShape("grid/deep/i32"), (Shape{2, 2, 2}));
  // HDF5 converts between numeric types on read.
  EXPECT_EQ(r.Read<double>("f"), (std::vector<double>{1.5, -2.25, 3.0}));
  EXPECT_EQ(r.Read<int64_t>("u8"), (std::vector<int64_t>{0, 7, 255}));
  EXPECT_EQ(r.Read<double>("grid/deep/i32")[0], -4.0);
}

TEST_F(StoreTest, LargeDatasetsRoundTrip) {
  std::vector<double> big(300 * 1000);  // 2.4 MB: chunked and compressed
  for (size_t i = 0; i < big.size(); ++i) big[i] = std::sin(static_cast<double>(i));
  {
    H5Writer w(P("big.h5"));
    w.Write("x", big.data(), Shape{300, 1000});
    w.Close();
  }
  H5Reader r(P("big.h5"));
  EXPECT_EQ(r.Read<double>("x"), big);
}

TEST_F(StoreTest, Strings) {
  std::vector<std::string> v = {"alpha", "", "ünïcødé ✓", std::string(300, 'x')};
  {
    H5Writer w(P("s.h5"));
    w.WriteStrings("names/all", v);
    w.WriteStrings("none", {});
    w.Close();
  }
  H5Reader r(P("s.h5"));
  EXPECT_EQ(r.ReadStrings("names/all"), v);
  EXPECT_TRUE(r.ReadStrings("none").empty());
  EXPECT_THROW(r.Read<double>("names/all"), StoreError);
}

TEST_F(StoreTest, AttributesOnRootGroupsAndDatasets) {
  {
    H5Writer w(P("attr.h5"));
    w.Write("data/x", std::vector<int32_t>{1, 2});
    w.Attr("/", "name", std::string("résumé"));
    w.Attr("/", "pi", 3.25);
    w.Attr("/", "big", int64_t{-9000000000});
    w.Attr("data/x", "unit", std::string("nats"));
    w.Attr("made/by/attr", "n", int64_t{5});  // groups are created
    w.Attr("/", "pi", 6.5);                   // overwrite
    w.Close();
  }
  H5Reader r(P("attr.h5"));
  EXPECT_EQ(r.AttrString("/", "name"), "résumé");
  EXPECT_EQ(r.AttrDouble("/", "pi"), 6.5);
  EXPECT_EQ(r.AttrInt("/", "big"), -9000000000);
  EXPECT_EQ(r.AttrDouble("/", "big"), -9e9);  // integers read as double
  EXPECT_EQ(r.AttrString("data/x", "unit"), "nats");
  EXPECT_EQ(r.AttrInt("made/by/attr", "n"), 5);
  EXPECT_EQ(r.AttrString("/", "absent"), std::nullopt);
  EXPECT_EQ(r.AttrDouble("/", "absent"), std::nullopt);
  EXPECT_EQ(r.AttrInt("data/x", "absent"), std::nullopt);
  EXPECT_THROW(r.AttrInt("/", "pi"), StoreError);
  EXPECT_THROW(r.AttrString("/", "pi"), StoreError);
  EXPECT_THROW(r.AttrString("no/such/object", "x"), StoreError);
}

TEST_F(StoreTest, GroupsAreCreatedAndListedSorted) {
  {
    H5Writer w(P("g.h5"));
    w.Write("b/z", std::vector<float>{1});
    w.Write("b/a", std::vector<float>{2});
    w.Write("a/b/c", std::vector<float>{3});
    w.Write("c", std::vector<float>{4});
    w.Close();
  }
  H5Reader r(P("g.h5"));
  EXPECT_THAT(r.List("/"), ElementsAre("a", "b", "c"));
  EXPECT_THAT(r.List("b"), ElementsAre("a", "z"));
  EXPECT_THAT(r.List("a/b"), ElementsAre("c"));
  EXPECT_TRUE(r.Has("a/b/c"));
  EXPECT_TRUE(r.Has("/a/b"));
  EXPECT_TRUE(r.Has("/"));
  EXPECT_FALSE(r.Has("a/x"));
  EXPECT_FALSE(r.Has("x/y/z"));
  EXPECT_FALSE(r.Has("c/under_a_dataset"));
  EXPECT_THROW(r.List("nope"), StoreError);
}

TEST_F(StoreTest, ErrorsNameFileAndObjectAndPrintNothing) {
  testing::internal::CaptureStderr();
  H5Writer w(P("e.h5"));
  w.Write("x", std::vector<float>{1});
  try {
    w.Write("x", std::vector<float>{2});
    FAIL() << "duplicate dataset accepted";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(P("e.h5")));
    EXPECT_THAT(e.what(), HasSubstr("'x'"));
    EXPECT_THAT(e.what(), HasSubstr("cannot create dataset"));
  }
  try {
    H5Reader r(P("missing.h5"));
    FAIL() << "opened a missing file";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(P("missing.h5")));
    EXPECT_THAT(e.what(), HasSubstr("No such file"));
  }
  EXPECT_THROW(w.Write<float>("neg", nullptr, Shape{-1}), StoreError);
  w.Close();
  EXPECT_THROW(w.Write("after_close", std::vector<float>{1}), StoreError);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST_F(StoreTest, ShardAttributesRoundTrip) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  {
    H5Writer w(P("shard.h5"));
    WriteShardAttributes(w, Header("0123456789abcdef"),
                         {{"loss", 0.125}, {"acc", 0.75}, {"diverged", nan}});
    w.Close();
  }
  auto info = ReadShardFileInfo(P("shard.h5"));
  ASSERT_TRUE(info);
  const ShardFileHeader& h = info->header;
  EXPECT_EQ(h.key.id().hex, "0123456789abcdef");
  EXPECT_EQ(h.sweep, "demo");
  EXPECT_EQ(h.key.stage(), "base");
  EXPECT_EQ(h.key.kind(), "pretrain");
  EXPECT_EQ(h.key.role(), ShardRole::kReduce);
  EXPECT_EQ(h.key.seed(), -42);
  EXPECT_EQ(h.attempt, 3);
  EXPECT_EQ(h.key.params(), (Json{{"lr", 0.001}, {"layers", 2}}));
  EXPECT_EQ(h.key.axes(), (Json{{"lr", 0.001}}));
  EXPECT_EQ(h.key.needs(), std::vector<ShardId>{ShardId{"00000000000000aa"}});
  EXPECT_EQ(h.key, Header("0123456789abcdef").key);  // the whole key, as written
  EXPECT_EQ(info->versions.value("seedgrid", ""), std::string(SeedgridVersion()));
  EXPECT_TRUE(info->versions.contains("hdf5"));
  ASSERT_EQ(info->metrics.size(), 3u);  // sorted by name
  EXPECT_EQ(info->metrics[0], (std::pair<std::string, double>{"acc", 0.75}));
  EXPECT_EQ(info->metrics[1].first, "diverged");
  EXPECT_TRUE(std::isnan(info->metrics[1].second));
  EXPECT_EQ(info->metrics[2], (std::pair<std::string, double>{"loss", 0.125}));

  H5Reader r(P("shard.h5"));
  EXPECT_EQ(r.AttrDouble("/", "metric.loss"), 0.125);
  EXPECT_EQ(r.AttrInt("/", "seedgrid_seed"), -42);
  EXPECT_EQ(Json::parse(*r.AttrString("/", "seedgrid_metrics")),
            (Json{{"acc", 0.75}, {"loss", 0.125}, {"diverged", nullptr}}));

  H5Writer dup(P("dup.h5"));
  EXPECT_THROW(WriteShardAttributes(dup, Header("0123456789abcdef"), {{"a", 1}, {"a", 2}}),
               StoreError);
}

TEST_F(StoreTest, PathsFollowTheLayout) {
  EXPECT_EQ(ShardFilePath("runs", "demo", "base", ShardId{"00ff"}), "runs/demo/base/00ff.h5");
  EXPECT_EQ(TempPathFor("runs/demo/base/00ff.h5", 2),
            "runs/demo/base/00ff.h5.tmp-" + Hostname() + "-" + std::to_string(::getpid()) + "-a2");
}

TEST_F(StoreTest, PublishLeavesOnlyTheCompleteFile) {
  const std::string out = P("runs");
  std::string final_path = WriteShard(out, "base", "1111111111111111", {0.5, 1.5});
  EXPECT_EQ(final_path, out + "/demo/base/1111111111111111.h5");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(fs::path(final_path).parent_path())) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_THAT(names, ElementsAre("1111111111111111.h5"));
  auto info = ReadShardFileInfo(final_path);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->header.key.id().hex, "1111111111111111");
  EXPECT_EQ(H5Reader(final_path).Read<double>("eval/values"), (std::vector<double>{0.5, 1.5}));

  // Publishing into a directory chain that does not exist yet creates it.
  const std::string temp = P("elsewhere.tmp");
  {
    H5Writer w(temp);
    w.Write("x", std::vector<int64_t>{1});
    w.Close();
  }
  const std::string deep = P("new/a/b/c.h5");
  PublishFile(temp, deep);
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(H5Reader(deep).Read<int64_t>("x"), std::vector<int64_t>{1});
  EXPECT_THROW(PublishFile(P("no-such.tmp"), P("x.h5")), StoreError);
}

TEST_F(StoreTest, ReadShardFileInfoRejectsMissingTruncatedAndForeignFiles) {
  EXPECT_FALSE(ReadShardFileInfo(P("missing.h5")));
  EXPECT_FALSE(ReadShardFileInfo(dir_));  // a directory

  std::ofstream(P("text.h5")) << "not an HDF5 file at all\n";
  EXPECT_FALSE(ReadShardFileInfo(P("text.h5")));

  {
    H5Writer w(P("plain.h5"));  // valid HDF5 without seedgrid attributes
    w.Write("x", std::vector<float>{1});
    w.Close();
  }
  EXPECT_FALSE(ReadShardFileInfo(P("plain.h5")));

  {
    H5Writer w(P("partial.h5"));  // has an id but lacks the rest
    w.Attr("/", "seedgrid_shard_id", std::string("1111111111111111"));
    w.Close();
  }
  EXPECT_FALSE(ReadShardFileInfo(P("partial.h5")));

  std::vector<double> big(100000, 1.0);
  const std::string good = WriteShard(P("runs"), "base", "2222222222222222", big);
  ASSERT_TRUE(ReadShardFileInfo(good));
  for (double frac : {0.5, 0.99}) {
    const std::string cut = P("cut.h5");
    fs::copy_file(good, cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, static_cast<uintmax_t>(static_cast<double>(fs::file_size(good)) * frac));
    EXPECT_FALSE(ReadShardFileInfo(cut)) << "truncated to " << frac;
  }
  fs::resize_file(P("text.h5"), 0);
  EXPECT_FALSE(ReadShardFileInfo(P("text.h5")));
}

TEST_F(StoreTest, ResultsIndexLinksResolveFromAnyDirectory) {
  const std::string out = P("runs");
  WriteShard(out, "base", "1111111111111111", {1.0, 2.0});
  WriteShard(out, "base", "2222222222222222", {3.0});
  WriteShard(out, "eval", "3333333333333333", {4.0, 5.0, 6.0});
  WriteResultsIndex(out, "demo",
                    {{"base", {ShardId{"1111111111111111"}, ShardId{"2222222222222222"}}},
                     {"eval", {ShardId{"3333333333333333"}}}});
  const std::string results = out + "/demo/results.h5";
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out + "/demo")) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ElementsAre("base", "eval", "results.h5"));  // no temp left

  const fs::path cwd = fs::current_path();
  fs::current_path("/");
  {
    H5Reader r(results);
    EXPECT_THAT(r.List("/"), ElementsAre("base", "eval"));
    EXPECT_THAT(r.List("base"), ElementsAre("1111111111111111", "2222222222222222"));
    EXPECT_EQ(r.Read<double>("base/2222222222222222/eval/values"), std::vector<double>{3.0});
    EXPECT_EQ(r.Read<double>("eval/3333333333333333/eval/values"),
              (std::vector<double>{4.0, 5.0, 6.0}));
    EXPECT_EQ(r.AttrString("eval/3333333333333333", "seedgrid_stage"), "eval");
    EXPECT_EQ(r.AttrString("/", "seedgrid_sweep"), "demo");
  }
  fs::current_path(cwd);

  // Rewriting replaces the index; a dangling link (file gone) is reported absent, not fatal.
  WriteResultsIndex(out, "demo", {{"base", {ShardId{"1111111111111111"}, ShardId{"9999"}}}});
  H5Reader r(results);
  EXPECT_THAT(r.List("/"), ElementsAre("base"));
  EXPECT_TRUE(r.Has("base/1111111111111111"));
  EXPECT_FALSE(r.Has("base/9999"));
}

// The files must open in h5py as they are (users' analysis scripts).
std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// In a child process: a shard file whose metadata cannot fit, then a results index of 200
// links, both under a 4 kB file size limit. Ends through exit(3), and so through HDF5's atexit
// shutdown when one is registered, with 0 when both failed as they should; a crash at exit
// shows as the signal, whatever the code.
[[noreturn]] void WriteUnderFileSizeLimit(const std::string& shard_path, const std::string& out) {
  ::signal(SIGXFSZ, SIG_IGN);  // write(2) then fails with EFBIG instead of killing us
  const rlimit limit{4096, 4096};
  if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) std::_Exit(10);
  int code = 0;
  try {
    H5Writer w(shard_path);
    for (int i = 0; i < 200; ++i) w.Attr("/", fmt::format("attr_{}", i), std::string(64, 'x'));
    w.Close();
    code = 11;
  } catch (const StoreError& e) {
    std::fprintf(stderr, "close: %s\n", e.what());
    const std::string line = FirstLine(e.what());
    if (line.find(shard_path) == std::string::npos) code = 12;
    if (line.find(std::strerror(EFBIG)) == std::string::npos) code = 13;
  }
  std::vector<ShardId> many;
  for (int i = 0; i < 200; ++i) many.push_back(ShardId{fmt::format("{:016x}", i)});
  try {
    WriteResultsIndex(out, "demo", {{"base", many}});
    code = 14;
  } catch (const StoreError& e) {
    std::fprintf(stderr, "index: %s\n", e.what());
    if (FirstLine(e.what()).find(std::strerror(EFBIG)) == std::string::npos) code = 15;
  }
  std::exit(code);
}

// A disk that refuses writes part-way (here RLIMIT_FSIZE, EFBIG; a full disk is ENOSPC, the same
// path through HDF5, which the integration test FullDisk covers on a tmpfs). HDF5 1.10 fails
// H5Fclose half-way, and used to crash at exit on the file it left registered.
TEST_F(StoreTest, AFailingDiskIsReportedWithItsReasonAndTheProcessExitsCleanly) {
  const std::string out = P("runs");
  WriteShard(out, "base", "1111111111111111", {1.0});
  WriteResultsIndex(out, "demo", {{"base", {ShardId{"1111111111111111"}}}});
  const std::string results = out + "/demo/results.h5";
  const auto results_size = fs::file_size(results);
  EXPECT_EXIT(WriteUnderFileSizeLimit(P("big.h5"), out), ::testing::ExitedWithCode(0), "");
  // The failed index left no temp file and the previous results.h5 as it was.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out + "/demo")) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ElementsAre("base", "results.h5"));
  EXPECT_EQ(fs::file_size(results), results_size);
  EXPECT_THAT(H5Reader(results).List("base"), ElementsAre("1111111111111111"));
}

TEST_F(StoreTest, H5pyReadsShardFilesAndResultsIndex) {
  // The first python3 on PATH may be a virtualenv without h5py; Debian's has python3-h5py.
  std::string python;
  for (const char* candidate : {"python3", "/usr/bin/python3"}) {
    std::string probe = std::string(candidate) + " -c 'import h5py' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) {
      python = candidate;
      break;
    }
  }
  if (python.empty()) GTEST_SKIP() << "no python3 with h5py";
  const std::string out = P("runs");
  const std::string shard = WriteShard(out, "base", "1111111111111111", {0.25, 0.5});
  {
    // A second file with every dtype, strings and attributes, published next to it.
    const std::string final_path = ShardFilePath(out, "demo", "eval", ShardId{"2222222222222222"});
    const std::string temp = TempPathFor(final_path, 1);
    H5Writer w(temp);
    std::vector<int32_t> m = {1, 2, 3, 4, 5, 6};
    w.Write("tokens", m.data(), Shape{2, 3});
    int64_t n = 12345678901;
    w.Write("count", &n, Shape{});
    w.Write("mask", std::vector<uint8_t>{1, 0, 1});
    w.Write("f32", std::vector<float>{0.5f});
    w.WriteStrings("labels", {"yes", "nö"});
    ShardFileHeader h = Header("2222222222222222", "eval");
    WriteShardAttributes(w, h, {{"acc", 0.875}});
    w.Close();
    PublishFile(temp, final_path);
  }
  WriteResultsIndex(
      out, "demo",
      {{"base", {ShardId{"1111111111111111"}}}, {"eval", {ShardId{"2222222222222222"}}}});

  const std::string script =
      "import h5py, json, sys\n"
      "s = h5py.File(sys.argv[1], 'r')\n"
      "r = h5py.File(sys.argv[2], 'r')\n"
      "e = r['eval/2222222222222222']\n"
      "def text(v): return v.decode() if isinstance(v, bytes) else str(v)\n"
      "print(json.dumps({\n"
      "  'values': s['eval/values'][()].tolist(),\n"
      "  'id': text(s.attrs['seedgrid_shard_id']),\n"
      "  'seed': int(s.attrs['seedgrid_seed']),\n"
      "  'seed_dtype': str(s.attrs['seedgrid_seed'].dtype),\n"
      "  'loss': float(s.attrs['metric.loss']),\n"
      "  'params': json.loads(text(s.attrs['seedgrid_params'])),\n"
      "  'via_link': r['base/1111111111111111/eval/values'][()].tolist(),\n"
      "  'tokens': e['tokens'][()].tolist(),\n"
      "  'tokens_dtype': str(e['tokens'].dtype),\n"
      "  'count': int(e['count'][()]),\n"
      "  'mask': e['mask'][()].tolist(),\n"
      "  'f32_dtype': str(e['f32'].dtype),\n"
      "  'labels': [text(x) for x in e['labels'][()]],\n"
      "  'acc': float(e.attrs['metric.acc']),\n"
      "  'stages': sorted(r.keys()),\n"
      "}))\n";
  const std::string cmd = "cd / && " + python + " -c \"$SEEDGRID_PY\" '" + shard + "' '" + out +
                          "/demo/results.h5' 2>&1";
  ::setenv("SEEDGRID_PY", script.c_str(), 1);
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) output.append(buf, n);
  int rc = ::pclose(p);
  ::unsetenv("SEEDGRID_PY");
  ASSERT_EQ(rc, 0) << output;
  Json j = Json::parse(output);
  EXPECT_EQ(j["values"], (Json{0.25, 0.5}));
  EXPECT_EQ(j["id"], "1111111111111111");
  EXPECT_EQ(j["seed"], -42);
  EXPECT_EQ(j["seed_dtype"], "int64");
  EXPECT_EQ(j["loss"], 0.25);
  EXPECT_EQ(j["params"], (Json{{"lr", 0.001}, {"layers", 2}}));
  EXPECT_EQ(j["via_link"], (Json{0.25, 0.5}));
  EXPECT_EQ(j["tokens"], (Json{{1, 2, 3}, {4, 5, 6}}));
  EXPECT_EQ(j["tokens_dtype"], "int32");
  EXPECT_EQ(j["count"], 12345678901);
  EXPECT_EQ(j["mask"], (Json{1, 0, 1}));
  EXPECT_EQ(j["f32_dtype"], "float32");
  EXPECT_EQ(j["labels"], (Json{"yes", "nö"}));
  EXPECT_EQ(j["acc"], 0.875);
  EXPECT_EQ(j["stages"], (Json{"base", "eval"}));
}

}  // namespace
}  // namespace seedgrid

#include "core/protocol.h"

#include <gtest/gtest.h>

namespace seedgrid {
namespace {

RunShard SampleRunShard() {
  RunShard m;
  m.key = ShardKey({.id = ShardId{"0123456789abcdef"},
                    .stage = "steer",
                    .kind = "lora_steer",
                    .seed = -3,
                    .role = ShardRole::kMap,
                    .params_json = R"({"lora":{"rank":4},"x":"é"})",
                    .axes_json = R"({"lora.rank":4})",
                    .needs = {ShardId{"aaaaaaaaaaaaaaaa"}}});
  m.sweep = "demo";
  m.attempt = 2;
  m.inputs.push_back(InputRef{ShardKey({.id = ShardId{"aaaaaaaaaaaaaaaa"},
                                        .stage = "base",
                                        .kind = "pretrain",
                                        .role = ShardRole::kReduce,
                                        .needs = {ShardId{"bbbbbbbbbbbbbbbb"}}}),
                              "/r/a.h5", "/r/a.files"});
  m.out_path = "/r/b.h5";
  m.artifact_dir = "/r/b.files";
  m.timeout_s = 12.5;
  m.memory_mb = 2048;
  m.grace_s = 7.5;
  m.isolation = Isolation::kInline;
  m.gang = {1, 3};
  m.gang_id = 9;
  return m;
}

TEST(Protocol, EveryToWorkerMessageRoundTrips) {
  for (ToWorker msg : {ToWorker{SampleRunShard()}, ToWorker{Shutdown{4}}}) {
    std::string buf;
    Encode(msg, &buf);
    EXPECT_EQ(DecodeToWorker(buf), msg) << MessageName(msg);
  }
}

TEST(Protocol, RunShardEncodesAloneAsInsideToWorker) {
  // The coordinator's dispatch path encodes a RunShard without building a ToWorker.
  RunShard r = SampleRunShard();
  std::string alone, wrapped = "prefix";
  Encode(r, &alone);
  Encode(ToWorker{r}, &wrapped);
  EXPECT_EQ("prefix" + alone, wrapped);  // appends, like every Encode
  EXPECT_EQ(std::get<RunShard>(DecodeToWorker(alone)), r);
}

TEST(Protocol, NoOpShardFitsOpenMpisInlineSend) {
  // A shard whose file and artifact directory follow the store's layout sends only their
  // directory: a no-op shard's frame stays under 256 bytes, Open MPI's limit for its inline
  // shared-memory sends (5x cheaper than the path above it).
  RunShard r;
  r.key = ShardKey({.id = ShardId{"0bd325561ac2c7f6"},
                    .stage = "noop_inline",
                    .kind = "noop",
                    .seed = 123456,
                    .role = ShardRole::kSingle,
                    .params_json = R"({"tag":null})",
                    .axes_json = R"({"seed":123456})"});
  r.sweep = "noop_inline";
  r.out_path = "/work/main/runs/noop_inline/noop_inline/0bd325561ac2c7f6.h5";
  r.artifact_dir = "/work/main/runs/noop_inline/noop_inline/0bd325561ac2c7f6.files";
  r.isolation = Isolation::kInline;
  InputRef in;
  in.key = ShardKey({.id = ShardId{"00000000000000aa"}});
  in.path = "/elsewhere/00000000000000aa.h5";
  in.artifact_dir = ArtifactDirFor(in.path);
  std::string frame;
  Encode(r, &frame);
  EXPECT_LT(frame.size(), 256u);
  EXPECT_EQ(std::get<RunShard>(DecodeToWorker(frame)), r);
  // Paths off the layout travel whole.
  r.inputs = {in};
  r.inputs[0].artifact_dir = "/somewhere/else";
  r.out_path = "/x/not-the-id.h5";
  frame.clear();
  Encode(r, &frame);
  EXPECT_EQ(std::get<RunShard>(DecodeToWorker(frame)), r);
  r.inputs[0].artifact_dir = ArtifactDirFor(r.inputs[0].path);
  r.out_path = "/x/0bd325561ac2c7f6.h5";
  r.artifact_dir = "/x/0bd325561ac2c7f6.h5.files";  // not what the layout derives
  frame.clear();
  Encode(r, &frame);
  EXPECT_EQ(std::get<RunShard>(DecodeToWorker(frame)), r);
}

TEST(Protocol, EveryFromWorkerMessageRoundTrips) {
  ShardDone d;
  d.id = ShardId{"fedcba9876543210"};
  d.attempt = 3;
  d.outcome = Outcome::kCrash;
  d.signal = 11;
  d.exit_code = 0;
  d.error = "executor killed by signal 11 (SIGSEGV)";
  d.metrics = {{"steer_delta", 0.25}, {"dw_fro", 1e-9}};
  d.artifact = "/r/x.h5";
  d.start = 1.5;
  d.end = 2.5;
  d.peak_rss_kb = 123456;
  Hello h{"node1", 2, "GPU-abc", 4242, 8, "77.0"};
  Progress p{ShardId{"fedcba9876543210"}, 3, 10, 100};
  LivePoints l{
      ShardId{"fedcba9876543210"},
      3,
      {LiveCurve{"train/loss_pos", {0, 7, 9}, {2.5, 1.25, -0.5}}, LiveCurve{"acc", {4}, {0.75}}}};
  for (FromWorker msg : {FromWorker{h}, FromWorker{p}, FromWorker{d}, FromWorker{l}}) {
    std::string buf;
    Encode(msg, &buf);
    EXPECT_EQ(DecodeFromWorker(buf), msg) << MessageName(msg);
  }
}

TEST(Protocol, LivePointsAtTheirBoundFitAModestFrame) {
  // The bound of core/protocol.h: kLiveMaxCurves curves of kLiveMaxPoints points, ~16 KiB.
  LivePoints l{ShardId{"fedcba9876543210"}, 1, {}};
  for (size_t c = 0; c < kLiveMaxCurves; ++c) {
    LiveCurve curve{"curve" + std::to_string(c), {}, {}};
    for (size_t i = 0; i < kLiveMaxPoints; ++i) {
      curve.steps.push_back(static_cast<int64_t>(i));
      curve.values.push_back(1.0 / static_cast<double>(i + 1));
    }
    l.curves.push_back(curve);
  }
  std::string buf;
  Encode(FromWorker{l}, &buf);
  EXPECT_LT(buf.size(), 17u * 1024);
  EXPECT_EQ(std::get<LivePoints>(DecodeFromWorker(buf)), l);
  EXPECT_EQ(MessageName(FromWorker{l}), "LivePoints");
  // A count larger than the frame can hold is refused before anything is allocated.
  std::string bad;
  Encode(FromWorker{LivePoints{ShardId{"ab"}, 1, {LiveCurve{"x", {1}, {2.0}}}}}, &bad);
  bad[7 + 4 + 2 + 4] = '\x7f';  // the curve count's low byte: 127 curves in a few bytes
  EXPECT_THROW(DecodeFromWorker(bad), ProtocolError);
}

TEST(Protocol, StreamFramingFindsWholeFrames) {
  std::string buf;
  Encode(ToWorker{SampleRunShard()}, &buf);
  const size_t first = buf.size();
  Encode(ToWorker{Shutdown{0}}, &buf);
  EXPECT_EQ(WholeFrameSize(std::string_view(buf).substr(0, 3)), std::nullopt);
  EXPECT_EQ(WholeFrameSize(std::string_view(buf).substr(0, first - 1)), std::nullopt);
  ASSERT_EQ(WholeFrameSize(buf), first);
  EXPECT_EQ(std::get<Shutdown>(DecodeToWorker(std::string_view(buf).substr(first))).exit_code, 0);
}

TEST(Protocol, RejectsOtherVersionsAndGarbage) {
  std::string buf;
  Encode(ToWorker{Shutdown{1}}, &buf);
  std::string bad = buf;
  bad[4] = 99;  // version
  try {
    DecodeToWorker(bad);
    FAIL() << "accepted another protocol version";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("version 99"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DecodeToWorker(buf.substr(0, buf.size() - 1)), ProtocolError);
  EXPECT_THROW(DecodeFromWorker(buf), ProtocolError);  // a ToWorker tag sent the wrong way
  std::string huge(7, '\xff');
  EXPECT_THROW(WholeFrameSize(huge), ProtocolError);
}

}  // namespace
}  // namespace seedgrid

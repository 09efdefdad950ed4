#include "experiments/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/experiments/test_context.h"

namespace seedgrid {
namespace {

using testing::TempDir;

// Writes a raw safetensors-like file: length field (given or the header's), header, data.
std::string WriteRaw(const TempDir& dir, const std::string& header, const std::string& data,
                     int64_t length_override = -1, const std::string& name = "f.safetensors") {
  const std::string path = (dir.path() / name).string();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << data;
  return path;
}

std::string ErrorOf(const std::string& path) {
  try {
    SafetensorsFile f(path);
  } catch (const SafetensorsError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripAllFloatTypes) {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
  const std::vector<uint16_t> half = {0x3c00, 0xc000, 0x3555, 0x0001};  // 1, -2, ~0.333, 2^-24
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc040, 0x4049, 0x0000};  // 1, -3, ~3.14, 0
  const std::string path = (dir.path() / "t.safetensors").string();
  WriteSafetensors(path,
                   {{"a", StDType::kF32, {2, 3}, a.data()},
                    {"h", StDType::kF16, {4}, half.data()},
                    {"b", StDType::kBF16, {2, 2}, bf16.data()},
                    {"empty", StDType::kF32, {0, 5}, nullptr}},
                   {{"format", "pt"}});
  SafetensorsFile f(path);
  EXPECT_EQ(f.Names(), (std::vector<std::string>{"a", "b", "empty", "h"}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto& va = f.Get("a");
  EXPECT_EQ(va.shape, (std::vector<int64_t>{2, 3}));
  std::vector<float> got(6);
  ConvertToFloat32(va, got.data());
  EXPECT_EQ(got, a);
  std::vector<float> h(4);
  ConvertToFloat32(f.Get("h"), h.data());
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_NEAR(h[2], 1.0f / 3, 1e-3);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  std::vector<float> b(4);
  ConvertToFloat32(f.Get("b"), b.data());
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -3.0f);
  EXPECT_NEAR(b[2], 3.14f, 0.01);
  EXPECT_EQ(f.Get("empty").numel(), 0);
}

// Read: pread of a byte range of one tensor, the same bytes as the mapping; a range outside the
// tensor names it; a file truncated after it was opened is an error, not short data.
TEST(Safetensors, ReadCopiesByteRangesOfATensor) {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
  const std::vector<uint16_t> b = {0x3f80, 0xc040, 0x4049};
  const std::string path = (dir.path() / "t.safetensors").string();
  WriteSafetensors(path,
                   {{"b", StDType::kBF16, {3}, b.data()}, {"a", StDType::kF32, {6}, a.data()}});
  SafetensorsFile f(path);
  std::vector<float> got(6, 0.0f);
  f.Read(f.Get("a"), 0, 24, got.data());
  EXPECT_EQ(got, a);
  std::vector<float> tail(2, 0.0f);
  f.Read(f.Get("a"), 16, 8, tail.data());
  EXPECT_EQ(tail, (std::vector<float>{1e-3f, -7.0f}));
  EXPECT_EQ(std::memcmp(got.data(), f.Get("a").data, 24), 0);
  try {
    f.Read(f.Get("b"), 2, 6, got.data());
    FAIL() << "read past the tensor";
  } catch (const SafetensorsError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'b': cannot read bytes [2, 8) of its 6"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 8);
  try {
    f.Read(f.Get("a"), 0, 24, got.data());
    FAIL() << "read of a truncated file";
  } catch (const SafetensorsError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, HeaderIsPaddedAndDataAligned) {
  TempDir dir;
  const float x = 1.0f;
  const std::string path = (dir.path() / "t.safetensors").string();
  WriteSafetensors(path, {{"x", StDType::kF32, {1}, &x}});
  std::ifstream in(path, std::ios::binary);
  uint8_t len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  EXPECT_EQ(len[0] % 8, 0);
}

TEST(Safetensors, TooShortFile) {
  TempDir dir;
  const std::string path = (dir.path() / "short").string();
  std::ofstream(path) << "abc";
  EXPECT_NE(ErrorOf(path).find("shorter than the 8-byte header length"), std::string::npos);
  EXPECT_NE(ErrorOf(path).find(path), std::string::npos);
}

TEST(Safetensors, MissingFile) {
  EXPECT_NE(ErrorOf("/nonexistent/x.safetensors").find("cannot open"), std::string::npos);
}

TEST(Safetensors, BadHeaderLength) {
  TempDir dir;
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_NE(ErrorOf(WriteRaw(dir, header, "abcd", 1 << 20)).find("bad header length"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WriteRaw(dir, header, "abcd", 0)).find("bad header length 0"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WriteRaw(dir, header, "abcd", int64_t{1} << 62)).find("bad header length"),
            std::string::npos);
}

TEST(Safetensors, HeaderNotJson) {
  TempDir dir;
  EXPECT_NE(ErrorOf(WriteRaw(dir, "{not json", "")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(WriteRaw(dir, "[1,2]", "")).find("not a JSON object"), std::string::npos);
}

TEST(Safetensors, OffsetsOutOfRange) {
  TempDir dir;
  const auto err =
      ErrorOf(WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd"));
  EXPECT_NE(err.find("tensor 'w'"), std::string::npos) << err;
  EXPECT_NE(err.find("out of range"), std::string::npos) << err;
  const auto reversed =
      ErrorOf(WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", "abcd"));
  EXPECT_NE(reversed.find("out of range"), std::string::npos) << reversed;
}

TEST(Safetensors, OverlappingTensors) {
  TempDir dir;
  const auto err = ErrorOf(WriteRaw(dir,
                                    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                    std::string(12, 'x')));
  EXPECT_NE(err.find("overlap"), std::string::npos) << err;
  EXPECT_NE(err.find("'a'"), std::string::npos) << err;
  EXPECT_NE(err.find("'b'"), std::string::npos) << err;
}

TEST(Safetensors, UnknownDtype) {
  TempDir dir;
  const auto err =
      ErrorOf(WriteRaw(dir, R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}})", "a"));
  EXPECT_NE(err.find("tensor 'w': unknown dtype 'F7'"), std::string::npos) << err;
}

TEST(Safetensors, ShapeSizeMismatch) {
  TempDir dir;
  const auto err = ErrorOf(
      WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "abcdefgh"));
  EXPECT_NE(err.find("tensor 'w'"), std::string::npos) << err;
  EXPECT_NE(err.find("needs 12 bytes but data_offsets span 8"), std::string::npos) << err;
  const auto neg =
      ErrorOf(WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"));
  EXPECT_NE(neg.find("bad shape"), std::string::npos) << neg;
  const auto huge = ErrorOf(
      WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
               "abcd"));
  EXPECT_NE(huge.find("bad shape"), std::string::npos) << huge;
}

TEST(Safetensors, MalformedEntries) {
  TempDir dir;
  const auto err = ErrorOf(WriteRaw(dir,
                                    R"({"a":5,"b":{"shape":[1],"data_offsets":[0,4]},)"
                                    R"("c":{"dtype":"F32","data_offsets":[0,4]},)"
                                    R"("d":{"dtype":"F32","shape":[1]},"__metadata__":{"k":1}})",
                                    "abcd"));
  // Every problem at once.
  EXPECT_NE(err.find("'a': entry is not an object"), std::string::npos) << err;
  EXPECT_NE(err.find("'b': missing dtype"), std::string::npos) << err;
  EXPECT_NE(err.find("'c': missing shape"), std::string::npos) << err;
  EXPECT_NE(err.find("'d': missing or malformed data_offsets"), std::string::npos) << err;
  EXPECT_NE(err.find("__metadata__['k'] is not a string"), std::string::npos) << err;
}

TEST(Safetensors, MissingTensorNamesFileAndTensor) {
  TempDir dir;
  const float x = 1;
  const std::string path = (dir.path() / "t.safetensors").string();
  WriteSafetensors(path, {{"x", StDType::kF32, {1}, &x}});
  SafetensorsFile f(path);
  try {
    f.Get("y");
    FAIL() << "no throw";
  } catch (const SafetensorsError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("missing tensor 'y'"), std::string::npos);
  }
}

TEST(Safetensors, IntegerTensorIsNotAWeight) {
  TempDir dir;
  const int64_t v = 3;
  const std::string path = (dir.path() / "t.safetensors").string();
  WriteSafetensors(path, {{"i", StDType::kI64, {1}, &v}});
  SafetensorsFile f(path);
  float out;
  EXPECT_THROW(ConvertToFloat32(f.Get("i"), &out, path), SafetensorsError);
}

TEST(Safetensors, WriterRejectsDuplicates) {
  TempDir dir;
  const float x = 1;
  EXPECT_THROW(WriteSafetensors((dir.path() / "t").string(),
                                {{"x", StDType::kF32, {1}, &x}, {"x", StDType::kF32, {1}, &x}}),
               SafetensorsError);
}

}  // namespace
}  // namespace seedgrid

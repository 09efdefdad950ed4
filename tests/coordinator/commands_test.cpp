#include "coordinator/commands.h"

#include <cstdio>
#include <functional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/registry.h"
#include "tests/report/fixture.h"

namespace seedgrid {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- Realistic multi-line errors ---------------------------------------------------------------

// H5Eprint's stack for a write on a full disk. HDF5 formats the time with ctime(), whose newline
// puts the errno text on a line of its own.
constexpr const char* kHdf5Enospc =
    "HDF5-DIAG: Error detected in HDF5 (1.12.2) thread 0:\n"
    "  #000: ../../src/H5F.c line 1058 in H5Fclose(): decrementing file ID failed\n"
    "    major: Object atom\n"
    "    minor: Unable to close file\n"
    "  #001: ../../src/H5Fint.c line 2286 in H5F__close(): can't close file\n"
    "    major: File accessibility\n"
    "    minor: Unable to close file\n"
    "  #002: ../../src/H5FDsec2.c line 836 in H5FD__sec2_write(): file write failed: time = Fri "
    "Dec  4 14:02:11 2026\n"
    ", filename = '/out/s/a/3fa9.h5.tmp', file descriptor = 7, errno = 28, error message = 'No "
    "space left on device', buf = 0x55d0c, total write size = 4096, bytes this sub-write = 4096, "
    "bytes actually written = 18446744073709551615, offset = 0\n"
    "    major: Low-level I/O\n"
    "    minor: Write failed\n";

constexpr const char* kHdf5NoErrno =
    "HDF5-DIAG: Error detected in HDF5 (1.12.2) thread 0:\n"
    "  #000: H5D.c line 1021 in H5Dwrite(): can't write data\n"
    "    major: Dataset\n"
    "    minor: Write failed\n"
    "  #001: H5Dio.c line 170 in H5D__write(): src and dest dataspaces have different number of "
    "elements selected\n"
    "    major: Invalid arguments to routine\n"
    "    minor: Bad value\n";

constexpr const char* kPythonOsError =
    "Traceback (most recent call last):\n"
    "  File \"/work/train.py\", line 41, in <module>\n"
    "    torch.save(state, path)\n"
    "  File \"/usr/lib/python3/dist-packages/torch/serialization.py\", line 440, in save\n"
    "    with _open_zipfile_writer(f) as opened_zipfile:\n"
    "OSError: [Errno 28] No space left on device\n";

constexpr const char* kPythonChained =
    "Traceback (most recent call last):\n"
    "  File \"/work/eval.py\", line 9, in main\n"
    "    rank = cfg[\"lora\"][\"rank\"]\n"
    "KeyError: 'lora'\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    "  File \"/work/eval.py\", line 11, in main\n"
    "    raise ValueError(\"config has no lora section\")\n"
    "ValueError: config has no lora section\n";

TEST(ErrorCauseLine, NamesTheCauseOfRealisticMessages) {
  EXPECT_THAT(
      ErrorCauseLine(kHdf5Enospc),
      AllOf(HasSubstr("error message = 'No space left on device'"), Not(HasSubstr("major"))));
  EXPECT_EQ(ErrorCauseLine(kHdf5NoErrno),
            "#001: H5Dio.c line 170 in H5D__write(): src and dest dataspaces have different "
            "number of elements selected");
  EXPECT_EQ(ErrorCauseLine(kPythonOsError), "OSError: [Errno 28] No space left on device");
  EXPECT_EQ(ErrorCauseLine(kPythonChained), "ValueError: config has no lora section");
  // seedgrid's own store error: summary first, errno text on line 2.
  EXPECT_EQ(ErrorCauseLine("/out/s/a/3fa9.h5: cannot close file: H5Fclose failed\n"
                           "No space left on device\n\n"),
            "No space left on device");
  // A traceback at the end of an executor's message.
  EXPECT_EQ(
      ErrorCauseLine(std::string("executor exited with code 1; last output:\n") + kPythonChained),
      "ValueError: config has no lora section");
  // No errno, no traceback: the last line that says error, else the first line.
  EXPECT_EQ(ErrorCauseLine("shard 3fa9 failed after 2 attempts\n"
                           "RuntimeError: CUDA error: out of memory\n"),
            "RuntimeError: CUDA error: out of memory");
  EXPECT_EQ(ErrorCauseLine("executor killed by signal 9 (SIGKILL)\r\nlast output: step 10/100\r\n"),
            "executor killed by signal 9 (SIGKILL)");
  EXPECT_EQ(ErrorCauseLine("  one line  \n"), "one line");
  EXPECT_EQ(ErrorCauseLine(" \n\n"), "");
  EXPECT_EQ(ErrorCauseLine(""), "");
}

// ---- status and show ---------------------------------------------------------------------------

std::string Captured(const std::function<int()>& command) {
  ::testing::internal::CaptureStdout();
  int rc = command();
  std::fflush(stdout);
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << out;
  return out;
}

TEST(StatusAndShow, StatusShowsTheCauseLineShowTheWholeMessage) {
  testing::SweepFixture f("full");
  const std::string store_error =
      "/out/full/a/3fa9.h5: cannot close file: H5Fclose failed\nNo space left on device";
  ShardId id = f.Add({"a", 0, "chaos", {{"value", 1}}, 0, ShardStatus::kFailed, {}});
  f.registry().SetShardState(id, ShardStatus::kFailed, 2, "", store_error);
  AttemptRow first;
  first.shard = id;
  first.n = 1;
  first.rank = 1;
  first.host = "node1";
  first.outcome = Outcome::kError;
  first.error = kPythonOsError;
  f.registry().AddAttempt(first);
  AttemptRow second = first;
  second.n = 2;
  second.error = store_error;
  f.registry().AddAttempt(second);

  const std::string status = Captured([&] { return CmdStatus(f.registry_path(), "full", false); });
  EXPECT_THAT(status, HasSubstr("attempts 2: No space left on device  (whole message: seedgrid "
                                "show " +
                                id.hex + ")"));
  EXPECT_THAT(status, Not(HasSubstr("cannot close file")));
  const std::string json = Captured([&] { return CmdStatus(f.registry_path(), "full", true); });
  EXPECT_THAT(json, HasSubstr("\"error_line\": \"No space left on device\""));

  const std::string show = Captured([&] { return CmdShow(f.registry_path(), id.hex, false); });
  // Every line of every attempt's message, indented under the attempt.
  EXPECT_THAT(show, HasSubstr("#1 rank 1 on node1: error after 0.000 s:\n"
                              "      Traceback (most recent call last):\n"
                              "        File \"/work/train.py\", line 41, in <module>\n"));
  EXPECT_THAT(show, HasSubstr("\n      OSError: [Errno 28] No space left on device\n"));
  EXPECT_THAT(show, HasSubstr("#2 rank 1 on node1: error after 0.000 s:\n"
                              "      /out/full/a/3fa9.h5: cannot close file: H5Fclose failed\n"
                              "      No space left on device\n"));
}

}  // namespace
}  // namespace seedgrid

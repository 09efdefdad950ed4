#include "transport/mpi.h"

#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

namespace seedgrid {

void ThrowMpiError(const char* call, int code, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw std::runtime_error(
      fmt::format("{} failed at {}:{}: {}", call, file, line, std::string(text, len)));
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  const char* level = std::getenv("SEEDGRID_MPI_THREAD_LEVEL");  // see the threading contract
  const std::string_view want = level ? level : "single";
  const bool funneled = want == "funneled";
  if (!funneled && want != "single") {
    fmt::print(stderr,
               "seedgrid: SEEDGRID_MPI_THREAD_LEVEL={} is neither single nor funneled; "
               "using single\n",
               want);
  }
  SEEDGRID_MPI_CHECK(
      MPI_Init_thread(argc, argv, funneled ? MPI_THREAD_FUNNELED : MPI_THREAD_SINGLE, &provided));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  SEEDGRID_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  SEEDGRID_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm node;
  SEEDGRID_MPI_CHECK(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  SEEDGRID_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  SEEDGRID_MPI_CHECK(MPI_Comm_size(node, &local_size_));
  int has_zero = rank_ == 0 ? 1 : 0, any_zero = 0;
  SEEDGRID_MPI_CHECK(MPI_Allreduce(&has_zero, &any_zero, 1, MPI_INT, MPI_MAX, node));
  coordinator_local_ = any_zero != 0;
  MPI_Comm_free(&node);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::string MpiSession::library_version() const {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, len);
  auto nl = s.find_first_of("\n,");
  return nl == std::string::npos ? s : s.substr(0, nl);
}

bool UnderMpiLauncher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK", "PMI_SIZE",
                        "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

bool TryRecvFrame(std::string* buf, int* source) {
  int flag = 0;
  MPI_Status st;
  SEEDGRID_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kFrameTag, MPI_COMM_WORLD, &flag, &st));
  if (!flag) return false;
  int count = 0;
  SEEDGRID_MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &count));
  buf->resize(count);
  SEEDGRID_MPI_CHECK(MPI_Recv(buf->data(), count, MPI_BYTE, st.MPI_SOURCE, kFrameTag,
                              MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  *source = st.MPI_SOURCE;
  return true;
}

bool FrameWaiting(int source) {
  int flag = 0;
  SEEDGRID_MPI_CHECK(MPI_Iprobe(source, kFrameTag, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE));
  return flag != 0;
}

void SendFrame(int dest, const std::string& frame) {
  SEEDGRID_MPI_CHECK(MPI_Send(frame.data(), static_cast<int>(frame.size()), MPI_BYTE, dest,
                              kFrameTag, MPI_COMM_WORLD));
}

}  // namespace seedgrid

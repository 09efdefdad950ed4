#include "experiments/command/layout.h"

#include <unistd.h>

#include <fmt/format.h>

#include "core/sysutil.h"

namespace seedgrid::command {

std::string CheckpointDirFor(const std::string& stem) { return stem + ".checkpoint"; }

std::string ScratchDirFor(const std::string& stem, int attempt) {
  return fmt::format("{}.scratch-{}-{}-a{}", stem, Hostname(), ::getpid(), attempt);
}

}  // namespace seedgrid::command

// Peak resident set size for tests that bound a step's memory (Linux /proc).
#pragma once

#include <fstream>
#include <string>

namespace seedgrid::testing {

// /proc/self/status's VmHWM (peak RSS) in KiB, after resetting it to the current RSS when
// `reset`; -1 when the kernel does not report it.
inline long ResetPeakRssKb(bool reset) {
  if (reset) std::ofstream("/proc/self/clear_refs") << "5";
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace seedgrid::testing

// `seedgrid model` in a build without LibTorch: says so (exit 2).
#include <fmt/format.h>

#include "core/types.h"
#include "experiments/model/model_cli.h"

namespace seedgrid {

int ModelCommandMain(int, char**) {
  fmt::print(stderr, "seedgrid: model: this build has no LibTorch (SEEDGRID_WITH_TORCH=OFF)\n");
  return exit_code::kUsage;
}

}  // namespace seedgrid

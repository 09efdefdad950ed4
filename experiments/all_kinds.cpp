#include "core/kinds.h"
#include "experiments/chaos/chaos.h"
#include "experiments/command/command.h"
#include "experiments/kinds_config.h"

namespace seedgrid {

const KindRegistry& AllKinds() {
  static const KindRegistry kinds = [] {
    KindRegistry k;
    RegisterChaosConfigs(k);
    RegisterCommandConfigs(k);
#ifdef SEEDGRID_WITH_TORCH
    RegisterTorchKindConfigs(k);
#endif
    return k;
  }();
  return kinds;
}

}  // namespace seedgrid

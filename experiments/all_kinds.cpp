#include "experiments/all_kinds.h"

namespace seedgrid {

const KindRegistry& AllKinds() {
  static const KindRegistry kinds = [] {
    KindRegistry k;
    RegisterExperimentKinds(k);
    return k;
  }();
  return kinds;
}

}  // namespace seedgrid

// results.h5's link targets: relative to <out>/<sweep>/ whatever the registry's place.
#include <gtest/gtest.h>

#include "coordinator/launch.h"

namespace seedgrid {
namespace {

TEST(ResultsTargets, RegistryInTheOutDir) {
  ResultsTargets t("/w/runs", "big", "/w/runs");
  EXPECT_EQ(t.For("big/main/0123.h5"), "main/0123.h5");
  // A shard shared with the sweep that computed it first lives in that sweep's directory.
  EXPECT_EQ(t.For("small/main/0123.h5"), "../small/main/0123.h5");
}

TEST(ResultsTargets, RegistryElsewhere) {
  ResultsTargets t("/w/runs", "big", "/w/reg");
  EXPECT_EQ(t.For("../runs/big/main/0123.h5"), "../../reg/../runs/big/main/0123.h5");
  EXPECT_EQ(t.For("/w/runs/big/main/0123.h5"), "main/0123.h5");
  EXPECT_EQ(t.For("/elsewhere/x/0123.h5"), "/elsewhere/x/0123.h5");
}

}  // namespace
}  // namespace seedgrid

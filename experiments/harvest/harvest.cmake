# harvest (included from experiments/CMakeLists.txt when SEEDGRID_WITH_TORCH).
#   config.cpp            the kind's config half: joins seedgrid_kinds (no LibTorch)
#   seedgrid_harvest      accumulators, merge, files, gang reduce: no LibTorch, so fast to build
#                         and test (tests/experiments/harvest.cmake)
#   runner.cpp            the forward pass and the runner: the one LibTorch file
target_sources(seedgrid_kinds PRIVATE harvest/config.cpp)

add_library(seedgrid_harvest STATIC
  harvest/accumulator.cpp
  harvest/files.cpp
)
target_link_libraries(seedgrid_harvest PUBLIC seedgrid_core)
target_include_directories(seedgrid_harvest PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(seedgrid_harvest PRIVATE -Wall -Wextra)

target_sources(seedgrid_torch PRIVATE harvest/runner.cpp)
target_link_libraries(seedgrid_torch PUBLIC seedgrid_harvest)

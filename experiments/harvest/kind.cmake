# kind `harvest` (experiments/CMakeLists.txt: seedgrid_kind(harvest harvest TORCH)).
#   config.cpp            the config half: defaults, validation, report defaults (no LibTorch)
#   seedgrid_harvest      accumulators, merge, files, gang reduce, text corpora (text.cpp): no
#                         LibTorch, so fast to build
#                         and test (tests/experiments/harvest.cmake)
#   runner.cpp            the forward pass and the runner: the one LibTorch file
set(KIND_CONFIG_SOURCES config.cpp)
set(KIND_RUNNER_SOURCES runner.cpp)

add_library(seedgrid_harvest STATIC
  ${CMAKE_CURRENT_LIST_DIR}/accumulator.cpp
  ${CMAKE_CURRENT_LIST_DIR}/files.cpp
  ${CMAKE_CURRENT_LIST_DIR}/text.cpp
)
# seedgrid_kinds: data::CorpusTokens, the token cache (text.cpp); seedgrid_text: the tokenizer.
target_link_libraries(seedgrid_harvest PUBLIC seedgrid_core seedgrid_kinds seedgrid_text)
target_include_directories(seedgrid_harvest PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(seedgrid_harvest PRIVATE -Wall -Wextra)
target_link_libraries(seedgrid_torch PUBLIC seedgrid_harvest)

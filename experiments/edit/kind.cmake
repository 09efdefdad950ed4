# kind `edit` (experiments/CMakeLists.txt: seedgrid_kind(edit edit TORCH)).
set(KIND_CONFIG_SOURCES config.cpp fire.cpp)  # params, checks, report defaults; fire positions
set(KIND_RUNNER_SOURCES runner.cpp)           # the LibTorch runner
set(KIND_TEST_SOURCES edit_test.cpp)          # kind_edit_test

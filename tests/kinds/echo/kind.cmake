# kind `echo`, only in tests (tests/kinds/CMakeLists.txt: seedgrid_kind(echo echo SET Test)).
set(KIND_CONFIG_SOURCES config.cpp)   # defaults, validation, report defaults (no LibTorch)
set(KIND_RUNNER_SOURCES runner.cpp)   # the runner (no LibTorch either: no TORCH flag)
set(KIND_TEST_SOURCES echo_test.cpp)  # kind_echo_test: plan, run and report a sweep of echo

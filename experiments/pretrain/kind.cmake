# kind `pretrain` (experiments/CMakeLists.txt: seedgrid_kind(pretrain pretrain TORCH)).
set(KIND_CONFIG_SOURCES config.cpp)     # defaults, validation, report defaults (no LibTorch)
set(KIND_RUNNER_SOURCES pretrain.cpp)   # the LibTorch runner

# kind `ablation` (experiments/CMakeLists.txt: seedgrid_kind(ablation ablation TORCH)).
set(KIND_CONFIG_SOURCES ablation_config.cpp)       # defaults, validation, report defaults
set(KIND_RUNNER_SOURCES ablation.cpp heads.cpp)    # the two LibTorch runners

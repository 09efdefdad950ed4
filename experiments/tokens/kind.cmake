# kind `tokens` (experiments/CMakeLists.txt: seedgrid_kind(tokens tokens)): the token cache.
# Torch-free: the cache's writer and reader go into seedgrid_kinds, which the LibTorch consumers
# (pretrain, lora_steer, harvest, ablation) link. Tests: tests/experiments/token_cache_test.cpp.
set(KIND_CONFIG_SOURCES config.cpp cache.cpp)
set(KIND_RUNNER_SOURCES runner.cpp)
target_link_libraries(seedgrid_kinds PRIVATE HDF5::HDF5)

# kind `ablation` (included from experiments/CMakeLists.txt when SEEDGRID_WITH_TORCH).
# Config half (no LibTorch) joins seedgrid_kinds; the runners (two LibTorch TUs) seedgrid_torch.
target_sources(seedgrid_kinds PRIVATE ${CMAKE_CURRENT_LIST_DIR}/ablation_config.cpp)
target_sources(seedgrid_torch PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/ablation.cpp
  ${CMAKE_CURRENT_LIST_DIR}/heads.cpp
)

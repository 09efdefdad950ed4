# kind: command (no LibTorch): the config half joins seedgrid_kinds, the runner seedgrid_runners,
# both through this library.
add_library(seedgrid_command STATIC
  command/config.cpp
  command/code_hash.cpp
  command/template.cpp
  command/layout.cpp
  command/results.cpp
  command/runner.cpp
  command/gang.cpp
)
target_link_libraries(seedgrid_command PUBLIC seedgrid_core PRIVATE HDF5::HDF5)
target_compile_options(seedgrid_command PRIVATE -Wall -Wextra)

# kind `command` (experiments/CMakeLists.txt: seedgrid_kind(command command)). No LibTorch.
# Its pieces (templates, the code digest, the results contract, gangs, the process guard) are
# one library, seedgrid_command, that the config half links and the tests link alone; the config half
# (config.cpp: params, the plan-time placeholder check, the code digest) joins seedgrid_kinds,
# the runner (runner.cpp) seedgrid_runners.
add_library(seedgrid_command STATIC
  ${CMAKE_CURRENT_LIST_DIR}/code_hash.cpp
  ${CMAKE_CURRENT_LIST_DIR}/template.cpp
  ${CMAKE_CURRENT_LIST_DIR}/layout.cpp
  ${CMAKE_CURRENT_LIST_DIR}/results.cpp
  ${CMAKE_CURRENT_LIST_DIR}/gang.cpp
  ${CMAKE_CURRENT_LIST_DIR}/guard.cpp
)
target_link_libraries(seedgrid_command PUBLIC seedgrid_core PRIVATE HDF5::HDF5)
target_compile_options(seedgrid_command PRIVATE -Wall -Wextra)
target_link_libraries(${config_target} PUBLIC seedgrid_command)
set(KIND_CONFIG_SOURCES config.cpp)
set(KIND_RUNNER_SOURCES runner.cpp)
set(KIND_TEST_SOURCES command_test.cpp guard_test.cpp)  # kind_command_test: placeholders, the code
# digest, metrics files; the process guard with real processes

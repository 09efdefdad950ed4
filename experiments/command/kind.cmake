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
  ${CMAKE_CURRENT_LIST_DIR}/guard_child.cpp
)
target_link_libraries(seedgrid_command PUBLIC seedgrid_core PRIVATE HDF5::HDF5)
target_compile_options(seedgrid_command PRIVATE -Wall -Wextra)
target_link_libraries(${config_target} PUBLIC seedgrid_command)
set(KIND_CONFIG_SOURCES config.cpp)
set(KIND_RUNNER_SOURCES runner.cpp)
set(KIND_TEST_SOURCES command_test.cpp guard_test.cpp)  # kind_command_test: placeholders, the code
# digest, metrics files; the process guard with real processes
# seedgrid-guard: the command's guard process as a small program (guard_main.cpp), started with
# posix_spawn instead of a fork of the runner; built next to `seedgrid`, where the runner looks
# for it (without it, the runner forks the guard). Only libc: nothing else to load per command.
add_executable(seedgrid-guard ${CMAKE_CURRENT_LIST_DIR}/guard_main.cpp
                              ${CMAKE_CURRENT_LIST_DIR}/guard_child.cpp)
target_include_directories(seedgrid-guard PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_options(seedgrid-guard PRIVATE -Wall -Wextra)
target_link_options(seedgrid-guard PRIVATE -static-libstdc++ -static-libgcc)
set_target_properties(seedgrid-guard PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
add_dependencies(${runner_target} seedgrid-guard)

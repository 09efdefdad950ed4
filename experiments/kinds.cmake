# Kinds as folders: one `seedgrid_kind(...)` line registers a kind (docs/adding-a-kind.md).
#
#   seedgrid_kind_set(<Set> CONFIG_TARGET <lib> RUNNER_TARGET <lib>)
#     Declares a set of kinds. At the end of the current directory it generates
#     <Set>_kinds.cpp into CONFIG_TARGET, defining seedgrid::Register<Set>Kinds(KindRegistry&),
#     and <Set>_runners.cpp into RUNNER_TARGET, defining
#     seedgrid::Register<Set>Runners(RunnerRegistry&): each calls every kind of the set in
#     registration order. The build's set is `Experiment` (experiments/CMakeLists.txt: AllKinds()
#     and AllRunners() call it); tests/kinds declares `Test` for kinds that exist only in tests.
#
#   seedgrid_kind(<name> <dir> [TORCH] [SET <Set>])
#     Adds the kind in <dir> (relative to the current source dir) to <Set> (default: Experiment).
#     <dir>/kind.cmake sets, relative to <dir>:
#       KIND_CONFIG_SOURCES  the config half (no LibTorch): joins CONFIG_TARGET, so the
#                            coordinator can validate specs; it defines
#                            seedgrid::Register<Name>Config(KindRegistry&)
#       KIND_RUNNER_SOURCES  the runner: joins seedgrid_torch with TORCH, else RUNNER_TARGET; it
#                            defines seedgrid::Register<Name>Runners(RunnerRegistry&)
#       KIND_TEST_SOURCES    (optional) a GoogleTest binary kind_<name>_test, linked with the
#                            set's targets, seedgrid_report and KIND_TEST_LIBS (added by
#                            seedgrid_add_kind_tests() in tests/CMakeLists.txt for kinds
#                            registered before it)
#     and may define targets of its own (a torch-free library its tests link, say). <Name> is
#     <name> in CamelCase (lora_steer: RegisterLoraSteerConfig). A TORCH kind is left out of a
#     build without LibTorch.

function(seedgrid_kind_set set)
  cmake_parse_arguments(S "" "CONFIG_TARGET;RUNNER_TARGET" "" ${ARGN})
  if(NOT S_CONFIG_TARGET OR NOT S_RUNNER_TARGET)
    message(FATAL_ERROR "seedgrid_kind_set(${set}): CONFIG_TARGET and RUNNER_TARGET are required")
  endif()
  set_property(GLOBAL PROPERTY SEEDGRID_KIND_SET_${set}_CONFIG ${S_CONFIG_TARGET})
  set_property(GLOBAL PROPERTY SEEDGRID_KIND_SET_${set}_RUNNER ${S_RUNNER_TARGET})
  set_property(GLOBAL PROPERTY SEEDGRID_KIND_SET_${set}_KINDS "")
  # A deferred call's arguments are evaluated when it runs: EVAL fixes them now.
  cmake_language(EVAL CODE "cmake_language(DEFER CALL _seedgrid_kind_set_generate [[${set}]])")
endfunction()

# lora_steer -> LoraSteer
function(_seedgrid_camel name out)
  string(REPLACE "_" ";" parts "${name}")
  set(camel "")
  foreach(p IN LISTS parts)
    string(SUBSTRING "${p}" 0 1 head)
    string(SUBSTRING "${p}" 1 -1 tail)
    string(TOUPPER "${head}" head)
    string(APPEND camel "${head}${tail}")
  endforeach()
  set(${out} "${camel}" PARENT_SCOPE)
endfunction()

function(seedgrid_kind name dir)
  cmake_parse_arguments(K "TORCH" "SET" "" ${ARGN})
  if(NOT K_SET)
    set(K_SET Experiment)
  endif()
  if(NOT name MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "seedgrid_kind(${name}): a kind name is lower_snake_case")
  endif()
  get_property(config_target GLOBAL PROPERTY SEEDGRID_KIND_SET_${K_SET}_CONFIG)
  get_property(runner_target GLOBAL PROPERTY SEEDGRID_KIND_SET_${K_SET}_RUNNER)
  if(NOT config_target)
    message(FATAL_ERROR "seedgrid_kind(${name}): no seedgrid_kind_set(${K_SET} ...) before it")
  endif()
  if(K_TORCH AND NOT SEEDGRID_WITH_TORCH)
    return()
  endif()
  get_filename_component(kind_dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${kind_dir}/kind.cmake")
    message(FATAL_ERROR "seedgrid_kind(${name}): ${kind_dir}/kind.cmake not found")
  endif()
  set(KIND_CONFIG_SOURCES "")
  set(KIND_RUNNER_SOURCES "")
  set(KIND_TEST_SOURCES "")
  set(KIND_TEST_LIBS "")
  include("${kind_dir}/kind.cmake")
  list(TRANSFORM KIND_CONFIG_SOURCES PREPEND "${kind_dir}/")
  list(TRANSFORM KIND_RUNNER_SOURCES PREPEND "${kind_dir}/")
  list(TRANSFORM KIND_TEST_SOURCES PREPEND "${kind_dir}/")
  target_sources(${config_target} PRIVATE ${KIND_CONFIG_SOURCES})
  if(K_TORCH)
    target_sources(seedgrid_torch PRIVATE ${KIND_RUNNER_SOURCES})
  else()
    target_sources(${runner_target} PRIVATE ${KIND_RUNNER_SOURCES})
  endif()
  set_property(GLOBAL APPEND PROPERTY SEEDGRID_KIND_SET_${K_SET}_KINDS ${name})
  if(KIND_TEST_SOURCES AND SEEDGRID_BUILD_TESTS)
    list(JOIN KIND_TEST_SOURCES " " sources)
    list(JOIN KIND_TEST_LIBS " " libs)
    set(call "seedgrid_add_test(kind_${name}_test SOURCES ${sources} LIBS ${config_target} \
${runner_target} seedgrid_report ${libs} LABELS kinds)")
    if(COMMAND seedgrid_add_test)  # a kind under tests/ (GoogleTest is found there)
      cmake_language(EVAL CODE "${call}")
    else()  # experiments/ comes before tests/: tests/CMakeLists.txt adds it
      set_property(GLOBAL APPEND PROPERTY SEEDGRID_PENDING_KIND_TESTS "${call}")
    endif()
  endif()
endfunction()

function(_seedgrid_kind_set_generate set)
  get_property(config_target GLOBAL PROPERTY SEEDGRID_KIND_SET_${set}_CONFIG)
  get_property(runner_target GLOBAL PROPERTY SEEDGRID_KIND_SET_${set}_RUNNER)
  get_property(kinds GLOBAL PROPERTY SEEDGRID_KIND_SET_${set}_KINDS)
  set(decl_config "")
  set(call_config "")
  set(decl_runner "")
  set(call_runner "")
  foreach(k IN LISTS kinds)
    _seedgrid_camel(${k} camel)
    string(APPEND decl_config "void Register${camel}Config(KindRegistry& kinds);\n")
    string(APPEND call_config "  Register${camel}Config(kinds);\n")
    string(APPEND decl_runner "void Register${camel}Runners(RunnerRegistry& runners);\n")
    string(APPEND call_runner "  Register${camel}Runners(runners);\n")
  endforeach()
  set(head "// Generated by seedgrid_kind_set(${set}) (experiments/kinds.cmake): do not edit.\n")
  set(config_cpp "${CMAKE_CURRENT_BINARY_DIR}/${set}_kinds.cpp")
  set(runner_cpp "${CMAKE_CURRENT_BINARY_DIR}/${set}_runners.cpp")
  file(CONFIGURE OUTPUT "${config_cpp}" @ONLY CONTENT
       "${head}#include \"core/kinds.h\"\n\nnamespace seedgrid {\n\n${decl_config}\n\
void Register${set}Kinds(KindRegistry& kinds) {\n${call_config}}\n\n}  // namespace seedgrid\n")
  file(CONFIGURE OUTPUT "${runner_cpp}" @ONLY CONTENT
       "${head}#include \"core/runner.h\"\n\nnamespace seedgrid {\n\n${decl_runner}\n\
void Register${set}Runners(RunnerRegistry& runners) {\n${call_runner}}\n\n\
}  // namespace seedgrid\n")
  target_sources(${config_target} PRIVATE "${config_cpp}")
  target_sources(${runner_target} PRIVATE "${runner_cpp}")
endfunction()

# Adds the tests of the kinds registered before tests/CMakeLists.txt defined seedgrid_add_test.
function(seedgrid_add_kind_tests)
  get_property(calls GLOBAL PROPERTY SEEDGRID_PENDING_KIND_TESTS)
  foreach(call IN LISTS calls)
    cmake_language(EVAL CODE "${call}")
  endforeach()
  set_property(GLOBAL PROPERTY SEEDGRID_PENDING_KIND_TESTS "")
endfunction()

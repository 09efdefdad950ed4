# The LibTorch half of the experiments (included from experiments/CMakeLists.txt when
# SEEDGRID_WITH_TORCH). Translation units that include <torch/torch.h> cost ~40 s each: keep
# them few; the rest builds without LibTorch headers. The kinds' runners join seedgrid_torch from
# their folders (seedgrid_kind ... TORCH in experiments/CMakeLists.txt).
find_package(Torch REQUIRED PATHS /usr/lib/x86_64-linux-gnu/cmake/Torch)
# Imported targets are directory-scoped; the worker, tests and benchmarks link them through
# seedgrid_torch from other directories.
foreach(t IN ITEMS torch torch_cpu torch_cpu_library torch_library c10 torch_cuda c10_cuda
                   torch_cuda_library protobuf::libprotobuf)
  if(TARGET ${t})
    get_target_property(_aliased ${t} ALIASED_TARGET)
    get_target_property(_imported ${t} IMPORTED)
    if(NOT _aliased AND _imported)
      set_target_properties(${t} PROPERTIES IMPORTED_GLOBAL TRUE)
    endif()
  endif()
endforeach()

# Torch-free pieces the config halves need (ModelConfig validation, the synthetic task).
target_sources(seedgrid_kinds PRIVATE
  model/train_params.cpp
  data/synthetic.cpp
)

add_library(seedgrid_torch STATIC
  model/model.cpp
  model/adapters.cpp
  model/roles.cpp
  model/model_cli.cpp
  model/runtime_env.cpp
  data/tokens.cpp
)
target_link_libraries(seedgrid_torch PUBLIC seedgrid_kinds seedgrid_core ${TORCH_LIBRARIES})
target_include_directories(seedgrid_torch PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(seedgrid_torch PRIVATE -Wall -Wextra -Wno-unused-parameter)
# CUDA builds bind a device per local rank; the CPU build never touches CUDA.
if(SEEDGRID_WITH_CUDA)
  target_compile_definitions(seedgrid_torch PRIVATE SEEDGRID_WITH_CUDA=1)
endif()

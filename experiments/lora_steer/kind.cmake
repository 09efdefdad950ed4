# kind `lora_steer` (experiments/CMakeLists.txt: seedgrid_kind(lora_steer lora_steer TORCH)).
set(KIND_CONFIG_SOURCES config.cpp)      # defaults, validation, report defaults (no LibTorch)
set(KIND_RUNNER_SOURCES lora_steer.cpp text_steer.cpp)  # the LibTorch runner

# harvest tests (experiments/harvest/). The accumulator, file and gang tests need only the
# torch-free seedgrid_harvest; the end-to-end cases run RunPretrain/RunHarvest, hence
# seedgrid_torch (the test file itself includes no LibTorch header).
if(TARGET seedgrid_harvest)
  seedgrid_add_test(harvest_test
    SOURCES harvest_test.cpp
    LIBS seedgrid_harvest seedgrid_torch seedgrid_kinds Threads::Threads
    LABELS experiments)
  target_compile_definitions(harvest_test PRIVATE SEEDGRID_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
# harvest over a text corpus (experiments/harvest/text.h): decoding, plan-time checks, and the
# text path against a file of the same ids through RunHarvest.
if(TARGET seedgrid_harvest)
  seedgrid_add_test(harvest_text_test
    SOURCES harvest_text_test.cpp
    LIBS seedgrid_harvest seedgrid_torch seedgrid_kinds
    LABELS experiments)
endif()

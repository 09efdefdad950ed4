# kinds `chaos` and `noop` (experiments/CMakeLists.txt: seedgrid_kind(chaos chaos)). Both halves
# are torch-free and small, so they share chaos.cpp, which joins the config target (the runner
# registration links it from there).
set(KIND_CONFIG_SOURCES chaos.cpp)

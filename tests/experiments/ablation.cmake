# kind `ablation`: variants, batched evaluation, head scores, runners (one LibTorch test TU).
seedgrid_add_test(ablation_test
  SOURCES ablation_test.cpp
  LIBS seedgrid_torch
  LABELS experiments)

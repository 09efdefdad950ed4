# kind: command (no LibTorch): placeholders, the code digest, the metrics files.
seedgrid_add_test(command_test
  SOURCES command_test.cpp
  LIBS seedgrid_command)

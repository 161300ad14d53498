"""Host software: toolchain plumbing, Verilog generation, FPGA builds and the CLI."""

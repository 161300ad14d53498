"""FPGA board tops: one file per board, plus the shared pieces they are built from."""

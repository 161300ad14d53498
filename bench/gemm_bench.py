"""GEMM benchmark: end-to-end utilization of the accelerator's Verilog (Verilator, cocotb
host and AxiRam memory without back-pressure), per shape.

Utilization is ``M*K*N / (cycles * dim * dim)`` with ``cycles`` the accelerator's CYCLES
counter from RUN to END (DMA, all three units, host pushes included). The compute phase is
EXEC_CYCLES / EXEC_BUSY: of the cycles the EXEC unit had an instruction (its operands on
chip), those in which an activation row entered the array.
"""

from sw.gemm_sim import run_compute_phase, run_gemms

__all__ = ["SHAPES", "compute_phase", "gemm_utilization"]

#: (M, K, N): the 256^3 target, batch 1 and small batches, square and skinny shapes.
SHAPES = [(256, 256, 256), (1, 256, 256), (8, 256, 256), (64, 256, 256), (256, 64, 256),
          (128, 128, 128), (64, 64, 64), (16, 16, 16)]


def gemm_utilization(config, build_dir, shapes=SHAPES, seed=1):
    """One report per shape (see :mod:`sim.tb_accelerator`), int32 outputs."""
    gemms = [dict(m=m, k=k, n=n, seed=seed, requant=False) for m, k, n in shapes]
    return run_gemms(config, gemms, simulator="verilator", build_dir=build_dir)


def compute_phase(config, build_dir, tiles=32, rows=256):
    """EXEC_CYCLES / EXEC_BUSY with the operands on chip (see
    :func:`sim.tb_accelerator.compute_phase_program`)."""
    report = run_compute_phase(config, tiles, rows, build_dir=build_dir)
    return report["exec_cycles"] / report["exec_busy"], report

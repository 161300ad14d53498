"""DMA benchmark: beats per cycle of the generated Verilog against cocotbext-axi's AxiRam,
and the engines' cost after yosys ``synth_ecp5``.

:func:`dma_throughput` runs the ``throughput`` test of ``sim.tb_dma`` (long contiguous
transfers, short strided rows, read, write and both at once, every result checked) under
Verilator for each memory condition of :data:`CONDITIONS`. :func:`dma_cost` counts the cells
of the read and write engines.
"""

import json

from hdl.dma import DMA
from hdl.dma_read import DMAReader
from hdl.dma_write import DMAWriter
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import write_component_verilog

__all__ = ["CONDITIONS", "dma_cost", "dma_throughput"]

TOP = "tessera_dma"

#: Memory conditions: (label, probability of a pause cycle on every AxiRam channel, extra
#: read latency in cycles on top of AxiRam's own).
CONDITIONS = [
    ("memory without back-pressure", 0.0, 0),
    ("memory with 25% pause cycles on every channel", 0.25, 0),
    ("memory without back-pressure, read latency +32 cycles", 0.0, 32),
]


def dma_throughput(config, build_dir, *, stall, latency, seed=1):
    """{scenario: {"beats", "cycles", "beats_per_cycle"}} of ``sim.tb_dma.throughput``."""
    build_dir.mkdir(parents=True, exist_ok=True)
    source = write_component_verilog(DMA(config), TOP, build_dir)
    out = build_dir / "throughput.json"
    out.unlink(missing_ok=True)
    run_cocotb(sources=[source], toplevel=TOP, test_module="sim.tb_dma",
               build_dir=build_dir / "sim_build", testcase="throughput",
               env={"TESSERA_CONFIG": config_to_env(config), "TESSERA_SEED": str(seed),
                    "TESSERA_STALL": str(stall), "TESSERA_LATENCY": str(latency),
                    "TESSERA_BENCH_OUT": str(out)})
    return json.loads(out.read_text())


def dma_cost(config, build_dir, family="ecp5"):
    """{block: cell counts} of the read engine, the write engine and both, after yosys
    ``synth_<family>`` (no place and route)."""
    from sw.synth import synth_cells
    cost = {}
    for name, block in [("read engine", DMAReader(config)), ("write engine", DMAWriter(config)),
                        ("read + write engines", DMA(config))]:
        folder = build_dir / name.replace(" ", "_").replace("+", "and")
        folder.mkdir(parents=True, exist_ok=True)
        cost[name] = synth_cells(block, family, folder)
    return cost


def lut_ff(cells):
    """(LUT4, flip-flops, DP16KD block RAMs, TRELLIS_DPR16X4 distributed RAMs) of ECP5 cells."""
    flops = sum(n for name, n in cells.items() if name.startswith("TRELLIS_FF"))
    return (cells.get("LUT4", 0), flops, cells.get("DP16KD", 0),
            cells.get("TRELLIS_DPR16X4", 0))

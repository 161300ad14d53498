"""The generated Verilog of the post-processing block under Verilator and Icarus, via cocotb.

The quick cases run the bulk of the random rows under Verilator and a smaller run under Icarus
(much slower per cycle); the other presets and variants are marked slow.
"""

import pytest
from conftest import SIMULATORS, require_simulator

from hdl.config import TesseraConfig, preset
from hdl.postproc import PostProcess
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import write_component_verilog

TOP = "tessera_postproc"

#: Rows of the random workload per simulator: Verilator is fast, Icarus much slower.
ROWS = {"verilator": 6_000, "icarus": 1_000}

QUICK = [
    # (simulator, config, seed, stall probability)
    ("verilator", preset("tiny"), 21, 0.2),
    ("icarus", preset("micro"), 22, 0.3),
]
SLOW = [(simulator, config, seed, stall) for simulator in SIMULATORS
        for config, seed, stall in [
            (preset("small").replace(postproc_lanes=2), 27, 0.2),
            (TesseraConfig(name="dim3-acc16-lut", dim=3, acc_width=16, multiplier="lut"), 24, 0.3),
        ]] + [("verilator", preset("micro"), 25, 0.3), ("icarus", preset("tiny"), 26, 0.2),
              # small itself on Icarus only (a Verilator build of it takes 25 s)
              ("icarus", preset("small"), 23, 0.0)]
CASES = [pytest.param(*case, id=f"{case[0]}-{case[1].name}-seed{case[2]}-stall{case[3]}")
         for case in QUICK] + [
        pytest.param(*case, id=f"{case[0]}-{case[1].name}-seed{case[2]}-stall{case[3]}",
                     marks=pytest.mark.slow) for case in SLOW]


def write_verilog(config, build_dir):
    """The block's Verilog in ``build_dir``; returns (the block, the file)."""
    dut = PostProcess(config)
    return dut, write_component_verilog(dut, TOP, build_dir)


@pytest.mark.parametrize("simulator, config, seed, stall", CASES)
def test_postproc_verilog(simulator, config, seed, stall, build_dir):
    require_simulator(simulator)
    # The same number of lanes for every width (wider rows take fewer of them), and about the
    # same number of cycles for a serial multiply (a row takes multiply_cycles times longer).
    rows = min(ROWS[simulator], ROWS[simulator] * 4 // config.dim) // (
        config.postproc_multiply_cycles)
    print(f"simulator={simulator} seed={seed} stall={stall} rows={rows} config={config}")
    dut, source = write_verilog(config, build_dir)
    run_cocotb(sources=[source], toplevel=TOP, test_module="sim.tb_postproc",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env={"TESSERA_CONFIG": config_to_env(config), "TESSERA_SEED": str(seed),
                    "TESSERA_STALL": str(stall), "TESSERA_ROWS": str(rows),
                    "TESSERA_LATENCY": str(dut.latency),
                    "TESSERA_ACCEPT_DELAY": str(dut.accept_delay),
                    "TESSERA_MIN_TILE_ROWS": str(dut.min_tile_rows)})

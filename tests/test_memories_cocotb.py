"""The generated Verilog of the scratchpad and the accumulator, on both simulators."""

import re

import pytest
from conftest import SIMULATORS, require_simulator
from test_memories import SameCycleWrites

from hdl.config import TesseraConfig, preset
from hdl.scratchpad import Scratchpad
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import SRAMMacros, write_component_verilog, write_sram_verilog

CASES = [
    # (memory, config, seed, stall probability)
    ("scratchpad", preset("tiny"), 21, 0.0),
    ("scratchpad", TesseraConfig(dim=3, sp_depth=32, sp_single_port=True, addr_width=8), 22, 0.3),
    ("accumulator", preset("tiny"), 23, 0.0),
    ("accumulator", TesseraConfig(dim=3, sp_depth=32, acc_depth=16, addr_width=8), 24, 0.3),
]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("memory, config, seed, stall", CASES,
                         ids=[f"{m}-{c.name}-seed{s}-stall{p}" for m, c, s, p in CASES])
def test_memory_verilog(simulator, memory, config, seed, stall, build_dir):
    require_simulator(simulator)
    print(f"simulator={simulator} memory={memory} seed={seed} stall={stall} config={config}")
    # The accumulator: its rows with their addresses (the testbench's protocol) at any clock.
    component = (Scratchpad if memory == "scratchpad" else SameCycleWrites)(config)
    source = write_component_verilog(component, f"tessera_{memory}", build_dir)
    run_cocotb(sources=[source], toplevel=f"tessera_{memory}", test_module="sim.tb_memories",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env={"TESSERA_CONFIG": config_to_env(config), "TESSERA_MEMORY": memory,
                    "TESSERA_SEED": str(seed), "TESSERA_STALL": str(stall),
                    "TESSERA_COUNT": "600"})


@pytest.mark.parametrize("memory", ["scratchpad", "accumulator"])
def test_sram_macro_seam(memory, build_dir):
    """With the foundry platform every bank is an instance of the named shape module; the
    design with the separately emitted behavioural bodies passes the same random test."""
    config = preset("tiny")
    component = (Scratchpad if memory == "scratchpad" else SameCycleWrites)(config)
    shapes = component.sram_shapes
    top = write_component_verilog(component, f"tessera_{memory}", build_dir,
                                  platform=SRAMMacros())
    text = top.read_text()
    (depth, width), = set(shapes)
    module = f"tessera_sram_1r1w_{depth}x{width}"
    assert text.count(f"{module} ") == len(shapes) == 2, "one instance per bank"
    assert f"module {module}" not in text
    inline = re.search(rf"reg \[\d+:0\] \S+ \[{depth - 1}:0\];", text)
    assert inline is None, f"a bank-sized memory array is still inline: {inline}"
    srams = write_sram_verilog(shapes, build_dir)
    assert srams.read_text().count("module ") == 2   # the shape and its inner memory
    run_cocotb(sources=[top, srams], toplevel=f"tessera_{memory}",
               test_module="sim.tb_memories", build_dir=build_dir / "sim_build",
               env={"TESSERA_CONFIG": config_to_env(config), "TESSERA_MEMORY": memory,
                    "TESSERA_SEED": "25", "TESSERA_STALL": "0.2", "TESSERA_COUNT": "400"})

"""The generated Verilog of the scratchpad and the accumulator, on both simulators."""

import pytest
from conftest import SIMULATORS, require_simulator

from hdl.accumulator import Accumulator
from hdl.config import TesseraConfig, preset
from hdl.scratchpad import Scratchpad
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import write_component_verilog

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
    component = (Scratchpad if memory == "scratchpad" else Accumulator)(config)
    source = write_component_verilog(component, f"tessera_{memory}", build_dir)
    run_cocotb(sources=[source], toplevel=f"tessera_{memory}", test_module="sim.tb_memories",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env={"TESSERA_CONFIG": config_to_env(config), "TESSERA_MEMORY": memory,
                    "TESSERA_SEED": str(seed), "TESSERA_STALL": str(stall),
                    "TESSERA_COUNT": "600"})

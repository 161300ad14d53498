"""The generated Verilog of the array under Verilator and Icarus, driven by cocotb."""

import pytest
from conftest import SIMULATORS, require_simulator

from hdl.config import TesseraConfig, preset
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import ARRAY_TOP, write_array_verilog

CASES = [
    # (config, seed, stall probability)
    (preset("tiny"), 11, 0.0),
    (preset("tiny"), 12, 0.3),
    (preset("micro"), 13, 0.3),
    (TesseraConfig(dim=3, acc_width=16, act_signed=False), 14, 0.2),
    (preset("small"), 15, 0.2),
]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("config, seed, stall", CASES,
                         ids=[f"{c.name}-dim{c.dim}-seed{s}-stall{p}" for c, s, p in CASES])
def test_array_verilog(simulator, config, seed, stall, build_dir):
    require_simulator(simulator)
    print(f"simulator={simulator} seed={seed} stall={stall} config={config}")
    source = write_array_verilog(config, build_dir)
    run_cocotb(sources=[source], toplevel=ARRAY_TOP, test_module="sim.tb_systolic",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env={"TESSERA_CONFIG": config_to_env(config), "TESSERA_SEED": str(seed),
                    "TESSERA_STALL": str(stall), "TESSERA_TILES": "8"})

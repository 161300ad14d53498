"""The foundry handoff bundle (sw/bundle.py): complete, plain, lint-clean and still right.

Lint times on the 2-core machine (generate, Verilator twice, yosys coarse synthesis):
micro ~16 s, tiny ~12 s, small ~35 s, large ~60 s, asic ~95 s: the suite lints micro, tiny
(tests/test_lint.py, through ``make lint``'s entry point) and (slow) asic; ``make lint`` all
five.
"""

import json
import re

import pytest
from conftest import require_simulator

from hdl.accumulator import Accumulator
from hdl.config import PRESETS
from hdl.registers import tessera_register_map
from hdl.scratchpad import Scratchpad
from sw.bundle import BUNDLE_TOP, read_bundle, write_bundle
from sw.cli import main
from sw.gemm_sim import run_gemms
from sw.lint import format_result, lint_bundle
from sw.regmap import c_header

_MODULE = re.compile(r"^module (\S+?)\(", re.M)
_INSTANCE = re.compile(r"^  (\w+) (\w+) \($", re.M)


def _expected_shapes(config):
    """(depth, width) -> instances, from the memory blocks themselves (not the Verilog)."""
    shapes = {}
    blocks = [Scratchpad(config), Accumulator(config)]
    for block in blocks:
        block._MustUse__silence = True     # built for its shapes only, never elaborated
    for shape in blocks[0].sram_shapes + blocks[1].sram_shapes:
        shapes[shape] = shapes.get(shape, 0) + 1
    return shapes


@pytest.mark.parametrize("name", ["micro", "tiny"])
def test_config_json_names_the_files_and_the_top(name, build_dir):
    check_bundle(PRESETS[name], write_bundle(PRESETS[name], build_dir), build_dir)


@pytest.mark.slow
def test_asic_bundle_is_complete_and_lints_clean(build_dir):
    """The foundry's preset: one generation (about 20 s) for both checks."""
    bundle = write_bundle(PRESETS["asic"], build_dir)
    check_bundle(PRESETS["asic"], bundle, build_dir)
    result = lint_bundle(PRESETS["asic"], bundle=bundle)
    assert result.passed, format_result(result)
    assert sum(result.waived_by_rule.values()) > 0, "Verilator did not really run"


def check_bundle(config, bundle, build_dir):
    """The bundle ``bundle`` of ``config``, written into ``build_dir``, is complete: its
    config.json names existing files and the top, memories are macros exactly when they must
    be, the constraints, C header and README match the design."""
    name = config.name
    data, files = read_bundle(build_dir)
    assert data["DESIGN_NAME"] == BUNDLE_TOP
    for key in ("VERILOG_FILES", "PNR_SDC_FILE", "SIGNOFF_SDC_FILE"):
        for entry in data[key] if isinstance(data[key], list) else [data[key]]:
            assert entry.startswith("dir::"), (key, entry)
            assert (build_dir / entry.removeprefix("dir::")).is_file(), (key, entry)
    assert all(path.is_file() for path in files)
    assert data["CLOCK_PERIOD"] == pytest.approx(1000.0 / config.target_mhz, abs=1e-3)

    # The top it names is defined once and instantiated by nobody: it is the top.
    rtl = "\n".join((build_dir / f.removeprefix("dir::")).read_text()
                    for f in data["VERILOG_FILES"])
    modules = _MODULE.findall(rtl)
    assert modules.count(BUNDLE_TOP) == 1
    instantiated = {module for module, _ in _INSTANCE.findall(rtl)}
    assert BUNDLE_TOP not in instantiated
    assert instantiated <= set(modules) | {m.module for m in bundle.memories}
    top_header = rtl[rtl.index(f"module {BUNDLE_TOP}("):]
    assert f"input {data['CLOCK_PORT']};" in top_header[:top_header.index("endmodule")]

    # Memories: as macros exactly when one is too large for flip-flops, and then given as
    # black boxes; the shapes are those of the memory blocks.
    assert {(m.depth, m.width): m.instances for m in bundle.memories} == \
        _expected_shapes(config)
    macros = "EXTRA_VERILOG_MODELS" in data
    assert macros == (name != "micro")
    blackboxes = (build_dir / "tessera_srams_bb.v").read_text()
    for memory in bundle.memories:
        assert f"module {memory.module}(" in blackboxes
        assert (memory.module in rtl) and (f"module {memory.module}(" in rtl) != macros
        assert f"| `{memory.module}` | {memory.depth} | {memory.width} | {memory.instances} |" \
            in (build_dir / "README.md").read_text()

    sdc = (build_dir / "constraints.sdc").read_text()
    assert re.search(rf"create_clock -name clk -period {1000.0 / config.target_mhz:.3f} "
                     r"\[get_ports clk\]", sdc)
    assert "rst" in re.search(r"set_input_delay .*", sdc)[0]
    assert (build_dir / "tessera_regs.h").read_text() == c_header(tessera_register_map(config))
    readme = (build_dir / "README.md").read_text()
    for register in tessera_register_map(config):
        assert f"| {register.offset:#05x} | {register.name} |" in readme


def test_verilog_has_plain_identifiers_only(build_dir):
    write_bundle(PRESETS["micro"], build_dir)
    for path in build_dir.glob("*.v"):
        text = path.read_text()
        assert "\\" not in text, f"{path.name}: escaped identifier"
        assert "initial" not in text, f"{path.name}: initial values"
        if path.name != "tessera_srams_bb.v":      # there, (* blackbox *) is the point
            assert "(*" not in text, f"{path.name}: attributes"
        for module in _MODULE.findall(text):
            assert re.fullmatch(r"[a-z][a-z0-9_]*", module), module


@pytest.mark.parametrize("name", ["micro"])
def test_bundle_lints_clean(name, build_dir):
    """The preset Tiny Tapeout and the gate-level runs use (tiny: tests/test_lint.py's
    ``make lint`` entry point; asic: above; ``make lint`` covers small and large as well)."""
    result = lint_bundle(PRESETS[name], build_dir)
    assert result.passed, format_result(result)
    assert sum(result.waived_by_rule.values()) > 0, "Verilator did not really run"


def test_bundle_lint_catches_a_latch(build_dir):
    """The bundle's waivers hide nothing real: a latch added to the shipped Verilog fails."""
    write_bundle(PRESETS["micro"], build_dir)
    top = build_dir / "tessera_top.v"
    text = top.read_text()
    end = text.index("endmodule")
    top.write_text(text[:end] + "  reg held;\n  always @* begin\n    if (rst) held = clk;\n"
                   "  end\n" + text[end:])
    from sw.lint import lint_verilog
    result = lint_verilog([top, build_dir / "tessera_srams.v"], BUNDLE_TOP,
                          build_dir / "lint_waivers.vlt", coarse=True)
    assert not result.passed
    assert result.unwaived_by_rule["LATCH"] == 1, format_result(result)


@pytest.mark.parametrize("name", ["micro", "tiny"])
def test_bundle_runs_gemms_bit_exact(name, build_dir):
    """The shipped RTL (memories mapped to flip-flops, multiplexers rewritten, aliases
    dropped) still computes: GEMMs on Icarus against the golden model."""
    require_simulator("icarus")
    config = PRESETS[name]
    write_bundle(config, build_dir)
    gemms = [dict(m=3, k=5, n=4, seed=11, requant=False),
             dict(m=2 * config.dim + 1, k=3, n=config.dim + 1, seed=12, requant=True)]
    reports = run_gemms(config, gemms, simulator="icarus", build_dir=build_dir / "sim",
                        sources=[build_dir / "tessera_top.v", build_dir / "tessera_srams.v"])
    assert [r["match"] for r in reports] == [True, True], json.dumps(reports)[:2000]


def test_cli_writes_the_bundle(build_dir, capsys):
    assert main(["verilog", "--config", "micro", "-o", str(build_dir)]) == 0
    listed = capsys.readouterr().out.split()
    for name in ("tessera_top.v", "tessera_srams.v", "config.json", "constraints.sdc",
                 "tessera_regs.h", "README.md"):
        assert str(build_dir / name) in listed

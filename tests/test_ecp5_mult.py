"""ECP5Multiplier: its registered-``*`` model in the Amaranth simulator (held weight, one
cycle to the product), and the MULT18X18D it becomes on an ECP5 (parameters and wiring as
yosys receives them: yosys has no simulation model of the block)."""

import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from hdl.ecp5_mult import ECP5Multiplier

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

"""Stream drivers shared by the cocotb testbenches (ports flattened as ``<name>__valid`` etc.).

Every coroutine writes its signals right after a rising edge and samples handshakes in the
ReadOnly phase, so a beat moves exactly when ``valid`` and ``ready`` are both high at an edge.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["receive_beats", "send_beats", "start_clock_and_reset"]


async def start_clock_and_reset(dut, inputs, cycles=3):
    """Start a 100 MHz clock on ``dut.clk``, drive every name in ``inputs`` to 0 and hold
    ``dut.rst`` for ``cycles`` cycles.

    Every input is driven from time 0: an undriven input is X in a 4-state simulator (Icarus)
    but 0 in Verilator, which would make the two disagree.
    """
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in inputs:
        getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def send_beats(dut, prefix, beats, idle=lambda: 0):
    """Drive ``beats`` (packed integers) onto stream ``prefix``; before each beat ``valid``
    stays low for ``idle()`` cycles."""
    valid = getattr(dut, f"{prefix}__valid")
    ready = getattr(dut, f"{prefix}__ready")
    payload = getattr(dut, f"{prefix}__payload")
    for beat in beats:
        for _ in range(idle()):
            valid.value = 0
            await RisingEdge(dut.clk)
        valid.value = 1
        payload.value = beat
        while True:
            await ReadOnly()
            fired = ready.value == 1
            await RisingEdge(dut.clk)
            if fired:
                break
    valid.value = 0


async def receive_beats(dut, prefix, count, idle=lambda: 0):
    """Collect ``count`` beats (packed integers) from stream ``prefix``; each cycle ``ready``
    is low when ``idle()`` is non-zero."""
    valid = getattr(dut, f"{prefix}__valid")
    ready = getattr(dut, f"{prefix}__ready")
    payload = getattr(dut, f"{prefix}__payload")
    out = []
    while len(out) < count:
        stalled = bool(idle())
        ready.value = 0 if stalled else 1
        await ReadOnly()
        if not stalled and valid.value == 1:
            value = payload.value
            assert value.is_resolvable, f"{prefix} payload is X/Z while valid: {value}"
            out.append(value.to_unsigned())
        await RisingEdge(dut.clk)
    ready.value = 0
    return out

"""The accelerator's performance counters: ``config.perf_counter_width`` bits (CYCLES twice as
many), wrapping, read zero-extended through the register bank."""

import pytest
from amaranth.sim import Simulator
from test_axi_lite import axi_read, axi_write

from hdl.config import preset
from hdl.isa import Opcode
from hdl.top import Accelerator
from sw.assembler import Instruction, to_words

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6


def counters_after_a_stall(width, cycles=100):
    """CYCLES and STALL_DEPENDENCY after ``cycles`` of RUN with an EXEC that waits for a
    token that never comes (both count every cycle of it)."""
    dut = Accelerator(preset("micro").replace(perf_counter_width=width))
    offsets = {reg.name: reg.offset for reg in dut.register_map.registers}
    waiting = Instruction(Opcode.EXEC, dict(weight_addr=0, act_addr=0, acc_addr=0, rows=1,
                                            preload=0, accumulate=0), pop_prev=True)
    seen = {}

    async def bench(ctx):
        for word in to_words(waiting):
            await axi_write(ctx, dut.csr, offsets["INSN"], word)
        await axi_write(ctx, dut.csr, offsets["CONTROL"], 1)  # RUN
        for _ in range(cycles):
            await ctx.tick()
        await axi_write(ctx, dut.csr, offsets["CONTROL"], 0)  # counting stops
        for name in ("CYCLES_LO", "CYCLES_HI", "STALL_DEPENDENCY"):
            seen[name], _ = await axi_read(ctx, dut.csr, offsets[name])

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    return seen["CYCLES_LO"] | seen["CYCLES_HI"] << 32, seen["STALL_DEPENDENCY"]


def test_counters_wrap_at_their_width():
    wide_cycles, wide_stalls = counters_after_a_stall(32)
    assert 100 <= wide_cycles < 110 and 90 <= wide_stalls < 120
    narrow_cycles, narrow_stalls = counters_after_a_stall(3)
    assert (narrow_cycles, narrow_stalls) == (wide_cycles % (1 << 6), wide_stalls % (1 << 3))


#: An EXEC that waits for a token that never comes.
WAITING_EXEC = Instruction(Opcode.EXEC, dict(weight_addr=0, act_addr=0, acc_addr=0, rows=1,
                                             preload=0, accumulate=0), pop_prev=True)
#: A LOAD whose DMA read is never answered: LOAD_BUSY and STALL_MEMORY count every cycle.
STUCK_LOAD = Instruction(Opcode.LOAD, dict(sp_addr=0, rows=1, dram_addr=0, dram_stride=0))


def counter_reads(perf_ram, width, waiting=WAITING_EXEC, cycles=700, every=37):
    """Every counter, read every ``every`` cycles of a RUN stalled by ``waiting``, then under
    PERF_CLEAR and after it, under SOFT_RESET and after it, from an accelerator whose counters
    are flip-flops or (``perf_ram``) mostly a block RAM."""
    dut = Accelerator(preset("micro").replace(perf_counter_width=width), perf_ram=perf_ram)
    regs = {reg.name: reg.offset for reg in dut.register_map.registers
            if reg.offset >= 0x80}
    seen = []

    async def read_all(ctx):
        for name, offset in regs.items():
            seen.append((name, (await axi_read(ctx, dut.csr, offset))[0]))

    async def bench(ctx):
        for word in to_words(waiting):
            await axi_write(ctx, dut.csr, 0x50, word)
        await axi_write(ctx, dut.csr, 0x20, 1)  # RUN
        for i in range(cycles):
            await ctx.tick()
            if i % every == 0:
                await read_all(ctx)
        await axi_write(ctx, dut.csr, 0x20, 0b101)  # RUN, PERF_CLEAR
        await read_all(ctx)
        await axi_write(ctx, dut.csr, 0x20, 1)
        for _ in range(300):
            await ctx.tick()
        await read_all(ctx)
        await axi_write(ctx, dut.csr, 0x20, 0b011)  # RUN, SOFT_RESET
        await read_all(ctx)
        await axi_write(ctx, dut.csr, 0x20, 0)
        for word in to_words(waiting):
            await axi_write(ctx, dut.csr, 0x50, word)
        await axi_write(ctx, dut.csr, 0x20, 1)
        for _ in range(100):
            await ctx.tick()
        await read_all(ctx)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_ram_counters_read_as_flip_flop_ones():
    for width in (24, 32):
        flops = counter_reads(False, width)
        assert max(value for name, value in flops if name == "CYCLES_LO") > 1000
        assert counter_reads(True, width) == flops


def test_narrow_low_parts_read_as_flip_flop_counters():
    """The RAM counters' flip-flop low parts are narrow (6 bits for a counter that counts at
    most 1 a cycle): they still read as the flip-flop counters while LOAD_BUSY and
    STALL_MEMORY count every cycle."""
    flops = counter_reads(False, 24, STUCK_LOAD)
    assert max(value for name, value in flops if name == "LOAD_BUSY") > 500
    assert max(value for name, value in flops if name == "STALL_MEMORY") > 500
    assert counter_reads(True, 24, STUCK_LOAD) == flops

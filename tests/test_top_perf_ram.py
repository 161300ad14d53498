"""The RAM-based performance counters with narrow flip-flop parts (6 bits for a counter that
counts at most 1 a cycle) read as the flip-flop counters, while LOAD_BUSY and STALL_MEMORY
count every cycle (a LOAD whose DMA read is never answered)."""

from amaranth.sim import Simulator
from test_axi_lite import axi_read, axi_write

from hdl.config import preset
from hdl.isa import Opcode
from hdl.top import Accelerator
from sw.assembler import Instruction, to_words

CLOCK = 1e-6


def busy_counter_reads(perf_ram, cycles=600, every=29):
    dut = Accelerator(preset("micro").replace(perf_counter_width=24), perf_ram=perf_ram)
    regs = {reg.name: reg.offset for reg in dut.register_map.registers if reg.offset >= 0x80}
    stuck = Instruction(Opcode.LOAD, dict(sp_addr=0, rows=1, dram_addr=0, dram_stride=0))
    seen = []

    async def read_all(ctx):
        for name, offset in regs.items():
            seen.append((name, (await axi_read(ctx, dut.csr, offset))[0]))

    async def bench(ctx):
        for word in to_words(stuck):
            await axi_write(ctx, dut.csr, 0x50, word)
        await axi_write(ctx, dut.csr, 0x20, 1)  # RUN
        for i in range(cycles):
            await ctx.tick()
            if i % every == 0:
                await read_all(ctx)
        await axi_write(ctx, dut.csr, 0x20, 0b101)  # RUN, PERF_CLEAR
        await axi_write(ctx, dut.csr, 0x20, 1)
        for _ in range(200):
            await ctx.tick()
        await read_all(ctx)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_narrow_low_parts_read_as_flip_flop_counters():
    flops = busy_counter_reads(False)
    assert max(value for name, value in flops if name == "LOAD_BUSY") > 500
    assert max(value for name, value in flops if name == "STALL_MEMORY") > 500
    assert busy_counter_reads(True) == flops

"""The skid buffer and the ping-pong buffer: every beat once and in order under random
stalls, full rate without them, and no combinational path through either."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.pingpong_buffer import PingPongBuffer
from hdl.skid_buffer import SkidBuffer
from sim.streams import idle_cycles, stream_put

CLOCK = 1e-6
BUFFERS = pytest.mark.parametrize("buffer", [SkidBuffer, PingPongBuffer],
                                  ids=["skid", "pingpong"])


def run(buffer, beats, *, seed, in_stall, out_stall):
    rng = np.random.default_rng(seed)
    dut = buffer(8)
    got, cycles = [], []

    async def producer(ctx):
        for beat in beats:
            await stream_put(ctx, dut.i, beat, idle=idle_cycles(rng, in_stall))

    async def consumer(ctx):
        cycle = 0
        while len(got) < len(beats):
            ready = not (out_stall and rng.random() < out_stall)
            ctx.set(dut.o.ready, ready)
            # Whatever o.ready is now, i.ready and o.valid are what the registers say.
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append(payload)
                cycles.append(cycle)
            cycle += 1
            assert cycle < 20 * len(beats) + 20, f"{len(got)} of {len(beats)} beats"

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got, cycles


@BUFFERS
@pytest.mark.parametrize("in_stall, out_stall", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5),
                                                 (0.4, 0.4)])
def test_every_beat_once_in_order(buffer, in_stall, out_stall):
    seed = 7 + int(10 * in_stall) + int(100 * out_stall)
    print(f"seed={seed} in_stall={in_stall} out_stall={out_stall}")
    rng = np.random.default_rng(seed)
    beats = [0, 255, 128, 127] + [int(b) for b in rng.integers(0, 256, 300)]
    got, cycles = run(buffer, beats, seed=seed, in_stall=in_stall, out_stall=out_stall)
    assert got == beats
    if not in_stall and not out_stall:  # one beat per cycle, one cycle late
        assert cycles == list(range(1, len(beats) + 1))


@BUFFERS
def test_ready_and_valid_are_registers(buffer):
    """Changing o.ready or i.valid within a cycle changes neither i.ready nor o.valid."""
    dut = buffer(8)

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 5)
        ctx.set(dut.o.ready, 0)
        await ctx.tick()  # beat 5 into the output register
        ctx.set(dut.i.payload, 6)
        await ctx.tick()  # beat 6 into the second register (the output stalls)
        for o_ready in (0, 1, 0):
            for i_valid in (0, 1):
                ctx.set(dut.o.ready, o_ready)
                ctx.set(dut.i.valid, i_valid)
                assert (ctx.get(dut.i.ready), ctx.get(dut.o.valid)) == (0, 1)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 0)
        await ctx.tick()  # 5 leaves, 6 is next
        assert (ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload)) == (1, 1, 6)
        await ctx.tick()  # 6 leaves: empty
        assert (ctx.get(dut.i.ready), ctx.get(dut.o.valid)) == (1, 0)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()

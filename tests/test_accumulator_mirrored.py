"""The accumulator's mirrored variant (two copies of all rows; iCE40 at slow clocks) in the
Amaranth simulator, against the golden model, and when it is chosen."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.accumulator import Accumulator
from hdl.config import preset
from sim.model import AccumulatorModel
from sim.streams import stream_get, stream_put
from sim.workload import random_operands
from tests.test_memories import (
    CLOCK,
    SMALL,
    SameCycleWrites,
    check_answers,
    random_addresses,
    run_memory,
)

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

#: One post-processing lane: a row every 3 cycles, a read buffer of one row.
SLOW = SMALL.replace(postproc_lanes=1, target_mhz=30.0)


def mirrored_dut(config):
    dut = SameCycleWrites(config)
    dut.accumulator._MustUse__silence = True  # replaced, never built
    dut.accumulator = Accumulator(config, mirrored=True)
    return dut


@pytest.mark.parametrize("stall", [0.0, 0.3, 0.7], ids=["idle", "stalls", "slow-reader"])
def test_mirrored_random(stall):
    """Random writes (mostly accumulates, hot rows) and reads, against the model: a read sees
    exactly the writes accepted before it, also while its answer waits to be taken."""
    seed = 70 + int(stall * 10)
    print(f"seed={seed} stall={stall}")
    rng = np.random.default_rng(seed)
    hot = [0, 5, SLOW.acc_depth - 1]
    waddr = random_addresses(rng, 400, SLOW.acc_depth, SLOW.addr_width, hot, 0.03)
    writes = [{"addr": a, "accumulate": int(rng.random() < 0.7),
               "row": [int(v) for v in random_operands(rng, 3, 32, True)]} for a in waddr]
    reads = random_addresses(rng, 300, SLOW.acc_depth, SLOW.addr_width, hot, 0.03)
    log, answers, error = run_memory(mirrored_dut(SLOW), writes, reads, seed=seed, stall=stall)
    model = AccumulatorModel(SLOW)
    check_answers(log, answers, model, f"seed={seed}")
    assert error == model.error == True  # noqa: E712


def test_mirrored_timing():
    """An answer two cycles after its request (as banked), one read every 3 cycles, none
    held up by accumulates (its copy has its own read port); a read of the row written in
    that cycle waits one cycle and counts a conflict."""
    dut = Accumulator(SLOW, mirrored=True)
    seen = {}

    async def bench(ctx):
        # Accumulate into row 1 every other cycle while rows 0.. are read.
        for cycle in range(30):
            ctx.set(dut.write.valid, cycle % 2 == 0)
            ctx.set(dut.write.payload.addr, 1)
            ctx.set(dut.write.payload.accumulate, 1)
            ctx.set(dut.write.payload.row, [cycle, 0, 0])  # (the row of the cycle before)
            ctx.set(dut.read.valid, 1)
            ctx.set(dut.read.payload, 0 if cycle < 20 else 1)
            ctx.set(dut.read_data.ready, 1)
            *_, rr, dv, conflict = await ctx.tick().sample(
                dut.read.ready, dut.read_data.valid, dut.conflict)
            seen.setdefault("reads", []).append(cycle) if rr else None
            seen.setdefault("answers", []).append(cycle) if dv else None
            seen.setdefault("conflicts", []).append(cycle) if conflict else None
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    reads, answers = seen["reads"], seen["answers"]
    assert reads[:7] == list(range(0, 21, 3))
    assert answers[:6] == [r + 2 for r in reads[:6]]
    # Row 1 is written in odd cycles (a write accepted in an even one): a read of it waits.
    assert all(c % 2 == 1 and c >= 20 for c in seen["conflicts"])
    assert all(r < 20 or r % 2 == 0 for r in reads)


def test_mirrored_same_row_every_other_cycle():
    """Accumulates into one row every other cycle, with wrap-around; read back."""
    print("seed=3")
    rng = np.random.default_rng(3)
    dut = mirrored_dut(SLOW)
    writes = [{"addr": 3, "accumulate": int(i > 0),
               "row": [int(v) for v in random_operands(rng, 3, 32, True)]} for i in range(12)]
    writes += [{"addr": 3, "accumulate": 1, "row": [2**31 - 1, -2**31, 1]}] * 4
    answers = []

    async def bench(ctx):
        for payload in writes:
            await stream_put(ctx, dut.write, payload)
        for addr in (3, 3):
            await stream_put(ctx, dut.read, addr)
            answers.append([int(v) for v in (await stream_get(ctx, dut.read_data)).row])
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    model = AccumulatorModel(SLOW)
    for payload in writes:
        model.write(payload["addr"], payload["row"], payload["accumulate"])
    assert answers == [model.read(3)[0]] * 2


class _Ice40:
    device = "iCE40UP5K"


@pytest.mark.parametrize("name, expected", [("tiny", True), ("micro", False), ("small", False)])
def test_mirrored_where(name, expected):
    """Mirrored on an iCE40 at slow clocks when two copies take no more block RAM than the
    banks (tiny: 2 x 8 tiles either way); never without an iCE40 or at fast clocks."""
    acc = Accumulator(preset(name))
    acc._MustUse__silence = True  # only asked, never built
    assert acc.mirrors_for(_Ice40()) == expected
    assert not acc.mirrors_for(None)

"""Scratchpad and accumulator in the Amaranth simulator, against their golden models."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hdl.accumulator import Accumulator, write_row_follows
from hdl.config import TesseraConfig
from hdl.scratchpad import Scratchpad, rows_beyond
from hdl.sram import SRAM1R1W, poisoned_collisions
from sim.model import AccumulatorModel, ScratchpadModel, replay
from sim.streams import idle_cycles, stream_get, stream_put
from sim.workload import random_operands

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6


class SameCycleWrites(wiring.Component):
    """An :class:`Accumulator` whose writes bring their row with their address at any clock.

    Where the accumulator takes a write's row a cycle after its address
    (:attr:`Accumulator.row_follows`), the row waits a cycle in a register, and a write of the
    row written in the cycle before waits a cycle (``write.ready`` low). Same members as the
    accumulator."""

    def __init__(self, config, registered=False):
        self.accumulator = Accumulator(config, registered=registered)
        super().__init__(self.accumulator.signature)

    @property
    def sram_shapes(self):
        return self.accumulator.sram_shapes

    def elaborate(self, platform):
        m = Module()
        m.submodules.accumulator = acc = self.accumulator
        wiring.connect(m, wiring.flipped(self.read), acc.read)
        wiring.connect(m, acc.read_data, wiring.flipped(self.read_data))
        m.d.comb += [self.error.eq(acc.error), self.conflict.eq(acc.conflict)]
        if not acc.row_follows:
            wiring.connect(m, wiring.flipped(self.write), acc.write)
            return m
        w = self.write.payload
        wrote, last_addr, row = Signal(), Signal.like(w.addr), Signal.like(w.row)
        same = wrote & (w.addr == last_addr)
        m.d.comb += [
            self.write.ready.eq(~same),
            acc.write.valid.eq(self.write.valid & ~same),
            acc.write.payload.addr.eq(w.addr),
            acc.write.payload.accumulate.eq(w.accumulate),
            acc.write.payload.row.eq(row),
        ]
        m.d.sync += [wrote.eq(acc.write.valid), last_addr.eq(w.addr), row.eq(w.row)]
        return m


def run_memory(dut, writes, reads, *, seed, stall=0.0, max_cycles=20_000, probes=()):
    """Drive ``writes`` (payload dicts) and ``reads`` (addresses) concurrently.

    ``probes`` are extra background testbenches. Returns the log of accepted requests per
    cycle, the answers and the final error flag.
    """
    rng = np.random.default_rng(seed)
    log, answers, cycle, error = [], [], [0], []

    async def writer(ctx):
        for payload in writes:
            await stream_put(ctx, dut.write, payload, idle=idle_cycles(rng, stall))

    async def reader(ctx):
        for addr in reads:
            await stream_put(ctx, dut.read, addr, idle=idle_cycles(rng, stall))

    async def consumer(ctx):
        for _ in reads:
            payload = await stream_get(ctx, dut.read_data, idle=idle_cycles(rng, stall))
            answers.append(([int(v) for v in payload.row], bool(payload.error)))

    async def monitor(ctx):
        async for _, _, wv, wr, wp, rv, rr, rp, err in ctx.tick().sample(
                dut.write.valid, dut.write.ready, dut.write.payload,
                dut.read.valid, dut.read.ready, dut.read.payload, dut.error):
            if rv and rr:
                log.append((cycle[0], "read", int(rp)))
            if wv and wr:
                accumulate = bool(getattr(wp, "accumulate", 0))
                log.append((cycle[0], "write",
                            (int(wp.addr), [int(v) for v in wp.row], accumulate)))
            error.append(bool(err))
            cycle[0] += 1

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    for bench in (writer, reader, consumer):
        sim.add_testbench(bench)
    for bench in (monitor, *probes):
        sim.add_testbench(bench, background=True)
    sim.run_until(CLOCK * max_cycles)
    return log, answers, error[-1] if error else False


def random_addresses(rng, count, depth, addr_width, hot=None, out_of_range=0.0):
    """Addresses in range, a share of them repeating a few hot rows, some out of range."""
    addrs = rng.integers(0, depth, size=count)
    if hot is not None:
        mask = rng.random(count) < 0.4
        addrs[mask] = rng.choice(hot, size=int(mask.sum()))
    bad = rng.random(count) < out_of_range
    addrs[bad] = rng.integers(depth, 1 << addr_width, size=int(bad.sum()))
    return [int(a) for a in addrs]


def check_answers(log, answers, model, context):
    want = replay(model, log)
    assert len(answers) == len(want), f"{context}: {len(answers)} answers, want {len(want)}"
    for i, (got, expected) in enumerate(zip(answers, want, strict=True)):
        assert got == expected, f"{context}: first mismatch at read {i}: {got} != {expected}"


SMALL = TesseraConfig(dim=3, sp_depth=32, acc_depth=16, addr_width=8)

#: Scratchpad read ports: answers held in the banks (30 MHz) or buffered (80 MHz).
READ_PORTS = pytest.mark.parametrize("mhz", [30.0, 80.0], ids=["held", "buffered"])
#: Accumulators: slow clocks (the row follows its address), fast, fast with registered bank
#: outputs (the ECP5-85F's).
ACC_MODES = pytest.mark.parametrize("mhz, registered", [(30.0, False), (80.0, False),
                                                        (80.0, True)],
                                    ids=["slow", "fast", "registered"])


@READ_PORTS
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["idle", "stalls"])
@pytest.mark.parametrize("single_port", [False, True], ids=["1r1w", "single-port"])
def test_scratchpad_random(stall, single_port, mhz):
    seed = 40 + int(stall * 10) + single_port
    config = SMALL.replace(sp_single_port=single_port, target_mhz=mhz)
    print(f"seed={seed} config={config}")
    rng = np.random.default_rng(seed)
    hot = [0, 1, config.sp_depth - 1]
    waddr = random_addresses(rng, 300, config.sp_depth, config.addr_width, hot, 0.03)
    writes = [{"addr": a, "row": [int(v) for v in random_operands(rng, 3, 8, True)]}
              for a in waddr]
    reads = random_addresses(rng, 300, config.sp_depth, config.addr_width, hot, 0.03)
    dut = Scratchpad(config)
    log, answers, error = run_memory(dut, writes, reads, seed=seed, stall=stall)
    model = ScratchpadModel(config)
    check_answers(log, answers, model, f"seed={seed}")
    assert error == model.error == True  # noqa: E712 (some addresses were out of range)


@ACC_MODES
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["idle", "stalls"])
@pytest.mark.parametrize("postproc_lanes", [None, 1], ids=["3-deep", "1-deep"])
def test_accumulator_random(stall, postproc_lanes, mhz, registered):
    """With one post-processing lane (a row every 3 cycles) the read buffer is 1 deep. At
    30 MHz a read of the row being written waits instead of being forwarded."""
    seed = 50 + int(stall * 10)
    config = SMALL.replace(postproc_lanes=postproc_lanes, target_mhz=mhz)
    print(f"seed={seed} config={config} registered={registered}")
    rng = np.random.default_rng(seed)
    hot = [0, 5, config.acc_depth - 1]
    waddr = random_addresses(rng, 400, config.acc_depth, config.addr_width, hot, 0.03)
    writes = [{"addr": a, "accumulate": int(rng.random() < 0.7),
               "row": [int(v) for v in random_operands(rng, 3, 32, True)]} for a in waddr]
    reads = random_addresses(rng, 300, config.acc_depth, config.addr_width, hot, 0.03)
    dut = SameCycleWrites(config, registered)
    # An entry is free again read_latency + 1 cycles after its request (2, registered 4).
    assert dut.accumulator.read_buffer_depth == {(None, False): 3, (1, False): 1,
                                                 (None, True): 5, (1, True): 2}[
        postproc_lanes, registered]
    log, answers, error = run_memory(dut, writes, reads, seed=seed, stall=stall)
    model = AccumulatorModel(config)
    check_answers(log, answers, model, f"seed={seed}")
    assert error == model.error == True  # noqa: E712


@ACC_MODES
def test_accumulate_same_row_every_cycle_at_full_rate(mhz, registered):
    """Accumulates into one row on consecutive cycles, then into two rows alternately, with
    wrap-around; then the rows are read back. Where the row follows its address (30 MHz) a
    write into the row written in the cycle before waits one cycle; the others do not."""
    config = SMALL.replace(target_mhz=mhz)
    rng = np.random.default_rng(7)
    writes = ([{"addr": 3, "accumulate": int(i > 0),
                "row": [int(v) for v in random_operands(rng, 3, 32, True)]} for i in range(20)]
              + [{"addr": 3 + (i % 2), "accumulate": 1, "row": [2**31 - 1, -2**31, 1]}
                 for i in range(10)])
    reads = [3, 4, 3]
    dut = SameCycleWrites(config, registered)
    answers = []

    async def bench(ctx):
        for payload in writes:
            await stream_put(ctx, dut.write, payload)
        for addr in reads:
            await stream_put(ctx, dut.read, addr)
            payload = await stream_get(ctx, dut.read_data)
            answers.append([int(v) for v in payload.row])
    accepted = []

    async def monitor(ctx):
        count = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.write.valid, dut.write.ready):
            if valid and ready:
                accepted.append(count)
            count += 1
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run_until(CLOCK * 500)
    wait = int(dut.accumulator.row_follows)
    gaps = [1 + wait * (a["addr"] == b["addr"]) for a, b in zip(writes, writes[1:], strict=False)]
    assert np.diff(accepted).tolist() == gaps, "a write stalled"
    model = AccumulatorModel(config)
    for payload in writes:
        model.write(payload["addr"], payload["row"], payload["accumulate"])
    assert answers == [model.read(a)[0] for a in reads]


def test_row_follows_address_at_slow_clocks():
    """At 30 MHz the row comes a cycle after its address, straight into the adder; a write
    into the row written in the cycle before breaks the protocol and sets ``error``."""
    config = SMALL.replace(target_mhz=30.0)
    dut = Accumulator(config)
    assert dut.row_follows and not write_row_follows(config.replace(target_mhz=80.0))
    rows = {"a": [1, -2, 3], "b": [10, 20, -30], "c": [5, 5, 5]}
    # (valid, addr, accumulate, row on the port in that cycle)
    beats = [(1, 2, 0, None), (1, 3, 0, rows["a"]), (1, 2, 1, rows["b"]), (0, 0, 0, rows["c"]),
             (0, 0, 0, None), (0, 0, 0, None)]
    result = {}

    async def bench(ctx):
        for valid, addr, accumulate, row in beats:
            ctx.set(dut.write.valid, valid)
            ctx.set(dut.write.payload.addr, addr)
            ctx.set(dut.write.payload.accumulate, accumulate)
            ctx.set(dut.write.payload.row, row or [0, 0, 0])
            await ctx.tick()
        assert not ctx.get(dut.error)
        for addr in (2, 3):
            await stream_put(ctx, dut.read, addr)
            result[addr] = [int(v) for v in (await stream_get(ctx, dut.read_data)).row]
        ctx.set(dut.write.valid, 1)
        ctx.set(dut.write.payload.addr, 3)
        await ctx.tick()
        assert not ctx.get(dut.error)
        await ctx.tick()   # the same row again in the next cycle
        ctx.set(dut.write.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.error)
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    # Row 2: overwritten with "a" (the row of the cycle after), then "c" added.
    assert result == {2: [6, 3, 8], 3: rows["b"]}


@pytest.mark.parametrize("memory, mhz", [("scratchpad", 30.0), ("scratchpad", 80.0),
                                         ("accumulator", 30.0), ("accumulator", 80.0),
                                         ("registered", 80.0)])
def test_ports_run_at_full_rate_on_different_banks(memory, mhz):
    """Writes into bank 0 and reads of bank 1, every cycle, no conflicts, no stalls."""
    config = SMALL.replace(target_mhz=mhz)
    rng = np.random.default_rng(11)
    depth = config.sp_depth if memory == "scratchpad" else config.acc_depth
    half = depth // 2
    n = 40
    if memory == "scratchpad":
        dut = Scratchpad(config.replace(sp_single_port=True))
        writes = [{"addr": int(a), "row": [1, 2, 3]} for a in rng.integers(0, half, n)]
    else:
        dut = SameCycleWrites(config, memory == "registered")
        addrs = [0]
        for _ in range(n - 1):  # never one row twice in a row: no waits
            addrs.append(int(rng.choice([a for a in range(half) if a != addrs[-1]])))
        writes = [{"addr": a, "accumulate": 1, "row": [1, 2, 3]} for a in addrs]
    reads = [int(a) for a in rng.integers(half, depth, n)]
    log, answers, _ = run_memory(dut, writes, reads, seed=11)
    for kind in ("read", "write"):
        cycles = [c for c, k, _ in log if k == kind]
        assert cycles == list(range(cycles[0], cycles[0] + n)), f"{kind} port stalled"
    assert len(answers) == n


@ACC_MODES
def test_same_bank_conflicts_are_counted_and_correct(mhz, registered):
    """Accumulates and store reads in one bank: reads wait, conflicts counted, data right."""
    config = SMALL.replace(target_mhz=mhz)
    rng = np.random.default_rng(12)
    half = config.acc_depth // 2
    writes = [{"addr": int(a), "accumulate": 1,
               "row": [int(v) for v in random_operands(rng, 3, 32, True)]}
              for a in rng.integers(0, half, 50)]
    reads = [int(a) for a in rng.integers(0, half, 50)]
    dut = SameCycleWrites(config, registered)
    conflicts, waited = [0], [0]

    async def probe(ctx):
        async for _, _, value, valid, ready in ctx.tick().sample(
                dut.conflict, dut.read.valid, dut.read.ready):
            conflicts.append(conflicts[-1] + value)
            waited[0] += valid and not ready
    log, answers, _ = run_memory(dut, writes, reads, seed=12, probes=[probe])
    check_answers(log, answers, AccumulatorModel(config), "seed=12")
    # The consumer is always ready, so every cycle a read waited was a bank conflict.
    assert conflicts[-1] == waited[0] > 0


@READ_PORTS
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_scratchpad_second_read_port(stall, mhz):
    """``read`` and ``read_b`` read at once: every answer is the row written there (out of
    range: a zero row with error), in order, with nothing lost under stalls."""
    seed = 91 + int(stall * 10)
    print(f"seed={seed} stall={stall}")
    config = TesseraConfig(dim=3, sp_depth=64, target_mhz=mhz)
    dut = Scratchpad(config)
    rng = np.random.default_rng(seed)
    rows = rng.integers(-128, 128, size=(config.sp_depth, config.dim))
    reads = {port: list(rng.integers(0, config.sp_depth + 4, size=300)) for port in "ab"}
    answers = {"a": [], "b": []}

    async def writer(ctx):
        for addr, row in enumerate(rows):
            await stream_put(ctx, dut.write, {"addr": addr, "row": [int(v) for v in row]})

    def reader(port):
        request = dut.read if port == "a" else dut.read_b
        answer = dut.read_data if port == "a" else dut.read_b_data

        async def bench(ctx):
            await ctx.tick().repeat(config.sp_depth + 2)  # after the writes
            for addr in reads[port]:
                await stream_put(ctx, request, int(addr), idle=idle_cycles(rng, stall))

        async def collect(ctx):
            for _ in reads[port]:
                payload = await stream_get(ctx, answer, idle=idle_cycles(rng, stall))
                answers[port].append(([int(v) for v in payload.row], bool(payload.error)))
        return bench, collect

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(writer)
    for port in "ab":
        for bench in reader(port):
            sim.add_testbench(bench)
    sim.run_until(CLOCK * 20_000)
    for port in "ab":
        assert len(answers[port]) == len(reads[port]), f"seed={seed}: port {port} hung"
        for addr, (row, error) in zip(reads[port], answers[port], strict=True):
            if addr >= config.sp_depth:
                assert error and row == [0] * config.dim, f"seed={seed}: port {port} {addr}"
            else:
                assert not error and row == rows[addr].tolist(), f"seed={seed}: {port} {addr}"


@READ_PORTS
def test_scratchpad_second_port_full_rate_on_the_other_bank(mhz):
    config = TesseraConfig(dim=2, sp_depth=64, target_mhz=mhz)
    dut = Scratchpad(config)
    accepted = {"a": [], "b": []}

    async def bench(ctx):
        ctx.set(dut.read_data.ready, 1)
        ctx.set(dut.read_b_data.ready, 1)
        for i in range(20):
            ctx.set(dut.read.valid, 1)
            ctx.set(dut.read.payload, i)             # bank 0
            ctx.set(dut.read_b.valid, 1)
            ctx.set(dut.read_b.payload, 32 + i if i < 10 else i)  # bank 1, then bank 0
            *_, a, b = await ctx.tick().sample(dut.read.ready, dut.read_b.ready)
            accepted["a"].append(a)
            accepted["b"].append(b)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    assert accepted["a"] == [1] * 20
    assert accepted["b"] == [1] * 10 + [0] * 10  # the same bank as port a: waits


@READ_PORTS
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["idle", "stalls"])
def test_scratchpad_both_ports_and_writes_in_one_bank(stall, mhz):
    """Both read ports and the write port(s) on a few rows of one bank at once, under stalls:
    every answer is the row as it was when its read was accepted (held answers displaced by
    the other port are read again; writes to their rows wait). Held answers: both write
    ports, never both accepted in one cycle."""
    seed = 60 + int(stall * 10)
    config = SMALL.replace(target_mhz=mhz)
    print(f"seed={seed} config={config}")
    rng = np.random.default_rng(seed)
    dut = Scratchpad(config)
    hot = [1, 2, 5]   # bank 0
    writes = [{"addr": int(a), "row": [int(v) for v in random_operands(rng, 3, 8, True)]}
              for a in rng.choice(hot + [20, 40], 200)]   # 40: out of range, refused
    write_ports = [dut.write] + ([dut.write_b] if dut.holds_answers else [])
    # Row 8: where a refused write to 40 would land if it wrapped (40 mod 32).
    reads = {port: [int(a) for a in rng.choice(hot + [8, 17, 40], 200)] for port in "ab"}
    streams = {"a": (dut.read, dut.read_data), "b": (dut.read_b, dut.read_b_data)}
    answers, log = {"a": [], "b": []}, []

    def writer_bench(k):
        async def writer(ctx):
            for payload in writes[k::len(write_ports)]:
                await stream_put(ctx, write_ports[k], payload, idle=idle_cycles(rng, stall))
        return writer

    def port_benches(port):
        request, answer = streams[port]

        async def put(ctx):
            for addr in reads[port]:
                await stream_put(ctx, request, addr, idle=idle_cycles(rng, stall))

        async def get(ctx):
            for _ in reads[port]:
                payload = await stream_get(ctx, answer, idle=idle_cycles(rng, stall))
                answers[port].append(([int(v) for v in payload.row], bool(payload.error)))
        return put, get

    async def monitor(ctx):
        cycle = 0
        async for _, _, av, ar, ap, bv, br, bp, *w in ctx.tick().sample(
                dut.read.valid, dut.read.ready, dut.read.payload,
                dut.read_b.valid, dut.read_b.ready, dut.read_b.payload,
                *(x for port in write_ports for x in (port.valid, port.ready, port.payload))):
            for port, valid, ready, addr in [("a", av, ar, ap), ("b", bv, br, bp)]:
                if valid and ready:
                    log.append((cycle, port, int(addr)))
            accepted = [wp for wv, wr, wp in zip(w[::3], w[1::3], w[2::3], strict=True)
                        if wv and wr]
            assert len(accepted) <= 1, f"seed={seed}: two writes accepted in cycle {cycle}"
            if len(write_ports) > 1:  # `write` goes first
                assert not (w[0] and w[4]), f"seed={seed}: write_b went first, cycle {cycle}"
            for wp in accepted:
                log.append((cycle, "write", (int(wp.addr), [int(v) for v in wp.row], False)))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    for bench in (*map(writer_bench, range(len(write_ports))), *port_benches("a"),
                  *port_benches("b")):
        sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run_until(CLOCK * 5_000)
    model = ScratchpadModel(config)
    want = {"a": [], "b": []}
    for cycle in sorted({c for c, _, _ in log}):
        for c, kind, request in log:
            if c == cycle and kind in want:
                want[kind].append(model.read(request))
        for c, kind, request in log:
            if c == cycle and kind == "write":
                model.write(*request)
    assert sum(kind == "write" for _, kind, _ in log) == len(writes), f"seed={seed}: writes hung"
    for port in "ab":
        assert len(answers[port]) == len(reads[port]), f"seed={seed}: port {port} hung"
        assert answers[port] == want[port], f"seed={seed}: port {port}"


def answer_cycles(dut, cycles=5):
    """One read of row 3 into an idle memory: ``read_data.valid`` in each cycle after."""
    seen = []

    async def bench(ctx):
        ctx.set(dut.read_data.ready, 1)
        ctx.set(dut.read.valid, 1)
        ctx.set(dut.read.payload, 3)
        await ctx.tick()
        ctx.set(dut.read.valid, 0)
        for _ in range(cycles):
            seen.append(ctx.get(dut.read_data.valid))
            await ctx.tick()
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    return seen


@READ_PORTS
def test_scratchpad_read_latency(mhz):
    """An answer is valid ``read_latency`` cycles after its request was accepted."""
    dut = Scratchpad(SMALL.replace(target_mhz=mhz))
    assert dut.read_latency == (1 if mhz < 50 else 2)
    seen = answer_cycles(dut)
    assert seen.index(1) + 1 == dut.read_latency and sum(seen) == 1


@ACC_MODES
def test_accumulator_read_latency(mhz, registered):
    """An answer is valid ``read_latency`` cycles after its request was accepted: 2, and 4
    with the bank reads issued from registers and the answer registered."""
    dut = Accumulator(SMALL.replace(target_mhz=mhz), registered=registered)
    assert dut.read_latency == (4 if registered else 2)
    seen = answer_cycles(dut)
    assert seen.index(1) + 1 == dut.read_latency and sum(seen) == 1


@pytest.mark.parametrize("collision, poisoned, expected", [
    ("old", False, [5, 5, 7]), ("old", True, [5, 5, 7]),
    ("any", False, [7, 7, 7]), ("any", True, [0xFA, 0xFA, 7])])
def test_sram_read_during_write(collision, poisoned, expected):
    """A read of the row written in the same cycle: the old row, or (``collision="any"``,
    inline a transparent port) the new one, or in ``poisoned_collisions`` the old one
    inverted (``~5``); held while ``r_en`` is low; the next read sees the new row."""
    dut = SRAM1R1W(4, 8, collision=collision)
    got = []

    async def bench(ctx):
        ctx.set(dut.w_addr, 2)
        ctx.set(dut.w_data, 5)
        ctx.set(dut.w_en, 1)
        await ctx.tick()
        ctx.set(dut.w_data, 7)
        ctx.set(dut.r_addr, 2)
        ctx.set(dut.r_en, 1)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.r_en, 0)
        got.append(ctx.get(dut.r_data))
        await ctx.tick()
        got.append(ctx.get(dut.r_data))
        ctx.set(dut.r_en, 1)
        await ctx.tick()
        got.append(ctx.get(dut.r_data))
    with poisoned_collisions(poisoned):
        sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected


def test_sram_collision_checked():
    with pytest.raises(ValueError, match=r"^SRAM collision must be 'old' or 'any', not 'new'$"):
        SRAM1R1W(4, 8, collision="new")


@pytest.mark.parametrize("depth", [8, 16])
def test_rows_beyond_narrow_matches_the_wide_sum(depth):
    """The narrow range check (slow clocks) answers as the wide sum does for every first
    row and count >= 1 of 7-bit fields, and gives the same end where the rows fit."""
    first, count = Signal(7), Signal(7)
    m = Module()
    answers = {}
    for narrow in (False, True):
        beyond, end = rows_beyond(first, count, depth, narrow=narrow)
        answers[narrow] = Signal(name=f"beyond_{narrow}"), Signal(8, name=f"end_{narrow}")
        m.d.comb += [answers[narrow][0].eq(beyond), answers[narrow][1].eq(end)]

    async def bench(ctx):
        for f in range(128):
            for c in range(1, 128):
                ctx.set(first, f)
                ctx.set(count, c)
                assert ctx.get(answers[True][0]) == (f + c > depth), (f, c)
                assert ctx.get(answers[False][0]) == (f + c > depth), (f, c)
                if f + c <= depth:
                    assert ctx.get(answers[True][1]) == f + c, (f, c)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_registered_accumulator_needs_a_fast_clock():
    with pytest.raises(ValueError, match=r"^registered needs a fast-clock config .* 30\.0 MHz$"):
        Accumulator(SMALL.replace(target_mhz=30.0), registered=True)
    with pytest.raises(TypeError, match=r"^registered must be a bool, not 'yes'$"):
        Accumulator(SMALL.replace(target_mhz=80.0), registered="yes")
    # Its default is the config's acc_registered.
    fast = SMALL.replace(target_mhz=80.0)
    assert Accumulator(fast.replace(acc_registered=True)).read_latency == 4
    assert Accumulator(fast).read_latency == 2

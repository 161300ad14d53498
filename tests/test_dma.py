"""The DMA in the Amaranth simulator: the burst splitter against its reference model, the
read and write engines against a Python AXI4 memory with latency, stalls and error injection.
"""

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib.fifo import SyncFIFO
from amaranth.sim import Simulator

from hdl.axi4 import AXI4Signature, AXIResp
from hdl.burst_splitter import BurstSplitter, DMAError, ShiftQueue, command_field_widths
from hdl.config import TesseraConfig, preset
from hdl.dma import DMA
from hdl.dma_read import DMAReader
from hdl.dma_write import DMAWriter
from sim.streams import idle_cycles, stream_get, stream_put
from sim.tb_dma import (
    Burst,
    Command,
    burst_rule_violations,
    check_memory,
    check_read_beats,
    command_beats,
    command_fits,
    edge_commands,
    expected_memory,
    expected_read_beats,
    flag_beats,
    model_bursts,
    random_command,
    random_words,
    reported_address,
    split_transfer,
)

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6

def bursts_of(config, commands, beat_bytes, **kwargs):
    """:func:`sim.tb_dma.model_bursts` for an engine built for ``config`` (its splitter's
    ``block_aligned``)."""
    return model_bursts(commands, beat_bytes, block_aligned=not config.fast_clock,
                        addr_width=config.bus_addr_width, **kwargs)


ERRORS = {"misaligned": DMAError.MISALIGNED, "empty": DMAError.EMPTY, "range": DMAError.RANGE}


def run_splitter(dut, commands, *, seed, stall=0.0, max_cycles=100_000):
    """Feed ``commands``; returns the bursts, the error events and the cycles bursts left."""
    rng = np.random.default_rng(seed)
    config = dut.config
    bursts, errors, fired = [], [], []
    expected = sum(len(split_transfer(c, beat_bytes=dut.beat_bytes, max_burst=dut.max_burst,
                                      block_aligned=dut.block_aligned,
                                      addr_width=config.bus_addr_width)[0])
                   for c in commands)
    cycle = [0]

    async def producer(ctx):
        for command in commands:
            await stream_put(ctx, dut.cmd, command.fields(), idle=idle_cycles(rng, stall))

    async def consumer(ctx):
        for _ in range(expected):
            p = await stream_get(ctx, dut.bursts, idle=idle_cycles(rng, stall))
            cause = DMAError(p.cause)
            bursts.append(Burst(int(p.addr), int(p.len) + 1, bool(p.row_last), bool(p.last),
                                bool(p.refused),
                                None if cause == DMAError.NONE else cause.name.lower()))

    async def monitor(ctx):
        async for _, _, error, valid, ready in ctx.tick().sample(
                dut.error, dut.bursts.valid, dut.bursts.ready):
            if error.valid:
                errors.append((DMAError(error.cause), int(error.addr)))
            if valid and ready:
                fired.append(cycle[0])
            cycle[0] += 1

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(watchdog(max_cycles), background=True)
    sim.run()
    assert len(bursts) == expected, f"seed={seed}: {len(bursts)} bursts, want {expected}"
    return bursts, errors, fired


def check_splitter(dut, commands, bursts, errors, context):
    want_bursts, want_errors = [], []
    for command in commands:
        expected, error = split_transfer(command, beat_bytes=dut.beat_bytes,
                                         block_aligned=dut.block_aligned,
                                         max_burst=dut.max_burst,
                                         addr_width=dut.config.bus_addr_width)
        want_bursts += [(command, b) for b in expected]
        if error:
            want_errors.append((ERRORS[error], reported_address(dut.config, command.addr)))
    for i, (got, (command, want)) in enumerate(zip(bursts, want_bursts, strict=True)):
        assert got == want, f"{context}: first mismatch at burst {i} of {command}: {got} != {want}"
    assert errors == want_errors, f"{context}: errors {errors} != {want_errors}"


def error_commands(config):
    """Refused commands, each followed by a good one."""
    b = config.bus_data_width // 8
    top = 1 << config.bus_addr_width
    return [
        Command(0x100 + 1, 4, 2, 0x100),              # misaligned address
        Command(0x100, 4, 2, 0x100 + b // 2),         # misaligned stride
        Command(0x200, 0, 3, 0x10),                   # no beats per row
        Command(0x200, 3, 0, 0x10),                   # no rows
        Command(top - 2 * b, 4, 1, 0),                # runs past the top within a row
        Command(top - 0x2000, 8, 3, 0x1000),          # the third row is past the top
        Command(top - 0x1000, 4096 // b, 1, 0),       # ends exactly at the top: fine
        Command(0x100, 2, 3, top // 2),               # rows times stride pass the top
        Command(top // 2 + 0x100, 3, 2, top // 2 - 0x100),  # the second row starts at the top
        Command(top - 0x1000, 1, 4, 0x400),           # the fourth row starts at the top
        Command(0x300, 2, 2, 0x40),
    ] + (beyond_bus_commands(config) if config.bus_addr_width < 32 else [])


def beyond_bus_commands(config):
    """Commands with a bit of ``addr`` or ``stride`` at or above a bus narrower than their
    32 bits (refused as a whole, ``RANGE``, also when misaligned or empty)."""
    b = config.bus_data_width // 8
    top = 1 << config.bus_addr_width
    return [
        Command(top + 0x100, 3, 2, 0x40),             # an address at the top
        Command(0x100, 3, 2, top),                    # a stride reaching it (rows > 1)
        Command(0x100, 2, 1, top),                    # a stride reaching it, one row
        Command(0xFFFF_FF00, 5, 1, 0),                # the address's top bit
        Command(0x200, 1, 3, 0x8000_0000 | b),        # the stride's top bit
        Command(top + 0x101, 2, 1, 0),                # also misaligned
        Command(top + 0x100, 0, 2, 0x40),             # also empty
        Command(0x400, 2, 2, 0x40),
    ]


@pytest.mark.parametrize("config, max_burst, stall, seed, max_row_beats", [
    (preset("tiny"), 256, 0.0, 1, 600),
    (preset("small"), 256, 0.3, 2, 600),
    (preset("large"), 256, 0.3, 3, 600),
    (preset("small"), 16, 0.3, 4, 100),
    (preset("tiny").replace(bus_addr_width=16), 1, 0.2, 5, 20),
    (preset("tiny"), 16, 0.2, 6, 100),
], ids=["tiny-idle", "small-stalls", "large-stalls", "small-burst16", "tiny-a16-burst1",
        "tiny-burst16"])
@pytest.mark.parametrize("relative_rows", [False, True], ids=["absolute", "relative"])
def test_splitter_matches_model(config, max_burst, stall, seed, max_row_beats, relative_rows):
    print(f"seed={seed} bus={config.bus_data_width} max_burst={max_burst} stall={stall}")
    rng = np.random.default_rng(seed)
    b = config.bus_data_width // 8
    top = 1 << config.bus_addr_width
    region = (0, min(top, 1 << 22))
    commands = [c for c in edge_commands(b)
                if c.addr + (c.rows - 1) * c.stride + c.row_beats * b <= region[1]]
    commands += error_commands(config)
    commands += [random_command(rng, b, region=region, max_row_beats=max_row_beats)
                 for _ in range(100)]
    dut = BurstSplitter(config, max_burst=max_burst, relative_rows=relative_rows,
                        wide_commands=True)
    bursts, errors, _ = run_splitter(dut, commands, seed=seed, stall=stall)
    check_splitter(dut, commands, bursts, errors, f"seed={seed}")


@pytest.mark.parametrize("config, max_burst", [
    (preset("tiny"), 16), (preset("tiny"), 256), (preset("micro"), 16)],
    ids=["tiny-burst16", "tiny-burst256", "micro-burst16"])
@pytest.mark.parametrize("relative_rows", [False, True], ids=["absolute", "relative"])
def test_splitter_narrow_commands(config, max_burst, relative_rows):
    """At 50 MHz and below the command's rows and row_beats are narrow: the commands that
    fit them split as the model says (row ends, 4 KiB, the top of the address space)."""
    rng = np.random.default_rng(7)
    b = config.bus_data_width // 8
    dut = BurstSplitter(config, max_burst=max_burst, relative_rows=relative_rows)
    row_beats_width, rows_width = len(dut.cmd.payload.row_beats), len(dut.cmd.payload.rows)
    assert row_beats_width < 16 and rows_width < 16
    longest = (1 << row_beats_width) - 1
    commands = [c for c in edge_commands(b) + error_commands(config) if command_fits(config, c)]
    commands += [Command(0x1000 - b, longest, 2, 0x3000), Command(0x2000 - 5 * b, longest, 1, 0),
                 Command(0x40, 1, (1 << rows_width) - 1, b),
                 Command((1 << 32) - 0x1000 - b, longest, 3, 0x800)]
    commands += [random_command(rng, b, max_row_beats=longest) for _ in range(300)]
    commands = [c for c in commands if command_fits(config, c)]
    bursts, errors, _ = run_splitter(dut, commands, seed=7, stall=0.2)
    check_splitter(dut, commands, bursts, errors, "narrow")


def test_splitter_one_burst_per_cycle():
    """One-beat rows and back-to-back one-burst commands leave at one burst per cycle."""
    config = preset("small")
    commands = [Command(0x40, 1, 20, 0x100)] + [Command(0x1000 + 8 * i, 1, 1, 0)
                                               for i in range(20)]
    dut = BurstSplitter(config)
    bursts, errors, fired = run_splitter(dut, commands, seed=0)
    check_splitter(dut, commands, bursts, errors, "full rate")
    assert fired == list(range(fired[0], fired[0] + 40)), f"bubbles: {fired}"


def test_splitter_accepts_when_idle():
    """At slow clocks a command is accepted only once the previous one's last burst left:
    one-beat rows of a command still leave at one burst per cycle, back-to-back one-burst
    commands at one every 2 cycles."""
    config = preset("tiny")
    commands = [Command(0x40, 1, 20, 0x100)] + [Command(0x1000 + 4 * i, 1, 1, 0)
                                               for i in range(20)]
    dut = BurstSplitter(config)
    assert dut.accepts_when_idle
    bursts, errors, fired = run_splitter(dut, commands, seed=0)
    check_splitter(dut, commands, bursts, errors, "idle accept")
    start = fired[0]
    assert fired == ([start + i for i in range(20)]
                     + [start + 21 + 2 * i for i in range(20)]), f"bursts at {fired}"


@pytest.mark.parametrize("make, error, message", [
    (lambda: BurstSplitter(preset("tiny"), max_burst=3), ValueError,
     r"^max_burst must be a power of two from 1 to 256, not 3$"),
    (lambda: DMAReader(preset("tiny"), max_burst=512), ValueError,
     r"^max_burst must be a power of two from 1 to 256, not 512$"),
    (lambda: DMAWriter(preset("tiny"), max_burst=16.0), TypeError,
     r"^max_burst must be an integer, not 16.0$"),
    (lambda: DMAReader(preset("tiny"), axi_id=16), ValueError,
     r"^axi_id must fit bus_id_width \(4 bits\), not 16$"),
    (lambda: DMA(preset("tiny"), write_id=-1), ValueError,
     r"^axi_id must fit bus_id_width \(4 bits\), not -1$"),
    (lambda: DMA(preset("tiny"), max_burst=0), ValueError,
     r"^max_burst must be a power of two from 1 to 256, not 0$"),
    (lambda: AXI4Signature(addr_width=32, data_width=48, id_width=4), ValueError,
     r"^AXI4 data_width must be a power of two from 8 to 1024, not 48$"),
    (lambda: AXI4Signature(addr_width=0, data_width=32, id_width=4), ValueError,
     r"^AXI4 addr_width must be a positive integer, not 0$"),
    (lambda: AXI4Signature(addr_width=32, data_width=32, id_width="4"), TypeError,
     r"^AXI4 id_width must be an integer, not '4'$"),
    (lambda: AXI4Signature(addr_width=32, data_width=32, id_width=4, read=False, write=False),
     ValueError, r"^An AXI4 port needs a read or a write half \(or both\)$"),
])
def test_parameters_are_checked(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("depth, counting", [(1, False), (2, False), (4, False),
                                             (1, True), (2, True), (3, True)])
def test_shift_queue_is_a_fifo(depth, counting):
    """Random reads and writes, also into a full queue and out of an empty one, against a
    deque and against SyncFIFO's handshakes, cycle by cycle. ``counting``: ``r_step`` (not
    with ``r_en``) adds 1 to the oldest entry, modulo 2**width."""
    seed = depth + 10 * counting
    print(f"seed={seed} depth={depth} counting={counting}")
    rng = np.random.default_rng(seed)
    width = 4 if counting else 8
    dut = ShiftQueue(width=width, depth=depth, counting=counting)
    ref = SyncFIFO(width=width, depth=depth)
    m = Module()
    m.submodules.dut, m.submodules.ref = dut, ref
    for name in ["w_data", "w_en", "r_en"]:
        m.d.comb += getattr(ref, name).eq(getattr(dut, name))
    model = deque()

    async def bench(ctx):
        for _ in range(400):
            w_en, r_en = rng.random() < 0.5, rng.random() < 0.4
            data = int(rng.integers(1 << width))
            step = counting and not r_en and rng.random() < 0.5
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.r_en, r_en)
            ctx.set(dut.w_data, data)
            if counting:
                ctx.set(dut.r_step, step)
            for name in ["w_rdy", "r_rdy"]:
                assert ctx.get(getattr(dut, name)) == ctx.get(getattr(ref, name)), name
            assert ctx.get(dut.w_rdy) == (len(model) < depth)
            assert ctx.get(dut.r_rdy) == (len(model) > 0)
            if model:
                assert ctx.get(dut.r_data) == model[0]
                if not counting:
                    assert ctx.get(ref.r_data) == model[0]
                if step:
                    model[0] = (model[0] + 1) % (1 << width)
            read = r_en and len(model) > 0
            if w_en and len(model) < depth:
                model.append(data)
            if read:
                model.popleft()
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()


def test_axi4_signature():
    full = AXI4Signature(addr_width=32, data_width=64, id_width=4)
    read = AXI4Signature(addr_width=32, data_width=64, id_width=4, write=False)
    assert full == AXI4Signature(addr_width=32, data_width=64, id_width=4) != read
    assert full.size == 3 and "rdata" in read.members and "wdata" not in read.members
    assert set(full.members) == set(read.members) | set(
        AXI4Signature(addr_width=32, data_width=64, id_width=4, read=False).members)
    assert repr(read) == "AXI4Signature(addr_width=32, data_width=64, id_width=4, read)"


def test_model_corners():
    """The reference model itself, on cases worked out by hand."""
    assert split_transfer(Command(0xFF8, 4, 1, 0), beat_bytes=8) == (
        [Burst(0xFF8, 1, False, False), Burst(0x1000, 3, True, True)], None)
    assert split_transfer(Command(0, 600, 1, 0), beat_bytes=4) == (
        [Burst(0, 256, False, False), Burst(1024, 256, False, False),
         Burst(2048, 88, True, True)], None)
    bursts, error = split_transfer(Command(0xFFFF_FFF0, 4, 1, 0), beat_bytes=8)
    assert error == "range" and bursts == [Burst(0xFFFF_FFF0, 2, False, False),
                                           Burst(0, 2, True, True, True, "range")]
    assert split_transfer(Command(4, 2, 1, 0), beat_bytes=8) == (
        [Burst(0, 2, True, True, True, "misaligned")], "misaligned")
    assert split_transfer(Command(0, 0, 1, 0), beat_bytes=8) == ([], "empty")
    # Cut at max_burst-aligned blocks too (the splitter at 50 MHz and below).
    assert split_transfer(Command(0x10, 40, 1, 0), beat_bytes=4, max_burst=16,
                          block_aligned=True) == (
        [Burst(0x10, 12, False, False), Burst(0x40, 16, False, False),
         Burst(0x80, 12, True, True)], None)
    assert TesseraConfig().bus_data_width == 32


# --- The engines against a Python AXI4 memory ---

class AXIMemory:
    """An AXI4 subordinate for the Amaranth simulator, one background testbench.

    A memory of ``size`` random bytes at ``base``; R beats start ``latency`` cycles after
    their AR handshake (bursts pipelined), B responses ``b_latency`` cycles after WLAST;
    every ready and every valid it drives is low with probability ``stall`` each cycle.
    ``errors`` maps a beat address to the RRESP/BRESP (2 or 3) it gets. It checks every burst
    against the AXI rules, that valid and payload hold until ready, and that no access falls
    outside the memory (``violations``); ``ar`` and ``aw`` log (cycle, address, beats), ``r``
    and ``b`` the cycles of R beats and B responses.
    """

    def __init__(self, axi, *, base, size, rng, latency=4, b_latency=2, stall=0.0,
                 errors=None, max_burst=256, axi_id=0):
        self.axi = axi
        self.signature = axi.signature
        self.beat_bytes = self.signature.data_width // 8
        self.base, self.size = base, size
        self.mem = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        self.rng, self.latency, self.b_latency, self.stall = rng, latency, b_latency, stall
        self.errors = dict(errors or {})
        self.max_burst, self.axi_id = max_burst, axi_id
        self.ar, self.aw, self.r, self.b, self.violations = [], [], [], [], []
        self.cycle = 0

    def _stalled(self):
        return self.stall and self.rng.random() < self.stall

    def _inside(self, addr, n):
        if not (self.base <= addr and addr + n <= self.base + self.size):
            self.violations.append(f"cycle {self.cycle}: access to {addr:#x} outside the memory")
            return False
        return True

    def read(self, addr, n):
        if not self._inside(addr, n):
            return bytes(n)
        return bytes(self.mem[addr - self.base:addr - self.base + n])

    def write(self, addr, data):
        if self._inside(addr, len(data)):
            self.mem[addr - self.base:addr - self.base + len(data)] = data

    def _check_burst(self, channel, addr, length, size, burst, ident):
        problems = burst_rule_violations(addr, length + 1, size, burst,
                                         beat_bytes=self.beat_bytes, max_burst=self.max_burst)
        if ident != self.axi_id:
            problems.append(f"ID {ident}, not {self.axi_id}")
        self.violations += [f"cycle {self.cycle}: {channel} {p}" for p in problems]

    def _check_hold(self, name, held, valid, payload):
        """``held``: the payload of a valid not accepted in the last cycle."""
        if held is not None and (not valid or payload != held):
            self.violations.append(f"cycle {self.cycle}: {name} changed before its handshake")

    async def run(self, ctx):
        axi, sig, bb = self.axi, self.signature, self.beat_bytes
        reads, writes, w_bursts, responses = deque(), deque(), deque(), deque()
        w_current = []
        r_valid = b_valid = False
        held = {"ar": None, "aw": None, "w": None}
        while True:
            if sig.read:
                ctx.set(axi.arready, not self._stalled())
                if not r_valid and reads and reads[0][0] <= self.cycle and not self._stalled():
                    _, addr, beats, index = reads[0]
                    beat_addr = addr + index * bb
                    ctx.set(axi.rdata, int.from_bytes(self.read(beat_addr, bb), "little"))
                    ctx.set(axi.rresp, AXIResp(self.errors.get(beat_addr, 0)))
                    ctx.set(axi.rlast, index == beats - 1)
                    ctx.set(axi.rid, self.axi_id)
                    r_valid = True
                ctx.set(axi.rvalid, r_valid)
            if sig.write:
                ctx.set(axi.awready, not self._stalled())
                ctx.set(axi.wready, not self._stalled())
                if not b_valid and responses and responses[0][0] <= self.cycle \
                        and not self._stalled():
                    ctx.set(axi.bresp, AXIResp(responses[0][1]))
                    ctx.set(axi.bid, self.axi_id)
                    b_valid = True
                ctx.set(axi.bvalid, b_valid)
            samples = []
            if sig.read:
                samples += [axi.arvalid, axi.arready, axi.araddr, axi.arlen, axi.arsize,
                            axi.arburst.as_value(), axi.arid, axi.rready]
            if sig.write:
                samples += [axi.awvalid, axi.awready, axi.awaddr, axi.awlen, axi.awsize,
                            axi.awburst.as_value(), axi.awid, axi.wvalid, axi.wready, axi.wdata,
                            axi.wstrb, axi.wlast, axi.bready]
            _, _, *values = await ctx.tick().sample(*samples)
            if sig.read:
                arvalid, arready, araddr, arlen, arsize, arburst, arid, rready, *values = values
                ar = (araddr, arlen, arsize, arburst, arid)
                self._check_hold("AR", held["ar"], arvalid, ar)
                held["ar"] = ar if arvalid and not arready else None
                if arvalid and arready:
                    self._check_burst("AR", *ar)
                    self.ar.append((self.cycle, araddr, arlen + 1))
                    reads.append([self.cycle + self.latency, araddr, arlen + 1, 0])
                if r_valid and rready:
                    self.r.append(self.cycle)
                    r_valid = False
                    reads[0][3] += 1
                    if reads[0][3] == reads[0][2]:
                        reads.popleft()
            if sig.write:
                (awvalid, awready, awaddr, awlen, awsize, awburst, awid, wvalid, wready,
                 wdata, wstrb, wlast, bready) = values
                aw = (awaddr, awlen, awsize, awburst, awid)
                self._check_hold("AW", held["aw"], awvalid, aw)
                held["aw"] = aw if awvalid and not awready else None
                self._check_hold("W", held["w"], wvalid, (wdata, wlast))
                held["w"] = (wdata, wlast) if wvalid and not wready else None
                if awvalid and awready:
                    self._check_burst("AW", *aw)
                    self.aw.append((self.cycle, awaddr, awlen + 1))
                    writes.append((awaddr, awlen + 1))
                if wvalid and wready:
                    if wstrb != (1 << bb) - 1:
                        self.violations.append(f"cycle {self.cycle}: WSTRB {wstrb:#x}")
                    w_current.append(wdata)
                    if wlast:
                        w_bursts.append(w_current)
                        w_current = []
                while writes and w_bursts:
                    (addr, beats), data = writes.popleft(), w_bursts.popleft()
                    if len(data) != beats:
                        self.violations.append(f"cycle {self.cycle}: burst at {addr:#x} of "
                                               f"{beats} beats got {len(data)} (WLAST)")
                    resp = 0
                    for i, word in enumerate(data):
                        resp = max(resp, self.errors.get(addr + i * bb, 0))
                        if not self.errors.get(addr + i * bb):
                            self.write(addr + i * bb, word.to_bytes(bb, "little"))
                    responses.append((self.cycle + self.b_latency, resp))
                if b_valid and bready:
                    self.b.append(self.cycle)
                    responses.popleft()
                    b_valid = False
            self.cycle += 1


def watchdog(cycles):
    """A background testbench failing the test after ``cycles`` cycles."""
    async def bench(ctx):
        for _ in range(cycles):
            await ctx.tick()
        raise AssertionError(f"timeout: the test did not finish in {cycles} cycles")
    return bench


def monitor_engine(dut, log):
    """A background testbench logging, by cycle: accepted commands, data beats moved,
    ``done`` pulses, ``busy``, and the first latched error."""
    status = dut.status

    async def monitor(ctx):
        cycle = 0
        async for _, _, cv, cr, dv, dr, done, busy, error, cause, addr in ctx.tick().sample(
                dut.cmd.valid, dut.cmd.ready, dut.data.valid, dut.data.ready, status.done,
                status.busy, status.error, status.error_cause, status.error_addr):
            if cv and cr:
                log["accepted"].append(cycle)
            if dv and dr:
                log["beats"].append(cycle)
            if done:
                log["done"].append(cycle)
            log["busy"].append(busy)
            if error and not log["error"]:
                log["error"] = (cycle, DMAError(cause), addr)
            cycle += 1
    return monitor


def run_engine(dut, memory, commands, *, seed, stall=0.0, beats=None, benches=(),
               max_cycles=50_000):
    """Runs ``commands`` through ``dut`` (a DMAReader or DMAWriter) against ``memory``.

    ``commands`` may hold async functions ``action(ctx, dut)`` too, run in their turn (to
    clear an error, say). Reader: ``beats`` is the number of beats to collect, returned as
    (data, row_last, last, error). Writer: ``beats`` are the data words to send. Returns
    (beats received or None, the log of :func:`monitor_engine`)."""
    rng = np.random.default_rng(seed + 1000)
    log = {"accepted": [], "beats": [], "done": [], "busy": [], "error": None}
    received = []
    reading = isinstance(dut, DMAReader)
    n_commands = sum(isinstance(c, Command) for c in commands)

    async def producer(ctx):
        for command in commands:
            if isinstance(command, Command):
                await stream_put(ctx, dut.cmd, command.fields(), idle=idle_cycles(rng, stall))
            else:
                await command(ctx, dut)

    async def consumer(ctx):
        for _ in range(beats):
            p = await stream_get(ctx, dut.data, idle=idle_cycles(rng, stall))
            received.append((int(p.data), bool(p.row_last), bool(p.last), bool(p.error)))

    async def sender(ctx):
        for word in beats:
            await stream_put(ctx, dut.data, {"data": word}, idle=idle_cycles(rng, stall))

    async def until_idle(ctx):
        while len(log["accepted"]) < n_commands:
            await ctx.tick()
        await ctx.tick().until(~dut.status.busy)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(producer)
    sim.add_testbench(consumer if reading else sender)
    sim.add_testbench(until_idle)
    sim.add_testbench(memory.run, background=True)
    sim.add_testbench(monitor_engine(dut, log), background=True)
    sim.add_testbench(watchdog(max_cycles), background=True)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()
    assert not memory.violations, f"seed={seed}: {memory.violations[:5]}"
    return (received if reading else None), log


def issued_bursts(log):
    """(address, beats) of the bursts in an AXIMemory log."""
    return [(addr, beats) for _, addr, beats in log]


async def clear_error_when_idle(ctx, dut):
    """An action between commands: wait until the engine is idle, then clear its error."""
    await ctx.tick().until(~dut.status.busy)
    ctx.set(dut.status.error_clear, 1)
    await ctx.tick()
    ctx.set(dut.status.error_clear, 0)


def inside_bus(config, base, size):
    """``base``, or where ``size`` bytes end at the top of a narrower bus's address space."""
    top = 1 << config.bus_addr_width
    return base if base + size <= top else top - size


def engine_commands(rng, beat_bytes, base, size):
    """A 256-beat row, rows crossing 4 KiB, then random commands in ``base`` + ``size``."""
    return [Command(base + 0x1000, 256, 1, 0),
            Command(base + 0x2000 - beat_bytes, 2, 3, 0x1000)] + [
        random_command(rng, beat_bytes, region=(base, base + size), max_rows=3,
                       max_row_beats=200) for _ in range(10)]


# (dma_outstanding, target_mhz): the fast clock's structures and tiny's and micro's.
ERROR_CASES = [(4, 80.0), (2, 80.0), (1, 80.0), (4, 30.0), (2, 30.0), (1, 30.0)]
ERROR_IDS = [f"{n}-{'fast' if mhz > 50 else 'slow'}" for n, mhz in ERROR_CASES]

# (target_mhz, dma_outstanding): the fast clock's; the slow clock's (tiny's 2 keep the older
# burst's address in error_addr itself and report command errors with one burst in flight).
REFUSED_CASES = [(80.0, 4), (30.0, 4), (30.0, 2)]
REFUSED_IDS = ["fast", "slow", "slow-2"]

READ_CASES = [
    # (config, max_burst, memory latency, stall probability, seed)
    (preset("small"), 256, 6, 0.0, 11),
    (preset("small"), 256, 3, 0.3, 12),
    (preset("tiny"), 16, 10, 0.2, 13),
    (preset("large"), 256, 1, 0.2, 14),
]


@pytest.mark.parametrize("config, max_burst, latency, stall, seed", READ_CASES,
                         ids=["small-idle", "small-stalls", "tiny-burst16", "large-stalls"])
def test_reader_random(config, max_burst, latency, stall, seed):
    print(f"seed={seed} bus={config.bus_data_width} max_burst={max_burst} latency={latency} "
          f"stall={stall}")
    rng = np.random.default_rng(seed)
    bb = config.bus_data_width // 8
    base, size = inside_bus(config, 0x8000_0000, 1 << 16), 1 << 16
    commands = engine_commands(rng, bb, base, size)
    dut = DMAReader(config, max_burst=max_burst, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, latency=latency, stall=stall,
                       max_burst=max_burst)
    want = expected_read_beats(commands, memory.read, beat_bytes=bb, max_burst=max_burst)
    received, log = run_engine(dut, memory, commands, seed=seed, stall=stall, beats=len(want))
    check_read_beats(received, want, f"seed={seed}")
    assert issued_bursts(memory.ar) == bursts_of(config, commands, bb, max_burst=max_burst)
    assert len(log["done"]) == len(commands) and log["error"] is None
    assert not log["busy"][-1]


def narrow_commands(config, rng, base, size):
    """Random commands that fit the narrow fields of ``config`` (at 50 MHz and below)."""
    bb = config.bus_data_width // 8
    longest = (1 << command_field_widths(config)[0]) - 1
    commands = [random_command(rng, bb, region=(base, base + size), max_rows=6,
                               max_row_beats=longest) for _ in range(40)]
    return [Command(base + 0x1000 - 3 * bb, longest, 2, 0x400)] + [
        c for c in commands if command_fits(config, c)]


def test_reader_narrow_commands():
    """tiny's reader with its own narrow command fields."""
    config = preset("tiny")
    rng = np.random.default_rng(15)
    base, size = inside_bus(config, 0x8000_0000, 1 << 16), 1 << 16
    commands = narrow_commands(config, rng, base, size)
    dut = DMAReader(config, max_burst=16)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, latency=5, stall=0.2,
                       max_burst=16)
    want = expected_read_beats(commands, memory.read, beat_bytes=4, max_burst=16)
    received, log = run_engine(dut, memory, commands, seed=15, stall=0.2, beats=len(want))
    check_read_beats(received, want, "narrow")
    assert issued_bursts(memory.ar) == bursts_of(config, commands, 4, max_burst=16)
    assert len(log["done"]) == len(commands) and log["error"] is None


@pytest.mark.parametrize("outstanding, mhz", ERROR_CASES, ids=ERROR_IDS)
def test_reader_error_stops_bursts_and_recovers(outstanding, mhz):
    """SLVERR on a beat of the second of seven bursts, with bursts outstanding: no new AR,
    the outstanding R beats accepted, the rest of the command (and the next one, sent while
    the error is latched) delivered flagged; after the clear a transfer works again."""
    config = preset("small").replace(dma_outstanding=outstanding, target_mhz=mhz)
    max_burst, bb = 16, 8
    base, size = 0x1000_0000, 1 << 14
    rng = np.random.default_rng(21)
    failing = Command(base + 0x100, 100, 1, 0)
    bursts = split_transfer(failing, beat_bytes=bb, max_burst=max_burst,
                            block_aligned=not config.fast_clock)[0]
    bad_beat = bursts[1].addr + 3 * bb
    commands = [failing, Command(base + 0x2000, 5, 2, 0x40), clear_error_when_idle,
                Command(base + 0x3000, 40, 2, 0x200)]
    dut = DMAReader(config, max_burst=max_burst, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, latency=12,
                       errors={bad_beat: 2}, max_burst=max_burst)
    want = expected_read_beats(commands, memory.read, beat_bytes=bb, max_burst=max_burst)
    received, log = run_engine(dut, memory, commands, seed=21, beats=len(want))
    first_error = max_burst + 3
    recovered = 110  # the failing command's 100 beats, the next command's 10
    check_read_beats(received, flag_beats(want, first_error, recovered), "error and recovery")
    cycle, cause, addr = log["error"]
    assert (cause, addr) == (DMAError.SLVERR, bursts[1].addr)
    # Bursts already issued complete; at most the one waiting on AR goes out after the error.
    issued = [ar for ar in memory.ar if ar[1] < base + 0x3000]
    late = [ar for ar in issued if ar[0] >= cycle]
    assert len(late) <= 1, f"ARs after the error: {late}"
    assert 2 <= len(issued) < len(bursts), f"issued {issued}"
    if outstanding > 1:
        # When the error arrived, the failing burst and at least one more were in flight
        # (so its address is not the AR register's).
        received_before = sum(r < cycle for r in memory.r)
        complete = np.searchsorted(np.cumsum([beats for _, _, beats in issued]),
                                   received_before, side="right")
        assert sum(ar[0] < cycle for ar in issued) - complete >= 2, "no burst outstanding"
    assert len(memory.r) == sum(beats for _, _, beats in memory.ar), "R beats left unaccepted"
    assert issued_bursts(memory.ar)[len(issued):] == bursts_of(config, commands[3:], bb,
                                                               max_burst=max_burst)
    assert len(log["done"]) == 3 and not log["busy"][-1]


@pytest.mark.parametrize("mhz, outstanding", REFUSED_CASES, ids=REFUSED_IDS)
def test_reader_refused_commands(mhz, outstanding):
    """Misaligned, empty and out-of-range commands: the error, flagged beats, no AR for
    what was refused; each followed by a clear and a good command."""
    config = preset("small").replace(target_mhz=mhz, dma_outstanding=outstanding)
    bb = 8
    top = 1 << 32
    base, size = top - (1 << 14), 1 << 14
    rng = np.random.default_rng(22)
    good = Command(base + 0x800, 3, 2, 0x100)
    range_cmd = Command(top - 0x1000, 0x100, 3, 0x800)  # rows 0 and 1 fit, row 2 does not
    commands = [Command(base + 4, 3, 1, 0), clear_error_when_idle, good,
                Command(base, 0, 4, 0), clear_error_when_idle, good,
                range_cmd, clear_error_when_idle, good]
    dut = DMAReader(config, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, latency=3)
    plain = [c for c in commands if isinstance(c, Command)]
    want = expected_read_beats(plain, memory.read, beat_bytes=bb)
    errors = []

    async def watch_errors(ctx):
        async for _, _, error, cause, addr in ctx.tick().sample(
                dut.status.error, dut.status.error_cause, dut.status.error_addr):
            if error and (not errors or errors[-1] != (DMAError(cause), addr)):
                errors.append((DMAError(cause), addr))
            if len(errors) == 3:
                return
    received, log = run_engine(dut, memory, commands, seed=22, beats=len(want),
                               benches=[watch_errors])
    check_read_beats(received, want, "refused commands")
    assert errors == [(DMAError.MISALIGNED, base + 4), (DMAError.EMPTY, base),
                      (DMAError.RANGE, top - 0x1000)]
    assert issued_bursts(memory.ar) == bursts_of(config, plain, bb)
    assert len(log["done"]) == 5  # the empty command does not complete


def clear_errors_at_once(dut, errors, cycles):
    """A testbench collecting the errors (cause, address) ``dut`` latches in ``cycles``
    cycles, each cleared in the cycle after it was seen (bursts may still be in flight)."""
    async def bench(ctx):
        for _ in range(cycles):
            if ctx.get(dut.status.error) and not ctx.get(dut.status.error_clear):
                errors.append((DMAError(ctx.get(dut.status.error_cause)),
                               ctx.get(dut.status.error_addr)))
                ctx.set(dut.status.error_clear, 1)
            else:
                ctx.set(dut.status.error_clear, 0)
            await ctx.tick()
        ctx.set(dut.status.error_clear, 0)
    return bench


def errors_behind_bursts_in_flight(engine, outstanding, mhz, failing_burst):
    """Two bursts in flight with a slow answer, one of them failing, and a misaligned and an
    empty command right behind them; each error cleared at once. Returns the distinct errors
    latched, the expected ones and the engine's log."""
    config = preset("small").replace(dma_outstanding=outstanding, target_mhz=mhz)
    max_burst, bb = 16, 8
    base, size = 0x1000_0000, 1 << 14
    rng = np.random.default_rng(41 + failing_burst)
    first = Command(base + 0x100, 32, 1, 0)
    bursts = split_transfer(first, beat_bytes=bb, max_burst=max_burst,
                            block_aligned=not config.fast_clock)[0]
    bad_beat = bursts[failing_burst].addr + 12 * bb
    commands = [first, Command(base + 0x804, 4, 1, 0), Command(base + 0x900, 0, 1, 0),
                Command(base + 0xa00, 8, 1, 0)]
    bus_error = (DMAError.SLVERR, bursts[failing_burst].addr)
    want_errors = {bus_error, (DMAError.MISALIGNED, base + 0x804),
                   (DMAError.EMPTY, base + 0x900)}
    errors = []
    if engine == "read":
        dut = DMAReader(config, max_burst=max_burst, wide_commands=True)
        memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, latency=20,
                           errors={bad_beat: 2}, max_burst=max_burst)
        want = expected_read_beats(commands, memory.read, beat_bytes=bb, max_burst=max_burst)
        _, log = run_engine(dut, memory, commands, seed=41, beats=len(want),
                            benches=[clear_errors_at_once(dut, errors, 1000)])
    else:
        dut = DMAWriter(config, max_burst=max_burst, wide_commands=True)
        memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, b_latency=20,
                           errors={bad_beat: 2}, max_burst=max_burst)
        words = random_words(rng, command_beats(commands, bb, max_burst), 64)
        _, log = run_engine(dut, memory, commands, seed=41, beats=words,
                            benches=[clear_errors_at_once(dut, errors, 1000)])
    return errors, bus_error, want_errors, log


@pytest.mark.parametrize("engine", ["read", "write"])
@pytest.mark.parametrize("failing_burst", [0, 1])
@pytest.mark.parametrize("outstanding, mhz", [(2, 30.0), (2, 80.0), (4, 30.0)],
                         ids=["2-slow", "2-fast", "4-slow"])
def test_errors_behind_bursts_in_flight(engine, outstanding, mhz, failing_burst):
    """Command errors right behind two bursts in flight, one of which fails, each error
    cleared at once: the bus error is latched with the failing burst's address (not a command
    error's nor the other burst's), every error with its own (a command error arriving while
    another is latched is lost)."""
    got, bus_error, want, log = errors_behind_bursts_in_flight(engine, outstanding, mhz,
                                                                failing_burst)
    shown = [(c.name, hex(a)) for c, a in got]
    assert bus_error in got and set(got) <= want and len(set(got)) == len(got), shown
    assert not log["busy"][-1]


def beyond_bus_plan(config):
    """tiny's 64 KiB bus: an address at or above 64 KiB, a stride of 64 KiB (two rows), one
    past the top of the address space in its third row, the top bit of the address; each
    followed by a clear and a good command. Returns (commands, the refused ones)."""
    top = 1 << config.bus_addr_width
    good = Command(0x800, 3, 2, 0x100)
    refused = [Command(top + 0x200, 4, 2, 0x40), Command(0x200, 4, 2, top),
               Command(top - 0x1000, 0x100, 3, 0x800), Command(0x8000_0400, 2, 1, 0)]
    return [item for c in refused for item in (c, clear_error_when_idle, good)], refused


def watch_errors(dut, errors, count):
    """A testbench collecting the ``count`` distinct (cause, address) errors ``dut`` latches."""
    async def bench(ctx):
        async for _, _, error, cause, addr in ctx.tick().sample(
                dut.status.error, dut.status.error_cause, dut.status.error_addr):
            if error and (not errors or errors[-1] != (DMAError(cause), addr)):
                errors.append((DMAError(cause), addr))
            if len(errors) == count:
                return
    return bench


def test_reader_refuses_beyond_its_bus():
    """tiny (16-bit bus): a command with an address or stride bit at or above 64 KiB is
    refused as a whole (RANGE, its address reported with the bits above the bus all set if
    any was: the dispatcher folds them so; no AR, flagged beats), as
    is one running past the top; good commands around them read bit-exact."""
    config = preset("tiny")
    assert config.bus_addr_width == 16
    commands, refused = beyond_bus_plan(config)
    dut = DMAReader(config, max_burst=16, wide_commands=True)
    memory = AXIMemory(dut.axi, base=0, size=1 << 16, rng=np.random.default_rng(23),
                       latency=3, stall=0.2, max_burst=16)
    want = expected_read_beats(commands, memory.read, beat_bytes=4, max_burst=16,
                               addr_width=16)
    errors = []
    received, log = run_engine(dut, memory, commands, seed=23, stall=0.2, beats=len(want),
                               benches=[watch_errors(dut, errors, len(refused))])
    check_read_beats(received, want, "beyond the bus")
    assert errors == [(DMAError.RANGE, reported_address(config, c.addr)) for c in refused]
    assert issued_bursts(memory.ar) == bursts_of(config, commands, 4, max_burst=16)
    assert all(addr < 0x1000 or addr >= 0xF000 for _, addr, _ in memory.ar)
    assert len(log["done"]) == 2 * len(refused)


def test_writer_refuses_beyond_its_bus():
    """As the reader's: refused commands consume their beats and write nothing (no AW)."""
    config = preset("tiny")
    commands, refused = beyond_bus_plan(config)
    rng = np.random.default_rng(33)
    dut = DMAWriter(config, max_burst=16, wide_commands=True)
    memory = AXIMemory(dut.axi, base=0, size=1 << 16, rng=rng, b_latency=3, stall=0.2,
                       max_burst=16)
    initial = bytes(memory.mem)
    words = random_words(rng, command_beats(commands, 4, 16), 32)
    errors = []
    _, log = run_engine(dut, memory, commands, seed=33, stall=0.2, beats=words,
                        benches=[watch_errors(dut, errors, len(refused))])
    want = expected_memory(initial, 0, commands, words, beat_bytes=4, max_burst=16,
                           addr_width=16)
    check_memory(memory.mem, want, 0, "beyond the bus")
    assert errors == [(DMAError.RANGE, reported_address(config, c.addr)) for c in refused]
    assert issued_bursts(memory.aw) == bursts_of(config, commands, 4, max_burst=16)
    assert len(log["beats"]) == len(words) and len(log["done"]) == 2 * len(refused)


def throughput(log, beats):
    """Beats per cycle from the first command accepted to the last beat moved."""
    return beats / (log["beats"][-1] - log["accepted"][0] + 1)


@pytest.mark.parametrize("config", [preset("tiny"), preset("small"), preset("large")],
                         ids=lambda c: c.name)
def test_reader_full_rate_on_long_reads(config):
    """A 16 KiB contiguous read against a memory with latency 8 and no stalls."""
    bb = config.bus_data_width // 8
    base = inside_bus(config, 0x10_0000, 16 << 10)
    beats = (16 << 10) // bb
    commands = [Command(base, beats, 1, 0)]
    dut = DMAReader(config, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=16 << 10, rng=np.random.default_rng(3),
                       latency=8)
    received, log = run_engine(dut, memory, commands, seed=3, beats=beats)
    rate = throughput(log, beats)
    print(f"{config.name}: {rate:.4f} beats/cycle")
    assert rate >= 0.95
    assert log["beats"] == list(range(log["beats"][0], log["beats"][0] + beats)), "a bubble"


@pytest.mark.parametrize("config, max_burst, latency, stall, seed", READ_CASES,
                         ids=["small-idle", "small-stalls", "tiny-burst16", "large-stalls"])
def test_writer_random(config, max_burst, latency, stall, seed):
    print(f"seed={seed} bus={config.bus_data_width} max_burst={max_burst} "
          f"b_latency={latency} stall={stall}")
    rng = np.random.default_rng(seed)
    bb = config.bus_data_width // 8
    base, size = inside_bus(config, 0x8000_0000, 1 << 16), 1 << 16
    commands = engine_commands(rng, bb, base, size)
    dut = DMAWriter(config, max_burst=max_burst, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, b_latency=latency, stall=stall,
                       max_burst=max_burst)
    initial = bytes(memory.mem)
    words = random_words(rng, command_beats(commands, bb, max_burst), config.bus_data_width)
    _, log = run_engine(dut, memory, commands, seed=seed, stall=stall, beats=words)
    want = expected_memory(initial, base, commands, words, beat_bytes=bb, max_burst=max_burst)
    check_memory(memory.mem, want, base, f"seed={seed}")
    assert issued_bursts(memory.aw) == bursts_of(config, commands, bb, max_burst=max_burst)
    assert len(log["done"]) == len(commands) and log["error"] is None
    assert not log["busy"][-1]


def test_writer_narrow_commands():
    """tiny's writer with its own narrow command fields."""
    config = preset("tiny")
    rng = np.random.default_rng(16)
    base, size = inside_bus(config, 0x8000_0000, 1 << 16), 1 << 16
    commands = narrow_commands(config, rng, base, size)
    dut = DMAWriter(config, max_burst=16)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, b_latency=5, stall=0.2,
                       max_burst=16)
    initial = bytes(memory.mem)
    words = random_words(rng, command_beats(commands, 4, 16), 32)
    _, log = run_engine(dut, memory, commands, seed=16, stall=0.2, beats=words)
    want = expected_memory(initial, base, commands, words, beat_bytes=4, max_burst=16)
    check_memory(memory.mem, want, base, "narrow")
    assert issued_bursts(memory.aw) == bursts_of(config, commands, 4, max_burst=16)
    assert len(log["done"]) == len(commands) and log["error"] is None


@pytest.mark.parametrize("outstanding, mhz", ERROR_CASES, ids=ERROR_IDS)
def test_writer_error_stops_bursts_and_recovers(outstanding, mhz):
    """DECERR on the second of seven bursts, with bursts outstanding: no new AW, every B
    accepted, every beat of the command (and of the next one, sent while the error is
    latched) consumed; nothing written by bursts not issued; after the clear writes work."""
    config = preset("small").replace(dma_outstanding=outstanding, target_mhz=mhz)
    max_burst, bb = 16, 8
    base, size = 0x1000_0000, 1 << 14
    rng = np.random.default_rng(31)
    failing = Command(base + 0x100, 100, 1, 0)
    bursts = split_transfer(failing, beat_bytes=bb, max_burst=max_burst,
                            block_aligned=not config.fast_clock)[0]
    commands = [failing, Command(base + 0x2000, 5, 2, 0x40), clear_error_when_idle,
                Command(base + 0x3000, 40, 2, 0x200)]
    dut = DMAWriter(config, max_burst=max_burst, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng, b_latency=12,
                       errors={bursts[1].addr + 3 * bb: 3}, max_burst=max_burst)
    initial = bytes(memory.mem)
    words = random_words(rng, command_beats(commands, bb, max_burst), 64)
    _, log = run_engine(dut, memory, commands, seed=31, beats=words)
    cycle, cause, addr = log["error"]
    assert (cause, addr) == (DMAError.DECERR, bursts[1].addr)
    issued = [aw for aw in memory.aw if aw[1] < base + 0x3000]
    late = [aw for aw in issued if aw[0] >= cycle]
    assert len(late) <= 1, f"AWs after the error: {late}"
    assert 2 <= len(issued) < len(bursts), f"issued {issued}"
    if outstanding > 1:
        # When the error arrived, at least one more burst awaited its response (so the
        # failing burst's address is not the AW register's).
        awaiting = sum(aw[0] < cycle for aw in issued) - sum(b < cycle for b in memory.b)
        assert awaiting >= min(2, outstanding - 1)
    issued_addrs = {a for _, a, _ in issued}
    want = expected_memory(initial, base, [c for c in commands if isinstance(c, Command)],
                           words, beat_bytes=bb, max_burst=max_burst,
                           written=lambda b: b.addr in issued_addrs or b.addr >= base + 0x3000)
    # The memory does not write the failing beat; it writes the rest of its burst.
    bad = bursts[1].addr + 3 * bb - base
    want[bad:bad + bb] = initial[bad:bad + bb]
    check_memory(memory.mem, want, base, "error and recovery")
    assert len(log["beats"]) == len(words), "beats left unconsumed"
    assert issued_bursts(memory.aw)[len(issued):] == bursts_of(config, commands[3:], bb,
                                                               max_burst=max_burst)
    assert len(log["done"]) == 3 and not log["busy"][-1]


@pytest.mark.parametrize("mhz, outstanding", REFUSED_CASES, ids=REFUSED_IDS)
def test_writer_refused_commands(mhz, outstanding):
    config = preset("small").replace(target_mhz=mhz, dma_outstanding=outstanding)
    bb = 8
    top = 1 << 32
    base, size = top - (1 << 14), 1 << 14
    rng = np.random.default_rng(32)
    good = Command(base + 0x800, 3, 2, 0x100)
    commands = [Command(base + 4, 3, 1, 0), clear_error_when_idle, good,
                Command(base, 0, 4, 0), clear_error_when_idle, good,
                Command(top - 0x1000, 0x100, 3, 0x800), clear_error_when_idle, good]
    plain = [c for c in commands if isinstance(c, Command)]
    dut = DMAWriter(config, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=size, rng=rng)
    initial = bytes(memory.mem)
    words = random_words(rng, command_beats(commands, bb), 64)
    _, log = run_engine(dut, memory, commands, seed=32, beats=words)
    check_memory(memory.mem, expected_memory(initial, base, plain, words, beat_bytes=bb),
                 base, "refused commands")
    assert issued_bursts(memory.aw) == bursts_of(config, plain, bb)
    assert len(log["done"]) == 5


@pytest.mark.parametrize("config", [preset("tiny"), preset("small"), preset("large")],
                         ids=lambda c: c.name)
def test_writer_full_rate_on_long_writes(config):
    """A 16 KiB contiguous write against a memory without stalls."""
    bb = config.bus_data_width // 8
    base = inside_bus(config, 0x10_0000, 16 << 10)
    beats = (16 << 10) // bb
    dut = DMAWriter(config, wide_commands=True)
    memory = AXIMemory(dut.axi, base=base, size=16 << 10, rng=np.random.default_rng(4),
                       b_latency=4)
    words = random_words(np.random.default_rng(5), beats, config.bus_data_width)
    _, log = run_engine(dut, memory, [Command(base, beats, 1, 0)], seed=4, beats=words)
    rate = beats / (log["done"][-1] - log["accepted"][0] + 1)
    print(f"{config.name}: {rate:.4f} beats/cycle to the last response")
    assert rate >= 0.95
    assert log["beats"] == list(range(log["beats"][0], log["beats"][0] + beats)), "a bubble"


def test_dma_cost_on_ecp5(build_dir):
    """The read buffer (512 x 65 bits for a 64-bit bus) maps to two DP16KD block RAMs, not to
    flip-flops; the LUT and flip-flop counts stay near what they were measured at."""
    from sw.synth import synth_cells
    cells = synth_cells(DMA(preset("small")), "ecp5", build_dir)
    flops = sum(n for name, n in cells.items() if name.startswith("TRELLIS_FF"))
    print(f"DMA, small, synth_ecp5: {cells.get('LUT4')} LUT4, {flops} FF, {cells}")
    assert cells.get("DP16KD") == 2
    assert cells["LUT4"] < 1100 and flops < 950


@pytest.mark.parametrize("name, r_to_beat", [("tiny", 2), ("small", 3)])
def test_documented_latencies(name, r_to_beat):
    """AxVALID 2 cycles after the command, a read beat 2 cycles after its R beat (3 with the
    output register, above 50 MHz), ``done`` one cycle after the last beat (read) or the B
    response (write)."""
    config = preset(name)
    reader = DMAReader(config)
    assert reader.output_register == (r_to_beat == 3)
    memory = AXIMemory(reader.axi, base=0, size=1 << 14, rng=np.random.default_rng(1),
                       latency=1)
    _, log = run_engine(reader, memory, [Command(0x100, 1, 1, 0)], seed=1, beats=1)
    assert memory.ar[0][0] - log["accepted"][0] == 2
    assert log["beats"][0] - memory.r[0] == r_to_beat
    assert log["done"][0] - log["beats"][0] == 1
    writer = DMAWriter(config)
    memory = AXIMemory(writer.axi, base=0, size=1 << 14, rng=np.random.default_rng(1),
                       b_latency=1)
    _, log = run_engine(writer, memory, [Command(0x100, 1, 1, 0)], seed=1, beats=[5])
    assert memory.aw[0][0] - log["accepted"][0] == 2 and log["beats"][0] == memory.aw[0][0]
    assert log["done"][0] - memory.b[0] == 1


def test_model_corners_beyond_the_bus():
    """The reference model on a 16-bit bus: a bit at or above it refuses the whole command
    (``range``, before ``misaligned`` and ``empty``; its bursts cut from the low bits)."""
    assert split_transfer(Command(0x1_0100, 2, 1, 0), beat_bytes=4, addr_width=16) == (
        [Burst(0x100, 2, True, True, True, "range")], "range")
    assert split_transfer(Command(0x100, 1, 2, 0x1_0000), beat_bytes=4, addr_width=16) == (
        [Burst(0x100, 1, True, False, True, "range"), Burst(0x100, 1, True, True, True)],
        "range")
    assert split_transfer(Command(0x1_0102, 1, 1, 0), beat_bytes=4, addr_width=16)[1] == "range"
    assert split_transfer(Command(0x1_0100, 0, 1, 0), beat_bytes=4, addr_width=16) == (
        [], "range")


def test_functional_model_refuses_beyond_the_bus():
    """The accelerator's functional model agrees with tiny's DMA: a LOAD at 64 KiB, a STORE
    with a 64 KiB stride (two rows) and a CONFIG at 64 KiB fail (DMA_READ / DMA_WRITE) and
    change nothing; a STORE ending exactly at 64 KiB works."""
    from hdl.isa import ErrorCause, Opcode
    from sim.functional import AcceleratorModel, SystemMemory
    from sw.assembler import Instruction

    config = preset("tiny")
    top = 1 << config.bus_addr_width
    memory = SystemMemory(2 * top)  # larger than the bus reaches: the bus decides
    memory.write(0, bytes(range(256)) * (2 * top // 256))
    image = bytes(memory.data)
    model = AcceleratorModel(config, memory)
    cases = [
        (Instruction(Opcode.LOAD, dict(sp_addr=0, rows=1, dram_addr=top, dram_stride=0)),
         ErrorCause.DMA_READ),
        (Instruction(Opcode.LOAD, dict(sp_addr=0, rows=2, dram_addr=0x100, dram_stride=top)),
         ErrorCause.DMA_READ),
        (Instruction(Opcode.STORE, dict(acc_addr=0, rows=2, dest=0x100, dram_stride=top,
                                        mode=1, to_sp=0)), ErrorCause.DMA_WRITE),
        (Instruction(Opcode.STORE, dict(acc_addr=0, rows=1, dest=top + 0x100, dram_stride=0,
                                        mode=1, to_sp=0)), ErrorCause.DMA_WRITE),
        (Instruction(Opcode.CONFIG, dict(dram_addr=top)), ErrorCause.DMA_READ),
    ]
    for insn, cause in cases:
        assert model.execute_program([insn]) == (cause, 0), insn
        assert bytes(memory.data) == image and not model.sp.any(), insn
    store = Instruction(Opcode.STORE, dict(acc_addr=0, rows=2, dest=top - 32, dram_stride=16,
                                           mode=1, to_sp=0))
    assert model.execute_program([store]) == (ErrorCause.NONE, 1)

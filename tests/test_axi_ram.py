"""The system RAM (``AXI4RAM``) in both modes, and ``SinglePortRAM``: AXI bursts and the host
port at the same time, checked against a byte array."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.axi4 import AXI4Signature, AXIBurst, AXIResp
from hdl.axi_ram import AXI4RAM
from hdl.single_port_ram import SinglePortRAM
from sim.streams import handshake, idle_cycles

#: Cycles an AXI or host-port handshake may take before the test fails (none takes more
#: than a few: the widest wait is a write beat behind a host access and a read's two stages).
LIMIT = 64

CLOCK = 1e-6


async def axi_write(ctx, axi, addr, beats, *, size=2, burst=AXIBurst.INCR, rng, stall):
    awid = int(rng.integers(16))
    for name, value in dict(awaddr=addr, awlen=len(beats) - 1, awsize=size, awburst=burst,
                            awid=awid, awvalid=1).items():
        ctx.set(getattr(axi, name), value)
    await handshake(ctx, axi.awready, limit=LIMIT)
    ctx.set(axi.awvalid, 0)
    for i, (data, strb) in enumerate(beats):
        idle = idle_cycles(rng, stall)
        if idle:
            await ctx.tick().repeat(idle)
        ctx.set(axi.wdata, data)
        ctx.set(axi.wstrb, strb)
        ctx.set(axi.wlast, i == len(beats) - 1)
        ctx.set(axi.wvalid, 1)
        await handshake(ctx, axi.wready, limit=LIMIT)
        ctx.set(axi.wvalid, 0)
    ctx.set(axi.bready, 1)
    resp, bid = await handshake(ctx, axi.bvalid, axi.bresp, axi.bid, limit=LIMIT)
    ctx.set(axi.bready, 0)
    assert bid == awid, f"BID {bid}, want {awid}"
    return AXIResp(resp)


async def axi_read(ctx, axi, addr, length, *, size=2, burst=AXIBurst.INCR, rng, stall):
    arid = int(rng.integers(16))
    for name, value in dict(araddr=addr, arlen=length - 1, arsize=size, arburst=burst,
                            arid=arid, arvalid=1).items():
        ctx.set(getattr(axi, name), value)
    await handshake(ctx, axi.arready, limit=LIMIT)
    ctx.set(axi.arvalid, 0)
    beats = []
    for _ in range(LIMIT + 8 * length):  # RREADY stalls and host accesses slow the beats
        ready = not (stall and rng.random() < stall)
        ctx.set(axi.rready, ready)
        _, _, valid, data, resp, last, rid = await ctx.tick().sample(
            axi.rvalid, axi.rdata, axi.rresp, axi.rlast, axi.rid)
        if valid and ready:
            assert rid == arid, f"RID {rid}, want {arid}"
            beats.append((data, AXIResp(resp), bool(last)))
            if len(beats) == length:
                break
    else:
        raise AssertionError(f"{len(beats)} of {length} R beats in {LIMIT + 8 * length} cycles")
    ctx.set(axi.rready, 0)
    return beats


async def host_access(ctx, host, enable):
    """Holds ``enable`` (the host port's ``w_en`` or ``r_en``) high until a cycle where the
    RAM is not ``busy``: the access is done in that cycle."""
    ctx.set(enable, 1)
    await handshake(ctx, ~host.busy, limit=LIMIT)
    ctx.set(enable, 0)


def burst_addresses(addr, length, size, burst, full_incr_only=False, max_burst=256):
    """The byte address of each beat; a burst ``full_incr_only`` refuses (also one longer
    than ``max_burst``) is outside (all beats at ``2**32``)."""
    if full_incr_only and (size != 2 or burst != AXIBurst.INCR or length > max_burst):
        return [1 << 32] * length
    step = 0 if burst == AXIBurst.FIXED else 1 << size
    return [addr + i * step for i in range(length)]


async def checked_write(ctx, dut, memory, failures, addr, beats, *, size, kind, rng, stall):
    """A write burst, applied to ``memory`` (a bytearray: the expected contents); a wrong
    response goes to ``failures``."""
    addrs = burst_addresses(addr, len(beats), size, kind, dut.full_incr_only,
                            dut.max_burst)
    resp = await axi_write(ctx, dut.axi, addr, beats, size=size, burst=kind, rng=rng,
                           stall=stall)
    for a, (data, strb) in zip(addrs, beats, strict=True):
        for lane in range(4):
            if a < len(memory) and strb >> lane & 1:
                memory[(a & ~3) + lane] = data >> 8 * lane & 0xFF
    want = AXIResp.DECERR if max(addrs) >= len(memory) else AXIResp.OKAY
    if resp != want:
        failures.append(f"write {addr:#x} x{len(beats)}: {resp}, want {want}")


async def checked_read(ctx, dut, memory, failures, addr, length, *, size, kind, rng, stall):
    """A read burst, compared with ``memory`` (DECERR and 0 past its end)."""
    addrs = burst_addresses(addr, length, size, kind, dut.full_incr_only, dut.max_burst)
    beats = await axi_read(ctx, dut.axi, addr, length, size=size, burst=kind, rng=rng,
                           stall=stall)
    for i, (a, (data, resp, last)) in enumerate(zip(addrs, beats, strict=True)):
        want = ((0, AXIResp.DECERR) if a >= len(memory) else
                (int.from_bytes(memory[a & ~3:(a & ~3) + 4], "little"), AXIResp.OKAY))
        if (data, resp) != want or last != (i == length - 1):
            failures.append(f"read {addr:#x} beat {i}: {data:#x} {resp} {last}, want {want}")


def host_writes(dut, rng, memory, low, high, count, max_gap, done):
    """A testbench: ``count`` random byte writes through the host port into ``low..high``
    (mirrored in ``memory``), 1 to ``max_gap - 1`` cycles apart; then ``done`` gets True."""
    async def host(ctx):
        for _ in range(count):
            addr, value = int(rng.integers(low, high)), int(rng.integers(256))
            await ctx.tick().repeat(int(rng.integers(1, max_gap)))
            ctx.set(dut.host.addr, addr)
            ctx.set(dut.host.w_data, value)
            await host_access(ctx, dut.host, dut.host.w_en)
            memory[addr] = value
        done.append(True)
    return host


def run_with_host_writes(dut, bus, host):
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bus)
    sim.add_testbench(host)
    sim.run()


@pytest.mark.parametrize("single_port, size_bytes, full_incr_only, registered",
                         [(False, 128, False, False), (True, 128, False, False),
                          (False, 120, False, False), (True, 128, True, False),
                          (False, 120, True, False), (False, 120, False, True)])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_ram_bursts_match_model(single_port, size_bytes, full_incr_only, registered,
                                stall):
    """Random bursts (INCR and FIXED, full and narrow beats, random strobes, outside the
    memory) while the host port writes its own region; then bursts across the end (also of
    a memory whose size is not a power of two)."""
    seed = 8
    host_top = 96  # the host port writes [96, 128) while bursts stay below or outside
    rng = np.random.default_rng(seed)
    print(f"seed={seed} single_port={single_port} size_bytes={size_bytes} "
          f"full_incr_only={full_incr_only} registered={registered} stall={stall}")
    dut = AXI4RAM(size_bytes, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                  single_port=single_port, full_incr_only=full_incr_only,
                  registered=registered)
    memory = bytearray(size_bytes)
    host_done, failures = [], []

    async def burst(ctx, addr, length, size, kind):
        if rng.random() < 0.5:
            beats = [(int(rng.integers(1 << 32)), int(rng.integers(16))) for _ in range(length)]
            await checked_write(ctx, dut, memory, failures, addr, beats, size=size, kind=kind,
                                rng=rng, stall=stall)
        else:
            await checked_read(ctx, dut, memory, failures, addr, length, size=size, kind=kind,
                               rng=rng, stall=stall)

    async def bus(ctx):
        for n in range(60):
            length = int(rng.integers(1, 9))
            size = int(rng.choice([2, 2, 2, 1, 0]))
            kind = AXIBurst.FIXED if rng.random() < 0.15 else AXIBurst.INCR
            span = (1 << size) * length
            if n % 6 == 0:
                addr = int(rng.choice([size_bytes, 0x1000, 0xFFFF_FF00]))  # all outside
            else:
                addr = int(rng.integers(0, (host_top - span) // 4 + 1)) * 4
            await burst(ctx, addr, length, size, kind)
        while not host_done:
            await ctx.tick()
        for addr in (size_bytes - 8, size_bytes - 4, size_bytes - 12):  # across the end
            for _ in range(2):
                await burst(ctx, addr, 4, 2, AXIBurst.INCR)
        for addr in range(0, size_bytes, 32):
            await burst(ctx, addr, 8, 2, AXIBurst.INCR)
        for addr in range(size_bytes):
            ctx.set(dut.host.addr, addr)
            await host_access(ctx, dut.host, dut.host.r_en)
            if ctx.get(dut.host.r_data) != memory[addr]:
                failures.append(f"host read {addr}: {ctx.get(dut.host.r_data)}, "
                                f"want {memory[addr]}")

    run_with_host_writes(dut, bus, host_writes(dut, rng, memory, host_top, size_bytes, 60, 6,
                                               host_done))
    assert not failures, f"seed={seed}: {failures[:5]}"


@pytest.mark.parametrize("single_port, size_bytes, max_burst",
                         [(False, 1024, 256), (True, 1024, 256), (False, 2048, 256),
                          (True, 2048, 256), (True, 2048, 16), (False, 1024, 8),
                          (True, 1024, 1)])
def test_long_full_incr_bursts(single_port, size_bytes, max_burst):
    """``full_incr_only`` with room for 256 beats (the last beat found by its address): INCR
    bursts of 1 to 256 full beats inside, across the end and outside, under back-pressure,
    while the host port writes the top 64 bytes; with ``max_burst``, the longer ones are
    refused (DECERR, nothing written) and still take all their beats."""
    seed = 31
    rng = np.random.default_rng(seed)
    print(f"seed={seed} single_port={single_port} size_bytes={size_bytes} "
          f"max_burst={max_burst}")
    dut = AXI4RAM(size_bytes, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                  single_port=single_port, full_incr_only=True, max_burst=max_burst)
    memory = bytearray(size_bytes)
    host_top = size_bytes - 64
    failures, done = [], []

    async def bus(ctx):
        for n in range(24):
            edges = [max_burst, max_burst + 1] if max_burst < 256 else []
            length = int(rng.choice([1, 2, 7, 8, 255, 256, *edges, int(rng.integers(1, 257))]))
            if n % 5 == 4:  # across the end, or outside
                addr = int(rng.choice([size_bytes - 8, size_bytes, 0xFFFF_FFF0]))
            else:
                addr = int(rng.integers(0, max(1, (host_top - 4 * length) // 4 + 1))) * 4
                length = min(length, (host_top - addr) // 4)
            if n % 2:
                beats = [(int(rng.integers(1 << 32)), 0xF) for _ in range(length)]
                await checked_write(ctx, dut, memory, failures, addr, beats, size=2,
                                    kind=AXIBurst.INCR, rng=rng, stall=0.3)
            else:
                await checked_read(ctx, dut, memory, failures, addr, length, size=2,
                                   kind=AXIBurst.INCR, rng=rng, stall=0.3)
        while not done:
            await ctx.tick()
        await checked_read(ctx, dut, memory, failures, 0, 256, size=2, kind=AXIBurst.INCR,
                           rng=rng, stall=0.3)

    run_with_host_writes(dut, bus, host_writes(dut, rng, memory, host_top, size_bytes, 40, 20,
                                               done))
    assert not failures, f"seed={seed}: {failures[:5]}"


@pytest.mark.parametrize("single_port, full_incr_only, registered",
                         [(False, False, False), (True, False, False), (True, True, False),
                          (False, False, True)])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_bursts_and_host_port_match_model(single_port, full_incr_only, registered, stall):
    """Random read and write bursts from two concurrent managers (edge data: 0, all-ones,
    0x80 bytes) while the host port reads and writes its own region; host reads take ``r_en``
    and check ``r_data`` the next cycle; then every byte is read back over AXI."""
    seed = 21
    size_bytes = 256
    host_base = 192  # the host owns [192, 256); the bursts stay below it or go outside
    rng = np.random.default_rng(seed)
    print(f"seed={seed} single_port={single_port} full_incr_only={full_incr_only} "
          f"registered={registered} stall={stall}")
    dut = AXI4RAM(size_bytes, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                  single_port=single_port, full_incr_only=full_incr_only,
                  registered=registered)
    memory = bytearray(size_bytes)
    failures, done = [], []
    edge_words = [0, 0xFFFF_FFFF, 0x8080_8080, 0x7F7F_7F7F]

    def random_burst(region_words):
        length = int(rng.integers(1, 9))
        size = int(rng.choice([2, 2, 1, 0]))
        kind = AXIBurst.FIXED if rng.random() < 0.15 else AXIBurst.INCR
        if rng.random() < 0.1:
            return int(rng.choice([size_bytes, 0x1000])), length, size, kind
        first = int(rng.integers(region_words[0], region_words[1] - length + 1))
        return first * 4, length, size, kind

    async def writer(ctx):
        for n in range(40):
            addr, length, size, kind = random_burst((0, 24))
            beats = [(edge_words[n % 4] if n % 3 == 0 else int(rng.integers(1 << 32)),
                      int(rng.integers(16))) for _ in range(length)]
            await checked_write(ctx, dut, memory, failures, addr, beats, size=size, kind=kind,
                                rng=rng, stall=stall)
        done.append("writer")

    async def reader(ctx):
        # Reads [96, 192) once ``fill`` has written it; the writer stays below it.
        while "filled" not in done:
            await ctx.tick()
        for _ in range(40):
            addr, length, size, kind = random_burst((24, 48))
            await checked_read(ctx, dut, memory, failures, addr, length, size=size, kind=kind,
                               rng=rng, stall=stall)
        done.append("reader")

    async def host(ctx):
        for _ in range(120):
            addr = int(rng.integers(host_base, size_bytes))
            await ctx.tick().repeat(int(rng.integers(1, 4)))
            ctx.set(dut.host.addr, addr)
            if rng.random() < 0.5:
                value = int(rng.choice([0, 0xFF, 0x80, 0x7F, int(rng.integers(256))]))
                ctx.set(dut.host.w_data, value)
                await host_access(ctx, dut.host, dut.host.w_en)
                memory[addr] = value
            else:
                await host_access(ctx, dut.host, dut.host.r_en)
                ctx.set(dut.host.addr, int(rng.integers(size_bytes)))  # must not matter
                if ctx.get(dut.host.r_data) != memory[addr]:
                    failures.append(f"host read {addr}: {ctx.get(dut.host.r_data)}, "
                                    f"want {memory[addr]}")
        done.append("host")

    async def check_all(ctx):
        while len(done) < 4:
            await ctx.tick()
        beats = await axi_read(ctx, dut.axi, 0, 64, rng=rng, stall=stall)
        got = b"".join(data.to_bytes(4, "little") for data, _, _ in beats)
        if got != bytes(memory):
            failures.append(f"final contents differ at byte "
                            f"{next(i for i in range(size_bytes) if got[i] != memory[i])}")

    # The reader's region is first filled over AXI, so that it holds known non-zero data.
    async def fill(ctx):
        words = [int(rng.integers(1 << 32)) for _ in range(24)]
        await axi_write(ctx, dut.axi, 96, [(w, 0xF) for w in words], rng=rng, stall=stall)
        memory[96:192] = b"".join(w.to_bytes(4, "little") for w in words)
        done.append("filled")
        await writer(ctx)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(fill)
    sim.add_testbench(reader)
    sim.add_testbench(host)
    sim.add_testbench(check_all)
    sim.run()
    assert not failures, f"seed={seed}: {failures[:5]}"


def test_single_port_ram_bytes_and_read_latency():
    """Byte-enabled writes and reads one cycle later, edge values, back to back."""
    seed = 5
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    dut = SinglePortRAM(width=32, depth=16)
    model = [0] * 16

    async def bench(ctx):
        for n in range(200):
            addr = int(rng.integers(16))
            ctx.set(dut.addr, addr)
            if n % 2 == 0 or rng.random() < 0.3:
                data = int(rng.choice([0, 0xFFFF_FFFF, 0x8000_0080, int(rng.integers(1 << 32))]))
                enables = int(rng.integers(16))
                ctx.set(dut.w_data, data)
                ctx.set(dut.w_en, enables)
                ctx.set(dut.r_en, 0)
                await ctx.tick()
                ctx.set(dut.w_en, 0)
                for lane in range(4):
                    if enables >> lane & 1:
                        mask = 0xFF << 8 * lane
                        model[addr] = model[addr] & ~mask | data & mask
            else:
                ctx.set(dut.r_en, 1)
                await ctx.tick()
                ctx.set(dut.r_en, 0)
                assert ctx.get(dut.r_data) == model[addr], f"seed={seed} read {addr}"

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("single_port, registered",
                         [(False, False), (True, False), (False, True)])
def test_concurrent_bursts_take_turns(single_port, registered):
    """A write and a read burst that both run flat out: the single port serves them in turn
    (each moves a beat at least every other cycle, as documented); with two ports each moves a
    beat every cycle. Neither starves. The data are checked too."""
    length = 16
    dut = AXI4RAM(256, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                  single_port=single_port, registered=registered)
    axi = dut.axi
    w_cycles, r_cycles, r_data = [], [], []
    written = [0x8000_0000 | n << 8 | 0x7F for n in range(length)]

    async def bench(ctx):
        for n in range(length):  # the read burst's data: words 0..15 (bytes 0..63)
            for lane in range(4):
                ctx.set(dut.host.addr, 4 * n + lane)
                ctx.set(dut.host.w_data, (0xA5 ^ n) + lane & 0xFF)
                ctx.set(dut.host.w_en, 1)
                await ctx.tick()
        ctx.set(dut.host.w_en, 0)
        for name, value in dict(awaddr=128, awlen=length - 1, awsize=2, awburst=AXIBurst.INCR,
                                awvalid=1, araddr=0, arlen=length - 1, arsize=2,
                                arburst=AXIBurst.INCR, arvalid=1, wvalid=1, wstrb=0xF,
                                wdata=written[0], rready=1, bready=1).items():
            ctx.set(getattr(axi, name), value)
        await ctx.tick()  # both address handshakes (AWREADY and ARREADY are high when idle)
        ctx.set(axi.awvalid, 0)
        ctx.set(axi.arvalid, 0)
        for cycle in range(4 * length):
            wready, rvalid, rdata = ctx.get(axi.wready), ctx.get(axi.rvalid), ctx.get(axi.rdata)
            await ctx.tick()
            if rvalid:
                r_cycles.append(cycle)
                r_data.append(rdata)
            if wready and len(w_cycles) < length:
                w_cycles.append(cycle)
                if len(w_cycles) < length:
                    ctx.set(axi.wdata, written[len(w_cycles)])
                    ctx.set(axi.wlast, len(w_cycles) == length - 1)
                else:
                    ctx.set(axi.wvalid, 0)
        ctx.set(axi.wvalid, 0)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    print(f"single_port={single_port} W beats in cycles {w_cycles}, R beats in {r_cycles}")
    assert len(w_cycles) == length and len(r_cycles) == length
    most = 2 if single_port else 1
    for name, cycles in (("W", w_cycles), ("R", r_cycles)):
        gaps = [b - a for a, b in zip([-1] + cycles[:-1], cycles, strict=True)]
        # R's first beat: one cycle after the AR handshake (registered: two)
        assert max(gaps) <= most + (name == "R") * (1 + registered), \
            f"{name} waited: gaps {gaps}"
    want = [int.from_bytes(bytes((0xA5 ^ n) + lane & 0xFF for lane in range(4)), "little")
            for n in range(length)]
    assert r_data == want


@pytest.mark.parametrize("single_port, registered",
                         [(False, False), (True, False), (False, True)])
def test_reads_right_after_writes_see_them(single_port, registered):
    """Back to back: a host read in the cycle after the host's write of that byte; an AXI
    read burst issued right after B, over the words its write burst just wrote."""
    seed = 31
    rng = np.random.default_rng(seed)
    print(f"seed={seed} single_port={single_port} registered={registered}")
    dut = AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                  single_port=single_port, registered=registered)
    failures = []

    async def bench(ctx):
        for value in (0x00, 0xFF, 0x80, 0x7F, *rng.integers(256, size=8)):
            addr = int(rng.integers(64))
            ctx.set(dut.host.addr, addr)
            ctx.set(dut.host.w_data, int(value))
            await host_access(ctx, dut.host, dut.host.w_en)
            await host_access(ctx, dut.host, dut.host.r_en)
            if ctx.get(dut.host.r_data) != value:
                failures.append(f"host byte {addr}: {ctx.get(dut.host.r_data)}, want {value}")
        axi = dut.axi
        for n in range(4):
            words = [0xFFFF_FFFF, 0x8080_8080, 0, int(rng.integers(1 << 32))][n:] + [n]
            beats = [(w, 0xF) for w in words]
            await axi_write(ctx, axi, 16, beats, rng=rng, stall=0.0)
            got = await axi_read(ctx, axi, 16, len(words), rng=rng, stall=0.0)
            if [data for data, _, _ in got] != words:
                failures.append(f"AXI read after write {n}: {got}, want {words}")

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    assert not failures, f"seed={seed}: {failures[:5]}"


def _unused(elaboratable):
    elaboratable._MustUse__silence = True
    return elaboratable


@pytest.mark.parametrize("make, error, message", [
    (lambda: SinglePortRAM(width=12, depth=16), ValueError, r"^width must be a positive"),
    (lambda: SinglePortRAM(width=32, depth=12), ValueError, r"^depth must be a power of two"),
    (lambda: SinglePortRAM(width="32", depth=16), TypeError, r"^width must be an integer"),
    (lambda: AXI4RAM(96, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     single_port=True), ValueError, r"^a single-port RAM size must be"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     single_port=1), TypeError, r"^single_port must be a bool"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     full_incr_only=None), TypeError, r"^full_incr_only must be a bool"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     registered=1), TypeError, r"^registered must be a bool"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     single_port=True, registered=True), ValueError,
     r"^registered needs a two-port RAM"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     full_incr_only=True, registered=True), ValueError,
     r"^registered needs a two-port RAM \(single_port=False\) serving every burst"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     max_burst=16), ValueError, r"^max_burst must be a power of two"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     full_incr_only=True, max_burst=12), ValueError, r"^max_burst must be"),
    (lambda: AXI4RAM(64, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                     full_incr_only=True, max_burst=16.0), TypeError, r"^max_burst must be an"),
    (lambda: _unused(SinglePortRAM(width=32, depth=1 << 16)).spram_tiles(), ValueError,
     r"needs 8 SPRAM tiles; an iCE40UP5K has 4$"),
])
def test_parameter_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()

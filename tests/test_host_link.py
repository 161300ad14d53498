"""The host link in the Amaranth simulator: the bridge (against :class:`sw.link.BridgeModel`,
with an AXI4-Lite register bank and the RAM behind it), the RAM (AXI4 bursts against a
Python memory), the SPI target (bit-banged pins), and the host side's retries."""

import asyncio

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hdl.axi4 import AXI4Signature
from hdl.axi_lite import AXI4LiteRegisterBank
from hdl.axi_ram import AXI4RAM, RAMPortSignature
from hdl.config import PRESETS
from hdl.host_link import FILL, PROTOCOL_VERSION, Command, HostLink, Status, crc16_step
from hdl.isa import ErrorCause, Opcode, Unit
from hdl.registers import TESSERA_ID, Access, Register, RegisterMap, tessera_register_map
from hdl.spi_target import SPITarget
from hdl.tt_um_tessera import TinyTapeoutTop
from sim.functional import AcceleratorModel, SystemMemory
from sim.streams import idle_cycles, stream_put
from sim.tb_axi_lite import RegisterBankModel
from sw.assembler import Instruction, from_words
from sw.driver import Driver, golden_gemm, random_gemm, random_requant_params
from sw.link import (
    AcceleratorError,
    BridgeModel,
    LinkBackend,
    LinkError,
    LinkInfo,
    ModelTransport,
    crc16,
    encode_reply,
    encode_request,
)

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6
RAM_BYTES = 256
MAX_PAYLOAD = 16

#: CSRs behind the bridge: every access kind; 0x18 and above are unmapped (DECERR).
CSR_MAP = RegisterMap("LINKTEST", [
    Register("SCRATCH", 0x00, Access.RW, 0x12345678, "A whole word."),
    Register("MODE", 0x04, Access.RW, 0, "Fields.", ()),
    Register("HWVAL", 0x08, Access.RO, 0, "From the hardware (0)."),
    Register("MAGIC", 0x0C, Access.CONST, 0xC0FFEE00, "A constant (writes: SLVERR)."),
    Register("PUSH", 0x10, Access.WO, 0, "A queue."),
    Register("EVENTS", 0x14, Access.RW, 0, "More."),
])


class ReadEnableGate(wiring.Component):
    """Between the bridge and the RAM's host port: ``r_data`` is the RAM's in the cycle after
    one with ``r_en`` and the inverted byte otherwise, so that a bridge relying on ``r_data``
    without ``r_en`` (which a single-ported RAM allows) reads wrong bytes."""

    def __init__(self, addr_width):
        super().__init__({"host": In(RAMPortSignature(addr_width)),
                          "ram": Out(RAMPortSignature(addr_width))})

    def elaborate(self, platform):
        m = Module()
        host, ram = self.host, self.ram
        read = Signal()
        m.d.sync += read.eq(host.r_en)
        m.d.comb += [ram.addr.eq(host.addr), ram.w_data.eq(host.w_data), ram.w_en.eq(host.w_en),
                     ram.r_en.eq(host.r_en), host.r_data.eq(Mux(read, ram.r_data, ~ram.r_data)),
                     host.busy.eq(ram.busy)]
        return m


class LinkBench(Elaboratable):
    """HostLink + RAM (behind a :class:`ReadEnableGate`) + register bank; ``link.rx``,
    ``link.tx`` and ``link.frame_end`` are the testbench's."""

    def __init__(self, ram_bytes=RAM_BYTES, max_payload=MAX_PAYLOAD, compact=False):
        self.link = HostLink(ram_bytes=ram_bytes, max_payload=max_payload, compact=compact)
        self.ram = AXI4RAM(ram_bytes, AXI4Signature(addr_width=32, data_width=32, id_width=4))
        self.gate = ReadEnableGate(self.link.ram.signature.addr_width)
        self.bank = AXI4LiteRegisterBank(CSR_MAP, addr_width=12)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link, m.submodules.ram, m.submodules.bank = self.link, self.ram, self.bank
        m.submodules.gate = self.gate
        wiring.connect(m, self.link.csr, self.bank.bus)
        wiring.connect(m, self.link.ram, self.gate.host)
        wiring.connect(m, self.gate.ram, self.ram.host)
        return m


class LoggedRAM(bytearray):
    """The model's RAM: logs the addresses of the slices read from it (its MEM_READs)."""

    def __init__(self, size):
        super().__init__(size)
        self.reads = []

    def __getitem__(self, key):
        if isinstance(key, slice):
            self.reads += range(*key.indices(len(self)))
        return super().__getitem__(key)


def reference(ram_bytes=RAM_BYTES, max_payload=MAX_PAYLOAD):
    csr = RegisterBankModel(CSR_MAP, 12)
    return BridgeModel(ram=LoggedRAM(ram_bytes), csr=csr, max_payload=max_payload)


def run_bench(events, *, seed, stall=0.0, ram_bytes=RAM_BYTES, max_payload=MAX_PAYLOAD,
              max_cycles=200_000, compact=False):
    """Feed ``events`` to the bridge: bytes, ``"END"`` (a frame_end pulse) or ``("ABORT",
    cycles)`` (an abort pulse after that many idle cycles); returns the reply bytes, the
    words pushed into PUSH and the RAM addresses read (cycles with ``r_en``). Fails if the
    bridge hangs, or reads and writes the RAM in one cycle."""
    bench = LinkBench(ram_bytes, max_payload, compact)
    link = bench.link
    rng = np.random.default_rng(seed)
    replies, pushed, reads = bytearray(), [], []

    async def producer(ctx):
        for event in events:
            if event == "END" or event[0] == "ABORT":
                if event != "END" and event[1]:
                    await ctx.tick().repeat(event[1])
                strobe = link.frame_end if event == "END" else link.abort
                ctx.set(strobe, 1)
                await ctx.tick()
                ctx.set(strobe, 0)
                continue
            for byte in event:
                await stream_put(ctx, link.rx, byte, idle=idle_cycles(rng, stall))
        for _ in range(2):
            await ctx.tick().until(~link.busy)

    async def consumer(ctx):
        while True:
            ready = not (stall and rng.random() < stall)
            ctx.set(link.tx.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(link.tx.valid, link.tx.payload)
            if ready and valid:
                replies.append(payload)

    async def pushes(ctx):
        push = bench.bank.regs.push
        while True:
            _, _, strobe, data = await ctx.tick().sample(push.strobe, push.data)
            if strobe:
                pushed.append(data)

    async def ram_port(ctx):
        port = link.ram
        while True:
            _, _, r_en, w_en, addr = await ctx.tick().sample(port.r_en, port.w_en, port.addr)
            assert not (r_en and w_en), f"seed={seed}: r_en and w_en together at {addr}"
            if r_en:
                reads.append(addr)

    sim = Simulator(bench)
    sim.add_clock(CLOCK)
    sim.add_testbench(producer)
    sim.add_process(consumer)
    sim.add_process(pushes)
    sim.add_process(ram_port)

    async def watchdog(ctx):
        await ctx.delay(max_cycles * CLOCK)
        raise AssertionError(f"seed={seed}: the bridge hung (not done in {max_cycles} cycles)")
    sim.add_process(watchdog)
    sim.run()
    return bytes(replies), pushed, reads


def dump_frames(tag, ram_bytes=RAM_BYTES, max_payload=MAX_PAYLOAD):
    """Read back every RAM byte and every mapped CSR."""
    frames = [encode_request(Command.MEM_READ, tag + i, a, max_payload)
              for i, a in enumerate(range(0, ram_bytes, max_payload))]
    frames.append(encode_request(Command.CSR_READ, tag + len(frames), 0, 16))
    return frames


def first_difference(got, want):
    return next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)))


def check(events, *, seed, stall=0.0, compact=False):
    """Run ``events`` on the bridge and on the model; the replies, the pushes and the RAM
    addresses read (the bridge's ``r_en`` cycles, the model's MEM_READs) must agree.
    Returns the model (its RAM and registers are what the bridge's must be: the events end
    with reads of all of them)."""
    model = reference()
    want = bytearray()
    for event in events:
        if event == "END":
            want += model.frame_end()
        elif event[0] == "ABORT":
            model.abort()
        else:
            want += model.feed(event)
    got, pushed, reads = run_bench(events, seed=seed, stall=stall, compact=compact)
    print(f"seed={seed} stall={stall} compact={compact}: {len(got)} reply bytes")
    assert got == bytes(want), (f"seed={seed}: replies differ at byte "
                                f"{first_difference(got, want)}: got {got.hex()}, "
                                f"want {bytes(want).hex()}")
    assert pushed == model.csr.pushed["PUSH"], f"seed={seed}: pushed {pushed}"
    assert reads == model.ram.reads, (f"seed={seed}: r_en at {reads}, "
                                      f"want {model.ram.reads}")
    return model, got


# --- The protocol model itself. ---

def test_crc16_check_value():
    assert crc16(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE
    frame = encode_request(Command.MEM_WRITE, 7, 0x20, payload=b"\x01\x02")
    assert crc16(frame) == 0  # the CRC appended MSB first leaves no remainder


def test_crc16_step_matches_python():
    from amaranth.hdl import Const
    from amaranth.sim import Simulator as Sim
    rng = np.random.default_rng(11)
    print("seed=11")
    pairs = [(0xFFFF, 0x00), (0x0000, 0xFF), (0x8000, 0x80)] + [
        (int(rng.integers(1 << 16)), int(rng.integers(256))) for _ in range(20)]
    for crc, byte in pairs:
        value = crc16_step(Const(crc, 16), Const(byte, 8))

        async def bench(ctx, value=value, crc=crc, byte=byte):
            assert ctx.get(value) == crc16(bytes([byte]), crc)
        sim = Sim(Module())
        sim.add_testbench(bench)
        sim.run()


# --- The bridge against the model. ---

def good_frames():
    """Every command, the edges of the RAM and the CSR space, every refusal."""
    ram_top = RAM_BYTES - MAX_PAYLOAD
    return [
        encode_request(Command.PING, 1, 0),
        encode_request(Command.MEM_WRITE, 2, 0, payload=bytes(range(1, 17))),
        encode_request(Command.MEM_WRITE, 3, ram_top, payload=bytes([0x80, 0x7F, 0, 0xFF] * 4)),
        encode_request(Command.MEM_WRITE, 4, RAM_BYTES - 1, payload=b"\xAA"),
        encode_request(Command.MEM_READ, 5, RAM_BYTES - 3, 3),
        encode_request(Command.MEM_READ, 6, 5, 1),
        encode_request(Command.CSR_WRITE, 7, 0x00, payload=(0xDEADBEEF).to_bytes(4, "little")
                       + (0x1234).to_bytes(4, "little")),
        encode_request(Command.CSR_READ, 8, 0x00, 16),
        encode_request(Command.CSR_WRITE_FIXED, 9, 0x10, payload=bytes(range(16))),
        encode_request(Command.CSR_WRITE, 10, 0x0C, payload=b"\1\2\3\4"),    # CONST: SLVERR
        encode_request(Command.CSR_READ, 11, 0x10, 4),                        # WO: SLVERR
        encode_request(Command.CSR_READ, 12, 0x14, 8),                        # 0x18: DECERR
        encode_request(Command.CSR_WRITE, 13, 0x14, payload=bytes(8)),        # half done
        encode_request(Command.MEM_READ, 14, RAM_BYTES - 2, 3),               # past the end
        encode_request(Command.MEM_WRITE, 15, 1 << 31, payload=b"x"),         # far past it
        encode_request(Command.CSR_READ, 16, 0x02, 4),                        # misaligned
        encode_request(Command.CSR_READ, 17, 0xFFC, 8),                       # past 4 KiB
        encode_request(Command.CSR_WRITE_FIXED, 18, 0xFFC, payload=bytes(8)),  # fixed: fits
        encode_request(Command.CSR_READ, 19, 0x00, 6),                        # not words
        encode_request(Command.MEM_READ, 20, 0, 0),                           # empty
        encode_request(Command.MEM_READ, 21, 0, MAX_PAYLOAD + 4),             # too long
        encode_request(Command.PING, 22, 0, 4),                               # ping: length 0
        bytes([0x42, 23, 0, 0, 0, 0, 0]) + crc16(bytes([0x42, 23] + [0] * 5)).to_bytes(2, "big"),
        bytes([0x43, 24, 0, 0, 0, 0, 2, 9, 9, 1, 2]),  # unknown, with payload, bad CRC
        encode_request(Command.PING, 25, 1 << 31),                            # address unused
        encode_request(Command.CSR_READ, 26, 1 << 16, 4),                     # far past 4 KiB
    ]


@pytest.mark.parametrize("compact", [False, True])
def test_bridge_good_and_refused_frames(compact):
    frames = good_frames()
    events = frames + dump_frames(100)
    model, got = check(events, seed=1, compact=compact)
    ref = reference()
    statuses = [Status(ref.feed(frame)[0]).name for frame in frames]
    assert statuses[:10] == ["OK"] * 9 + ["BUS_ERROR"], statuses
    assert statuses[10:] == ["BUS_ERROR", "BUS_ERROR", "BUS_ERROR", "BAD_ADDRESS",
                             "BAD_ADDRESS", "BAD_ADDRESS", "BAD_ADDRESS", "BUS_ERROR",
                             "BAD_LENGTH", "BAD_LENGTH", "BAD_LENGTH", "BAD_LENGTH",
                             "BAD_COMMAND", "BAD_CRC", "OK", "BAD_ADDRESS"], statuses
    assert model.ram[:16] == bytes(range(1, 17)) and model.ram[-1] == 0xAA


@pytest.mark.parametrize("stall, compact", [(0.0, False), (0.5, False), (0.5, True)])
def test_bridge_bad_crc_changes_nothing(stall, compact):
    """Write frames with one bit flipped (anywhere but the length and the payload flag, so
    that each keeps its size): all BAD_CRC, the RAM and the registers unchanged."""
    seed = 2
    rng = np.random.default_rng(seed)
    setup = encode_request(Command.MEM_WRITE, 1, 32, payload=bytes(range(100, 116)))
    events = [setup]
    for i in range(12):
        frame = bytearray([
            encode_request(Command.MEM_WRITE, 10 + i, 32, payload=bytes(16)),
            encode_request(Command.CSR_WRITE, 10 + i, 0, payload=bytes(4)),
            encode_request(Command.CSR_WRITE_FIXED, 10 + i, 0x10, payload=bytes(8)),
        ][int(rng.integers(3))])
        bit = int(rng.integers(8 * len(frame)))
        if bit // 8 == 6 or (bit // 8 == 0 and bit % 8 == 0):
            bit = 8 * 7 + bit % 8  # length and payload bit stay: the frame keeps its size
        frame[bit // 8] ^= 1 << bit % 8
        events.append(bytes(frame))
    events += dump_frames(200)
    setup_only = reference()
    setup_only.feed(setup)
    model, got = check(events, seed=seed, stall=stall, compact=compact)
    assert got.count(Status.BAD_CRC.value) >= 12
    assert (model.ram, model.csr.values) == (setup_only.ram, setup_only.csr.values)
    assert not model.csr.pushed["PUSH"]


@pytest.mark.parametrize("compact", [False, True])
def test_bridge_truncated_then_good(compact):
    frame = encode_request(Command.MEM_WRITE, 5, 8, payload=b"\x11\x22\x33\x44")
    events = []
    for cut in [1, 2, 6, 7, 9, len(frame) - 1]:
        events += [frame[:cut], "END"]
    events += ["END", bytes([FILL] * 3), "END",
               encode_request(Command.MEM_WRITE, 6, 8, payload=b"\x55"),
               encode_request(Command.MEM_READ, 7, 8, 4)]
    model, got = check(events, seed=3, compact=compact)
    assert got.count(Status.TRUNCATED.value) >= 6
    assert model.ram[8:12] == b"\x55\x00\x00\x00"


@pytest.mark.parametrize("compact", [False, True])
def test_bridge_abort_drops_requests_and_replies(compact):
    """An abort in a request drops it silently; one right after a request lets it execute but
    drops its reply; one in a reply cuts it; the next frame is answered normally."""
    write = encode_request(Command.MEM_WRITE, 1, 4, payload=b"\x11\x22")
    read = encode_request(Command.MEM_READ, 2, 0, 16)
    ping = encode_request(Command.PING, 3, 0)
    events = [write[:5], ("ABORT", 0), write[:-1], ("ABORT", 3), ping]
    check(events, seed=12, compact=compact)
    got, _, _ = run_bench([write, ("ABORT", 0), read, ("ABORT", 40), ping], seed=12,
                          compact=compact)
    full = encode_reply(Status.OK, 2, bytes(4) + b"\x11\x22" + bytes(10))
    ping_reply = reference().feed(ping)
    assert got.endswith(ping_reply), got.hex()
    assert 0 < len(got) - len(ping_reply) < len(full), got.hex()
    assert full.startswith(got[:-len(ping_reply)]), got.hex()  # the write was done


@pytest.mark.parametrize("stall, compact", [(0.0, False), (0.5, False), (0.5, True)])
def test_bridge_reads_ram_only_with_r_en(stall, compact):
    """``r_en`` is high once per byte of a good MEM_READ, at its address, and never otherwise
    (writes, CSR accesses, refused reads); the bytes come back right from a RAM whose
    ``r_data`` is wrong after a cycle without ``r_en`` (:class:`ReadEnableGate`)."""
    data = bytes(range(0x90, 0xA0))
    events = [encode_request(Command.MEM_WRITE, 1, 0x40, payload=data),
              encode_request(Command.MEM_READ, 2, 0x40, 16),
              encode_request(Command.CSR_READ, 3, 0x00, 8),
              encode_request(Command.MEM_READ, 4, RAM_BYTES - 2, 3),   # past the end: refused
              encode_request(Command.MEM_WRITE, 5, RAM_BYTES - 1, payload=b"\x5A"),
              encode_request(Command.MEM_READ, 6, RAM_BYTES - 1, 1),
              encode_request(Command.MEM_READ, 7, 0x4E, 2)]
    model, got = check(events, seed=13, stall=stall, compact=compact)
    assert model.ram.reads == [*range(0x40, 0x50), RAM_BYTES - 1, 0x4E, 0x4F]
    assert encode_reply(Status.OK, 2, data) in got and encode_reply(Status.OK, 7, data[-2:]) in got


def test_bridge_too_long_write_is_consumed_and_refused():
    long_frame = encode_request(Command.MEM_WRITE, 1, 0, payload=bytes(range(40)))
    events = [long_frame, encode_request(Command.MEM_READ, 2, 0, 16)]
    model, got = check(events, seed=4)
    assert got[:4] == encode_reply(Status.BAD_LENGTH, 1)
    assert got[4:] == encode_reply(Status.OK, 2, bytes(16))


@pytest.mark.parametrize("compact", [False, True])
def test_bridge_back_to_back_and_repeated_tags(compact):
    push = encode_request(Command.CSR_WRITE_FIXED, 9, 0x10, payload=bytes(range(16)))
    write = encode_request(Command.MEM_WRITE, 10, 0, payload=b"\x01\x02")
    again = encode_request(Command.MEM_WRITE, 10, 0, payload=b"\x09\x09")  # same tag: replay
    events = [b"".join([push, push, write, again, encode_request(Command.PING, 11, 0),
                        push, encode_request(Command.MEM_READ, 12, 0, 2)])]
    model, got = check(events, seed=5, stall=0.3, compact=compact)
    assert len(model.csr.pushed["PUSH"]) == 8  # the first push twice is one push
    assert model.ram[:2] == b"\x01\x02"


@pytest.mark.parametrize("seed, compact", [(6, False), (7, False), (8, True)])
def test_bridge_random_bytes_never_hang(seed, compact):
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(40):
        if rng.random() < 0.2:
            events.append("END")
        else:
            events.append(bytes(rng.integers(0, 256, size=int(rng.integers(1, 12)),
                                             dtype=np.uint8)))
    events += ["END", encode_request(Command.PING, 50, 0)] + dump_frames(60)
    check(events, seed=seed, stall=0.2, compact=compact)


# --- The SPI target. ---

class SPIMaster:
    """Bit-bangs the target's pins; SCK high and low for ``half`` clock cycles each."""

    def __init__(self, dut, half=4):
        self.dut, self.half = dut, half

    async def select(self, ctx, selected):
        ctx.set(self.dut.cs_n, not selected)
        await ctx.tick().repeat(self.half)

    async def byte(self, ctx, value):
        got = 0
        for bit in reversed(range(8)):
            ctx.set(self.dut.mosi, value >> bit & 1)
            await ctx.tick().repeat(self.half)
            got = got << 1 | ctx.get(self.dut.miso)
            ctx.set(self.dut.sck, 1)
            await ctx.tick().repeat(self.half)
            ctx.set(self.dut.sck, 0)
        return got


@pytest.mark.parametrize("half", [4, 7])
def test_spi_target_bytes_fill_and_frame_end(half):
    seed = 9
    rng = np.random.default_rng(seed)
    print(f"seed={seed} half={half}")
    dut = SPITarget()
    sent = [int(b) for b in rng.integers(0, 256, size=12)] + [0x00, 0xFF, 0x80, 0x01]
    replies = [0xA5, 0x00, 0xFF, 0x5A]
    received, frame_ends, miso = [], [], []

    async def master(ctx):
        spi = SPIMaster(dut, half)
        ctx.set(dut.cs_n, 1)
        await ctx.tick().repeat(4)
        await spi.select(ctx, True)
        for byte in sent:
            miso.append(await spi.byte(ctx, byte))
        await spi.select(ctx, False)
        await ctx.tick().repeat(8)
        # A second transaction: a stale reply offered while CS_N was high was drained.
        await spi.select(ctx, True)
        miso.append(await spi.byte(ctx, 0x11))
        miso.append(await spi.byte(ctx, 0x22))
        await spi.select(ctx, False)
        await ctx.tick().repeat(4)

    async def target(ctx):
        # The replies are offered once 4 bytes arrived: the 5th byte's MISO is the first.
        # After the first frame ends, one stale byte is offered: CS_N is high, it is drained.
        queue = []
        while True:
            ctx.set(dut.rx.ready, 1)
            ctx.set(dut.tx.valid, bool(queue))
            ctx.set(dut.tx.payload, queue[0] if queue else 0)
            _, _, rx_valid, rx_data, tx_ready, end = await ctx.tick().sample(
                dut.rx.valid, dut.rx.payload, dut.tx.ready, dut.frame_end)
            if tx_ready and queue:
                queue.pop(0)
            if rx_valid:
                received.append(rx_data)
                if len(received) == 4:
                    queue += replies
            if end:
                frame_ends.append(len(received))
                if len(frame_ends) == 1:
                    queue.append(0x77)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(master)
    sim.add_process(target)
    sim.run()
    assert received[:len(sent)] == sent, f"seed={seed}: {received}"
    assert received[len(sent):] == [0x11, 0x22]
    # Byte k's MISO is loaded at the boundary after byte k - 1: replies from the 5th byte.
    want = [FILL] * 4 + replies + [FILL] * (len(sent) - 4 - len(replies))
    assert miso[:len(sent)] == want, f"seed={seed}: {[hex(b) for b in miso]}"
    assert miso[len(sent):] == [FILL, FILL]
    assert frame_ends == [len(sent), len(sent) + 2]


# --- The host side's retries, over the model. ---

class ModelCSRs:
    """The accelerator's CSR protocol over the functional model: INSN words queue up, a
    STATUS read with RUN set runs the queued program to END (CYCLES: its length)."""

    def __init__(self, config, memory):
        self.map = tessera_register_map(config)
        self.config, self.memory = config, memory
        self.words, self.pushed, self.run, self.done, self.cycles = [], [], 0, False, 0

    def read(self, addr):
        reg = self.map.at(addr)
        if reg.name == "STATUS":
            if self.run and self.words:
                program = [from_words(self.words[i:i + 4]) for i in range(0, len(self.words), 4)]
                AcceleratorModel(self.config, self.memory).run(program)
                self.cycles, self.words, self.done = len(program), [], True
            return reg.encode(DONE=int(self.done)), 0
        values = {"ID": TESSERA_ID, "INSN_FREE": 16, "CYCLES_LO": self.cycles}
        return values.get(reg.name, 0), 0

    def write(self, addr, data, strb):
        reg = self.map.at(addr)
        if reg.name == "INSN":
            self.words.append(data)
            self.pushed.append(data)
            self.done = False
        elif reg.name == "CONTROL":
            self.run = data & 1
        return 0


def test_driver_over_link_model_with_corruption():
    """GEMMs through Driver(LinkBackend) over the model bridge and the functional model,
    with requests and replies corrupted now and then: golden results, and every instruction
    pushed exactly once (a write whose reply was lost is answered again, not redone)."""
    config = PRESETS["micro"]
    seed = 10
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    memory = SystemMemory(RAM_BYTES)
    csrs = ModelCSRs(config, memory)
    model = BridgeModel(ram=memory.data, csr=csrs, max_payload=MAX_PAYLOAD)
    faults = {"request": 0, "reply": 0}

    def corrupt(direction, data):
        if rng.random() < (0.05 if direction == "request" else 0.01):
            faults[direction] += 1
            data = bytearray(data)
            data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        return bytes(data)

    backend = LinkBackend(config, ModelTransport(model, corrupt), retries=8)
    driver = Driver(backend)
    programs = 0
    for m, k, n, requant in [(1, 1, 1, False), (2, 3, 5, True), (4, 4, 4, True)]:
        a, w = random_gemm(rng, m, k, n)
        params = random_requant_params(rng, n, k) if requant else None
        result = asyncio.run(driver.gemm(a, w, params))
        want = golden_gemm(config, a, w, params)
        assert np.array_equal(result.output, want), f"seed={seed} {m}x{k}x{n}"
        programs += result.instructions
    assert len(csrs.pushed) == 4 * programs
    assert faults["request"] and faults["reply"] and backend.stats["retries"], (
        faults, backend.stats)


def test_link_backend_gives_up():
    model = reference()

    def destroy(direction, data):
        return data[:-1] + bytes([data[-1] ^ 0x40]) if direction == "request" else data

    backend = LinkBackend(PRESETS["micro"], ModelTransport(model, destroy), retries=2)
    with pytest.raises(LinkError, match=r"^PING at 0x0: no good reply after 3 attempts "
                                        r"\(last: BAD_CRC\)$"):
        asyncio.run(backend.connect())
    assert backend.stats["retries"] == 2


def test_push_reports_an_error_instead_of_waiting_on_a_full_queue():
    """A stopped accelerator takes no more instructions: a push that finds the queue full
    reads STATUS and raises the latched error at once, rather than polling INSN_FREE until
    its timeout (100k frames)."""
    registers = {reg.name: reg for reg in tessera_register_map(PRESETS["micro"])}
    values = {"INSN_FREE": 0,
              "STATUS": registers["STATUS"].encode(ERROR=1),
              "ERROR_CAUSE": registers["ERROR_CAUSE"].encode(CODE=ErrorCause.DMA_READ.value,
                                                             UNIT=Unit.LOAD.value),
              "ERROR_ADDR": 0x1000}
    reads = []

    class StoppedDevice(LinkBackend):
        async def read_register(self, name):
            reads.append(name)
            return values[name]

    backend = StoppedDevice(PRESETS["micro"], transport=None, max_polls=50)
    backend.info = LinkInfo(PROTOCOL_VERSION, MAX_PAYLOAD, RAM_BYTES)   # as after a PING
    with pytest.raises(AcceleratorError) as error:
        asyncio.run(backend.push([Instruction(Opcode.END)]))
    assert "DMA_READ" in str(error.value) and "0x1000" in str(error.value), str(error.value)
    assert reads == ["INSN_FREE", "STATUS", "ERROR_CAUSE", "ERROR_ADDR"]


# --- Parameter checks. ---

@pytest.mark.parametrize("make, error, message", [
    (lambda: HostLink(ram_bytes=256, max_payload=18), ValueError,
     r"^max_payload must be 4 to 252 and a multiple of 4, not 18$"),
    (lambda: HostLink(ram_bytes=256, max_payload=256), ValueError,
     r"^max_payload must be 4 to 252 and a multiple of 4, not 256$"),
    (lambda: HostLink(ram_bytes="256"), TypeError, r"^ram_bytes must be an integer, not '256'$"),
    (lambda: HostLink(ram_bytes=0), ValueError, r"^ram_bytes must be 1 to 4294967296, not 0$"),
    (lambda: HostLink(ram_bytes=256, csr_addr_width=2), ValueError,
     r"^csr_addr_width must be 3 to 32, not 2$"),
    (lambda: AXI4RAM(250, AXI4Signature(addr_width=32, data_width=32, id_width=4)), ValueError,
     r"^RAM size must be a positive multiple of 4 bytes, not 250$"),
    (lambda: AXI4RAM(256.0, AXI4Signature(addr_width=32, data_width=32, id_width=4)),
     TypeError, r"^RAM size must be an integer, not 256\.0$"),
    (lambda: AXI4RAM(256, None), TypeError, r"^signature must be an AXI4Signature, not None$"),
    (lambda: AXI4RAM(256, AXI4Signature(addr_width=32, data_width=32, id_width=4, write=False)),
     ValueError, r"^signature must have read and write halves, not AXI4Signature\("
     r"addr_width=32, data_width=32, id_width=4, read\)$"),
    (lambda: RAMPortSignature(0), ValueError, r"^addr_width must be a positive integer, not 0$"),
    (lambda: RAMPortSignature(True), TypeError, r"^addr_width must be an integer, not True$"),
    (lambda: TinyTapeoutTop("micro"), TypeError,
     r"^config must be a TesseraConfig, not 'micro'$"),
])
def test_parameter_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()

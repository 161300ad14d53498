"""The UART in the Amaranth simulator against a bit-level serial line model: bytes received at
the exact rate and at the documented tolerance, the transmitter's waveform cycle by cycle,
framing errors, overrun, the idle gap; then the UART in front of the host link, with frames
from :func:`sw.link.encode_request` compared with :class:`sw.link.BridgeModel`."""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hdl.axi4 import AXI4Signature
from hdl.axi_lite import AXI4LiteRegisterBank
from hdl.axi_ram import AXI4RAM
from hdl.host_link import Command, HostLink, Status
from hdl.registers import Access, Register, RegisterMap
from hdl.uart import UART
from sim.tb_axi_lite import RegisterBankModel
from sw.link import BridgeModel, encode_request

CLOCK = 1e-6  # the clock's rising edge i is at (i + 0.5) * CLOCK (Simulator.add_clock)
CLK_HZ = 1_000_000
EDGE_BYTES = [0x00, 0xFF, 0x55, 0xAA]


# --- The serial line model: written from the 8N1 format, not from the HDL. ---

def character_bits(byte, stop=1):
    """Line levels of one character: start (0), 8 data bits LSB first, stop."""
    return [0] + [byte >> i & 1 for i in range(8)] + [stop]


class LineDecoder:
    """Bytes from a line sampled once per clock cycle (:meth:`push`): each character from its
    falling edge, every bit at its middle. Raises AssertionError at a low stop bit."""

    def __init__(self, cycles_per_bit):
        self.n = cycles_per_bit
        self.bytes, self.bits = [], []
        self.previous, self.index, self.start = 1, 0, None

    def push(self, level):
        if self.start is None:
            if self.previous and not level:
                self.start, self.bits = self.index, []
        elif (self.index - self.start) % self.n == self.n // 2:
            self.bits.append(level)
            if len(self.bits) == 10:
                assert self.bits[0] == 0 and self.bits[9] == 1, (
                    f"bad character from sample {self.start}: {self.bits}")
                self.bytes.append(sum(b << j for j, b in enumerate(self.bits[1:9])))
                self.start = None
        self.previous = level
        self.index += 1


def decode_line(samples, cycles_per_bit):
    decoder = LineDecoder(cycles_per_bit)
    for level in samples:
        decoder.push(level)
    return decoder.bytes


class Line:
    """Drives ``pin`` like a serial sender whose bits last ``bit_time`` seconds; ``now`` is
    the simulation time, since the testbench starts at time 0."""

    def __init__(self, pin, bit_time):
        self.pin, self.bit_time, self.now = pin, bit_time, 0.0

    async def hold(self, ctx, level, seconds):
        ctx.set(self.pin, level)
        await ctx.delay(seconds)
        self.now += seconds

    async def send(self, ctx, data, *, stop=1):
        """Characters back to back; returns the times their stop bits end."""
        ends = []
        for byte in data:
            for level in character_bits(byte, stop):
                await self.hold(ctx, level, self.bit_time)
            ends.append(self.now)
        return ends


def edge_after(seconds):
    """Index of the first rising clock edge after ``seconds``."""
    return int(np.floor(seconds / CLOCK - 0.5)) + 1


def test_line_model_round_trip():
    samples = [1] * 3
    for byte in EDGE_BYTES:
        samples += [level for level in character_bits(byte) for _ in range(5)]
    assert decode_line(samples + [1] * 4, 5) == EDGE_BYTES
    assert character_bits(0x01) == [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]


def run_receiver(dut, stimulus, *, ready=None, cycles):
    """Runs ``stimulus(ctx)``; returns the received bytes (with the edge each was taken at),
    the edges of ``rx_error`` and ``idle_gap`` pulses. ``ready(edge)`` drives ``rx.ready``."""
    got, errors, gaps = [], [], []

    async def monitor(ctx):
        edge = 0
        while True:
            ctx.set(dut.rx.ready, 1 if ready is None else ready(edge))
            _, _, valid, rdy, payload, error, gap = await ctx.tick().sample(
                dut.rx.valid, dut.rx.ready, dut.rx.payload, dut.rx_error, dut.idle_gap)
            if valid and rdy:
                got.append((payload, edge))
            if error:
                errors.append(edge)
            if gap:
                gaps.append(edge)
            edge += 1

    async def bench(ctx):
        await stimulus(ctx)
        await ctx.delay(cycles * CLOCK)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_process(monitor)
    sim.add_testbench(bench)
    sim.run()
    return got, errors, gaps


# --- Receiver. ---

RATES = [(4, 1.0), (4, 0.98), (4, 1.02), (8, 1.0), (8, 0.98), (8, 1.02), (13, 1.0),
         (13, 0.98), (13, 1.02), (8, "shorter"), (8, "longer"), (13, "shorter"),
         (13, "longer"), (9, "shorter"), (9, "longer")]


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("divisor, rate", RATES)
def test_receive_at_baud_mismatch(divisor, rate, compact):
    """Random bytes and the edge values, mostly back to back, with the sender's baud rate
    ``rate`` times ours, or its bits 97 % of :attr:`UART.rx_tolerance` shorter or longer."""
    seed = 20 + divisor
    rng = np.random.default_rng(seed)
    dut = UART(CLK_HZ, CLK_HZ / divisor, compact=compact)
    shorter, longer = dut.rx_tolerance
    stretch = {"shorter": 1 - 0.97 * shorter, "longer": 1 + 0.97 * longer}.get(rate)
    bit_time = divisor * CLOCK * (stretch or 1 / rate)
    data = EDGE_BYTES + [int(b) for b in rng.integers(0, 256, size=28)]
    print(f"seed={seed} divisor={divisor} rate={rate} bit time={bit_time / CLOCK:.3f} cycles")

    async def stimulus(ctx):
        line = Line(dut.rx_pin, bit_time)
        await line.hold(ctx, 1, (3 + rng.uniform(0.1, 0.9)) * CLOCK)
        for byte in data:
            if rng.random() < 0.3:  # an idle pause: another phase against the clock
                await line.hold(ctx, 1, rng.uniform(0.05, 2.5) * bit_time)
            await line.send(ctx, [byte])

    got, errors, gaps = run_receiver(dut, stimulus, cycles=3 * divisor)
    assert [b for b, _ in got] == data, f"seed={seed} rate={rate}: got {got}"
    assert errors == [] and gaps == []


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("divisor", [4, 8])
def test_framing_error_break_and_glitch(divisor, compact):
    """A low stop bit: the byte is dropped, one rx_error; a break (the line low for 25 bits):
    one rx_error; a glitch (low for a little less than
    :attr:`UART.glitch_cycles`): nothing; bytes after each are received."""
    dut = UART(CLK_HZ, CLK_HZ / divisor, compact=compact)
    bit = divisor * CLOCK
    events = []

    async def stimulus(ctx):
        line = Line(dut.rx_pin, bit)
        await line.hold(ctx, 1, 2.3 * CLOCK)
        await line.send(ctx, [0x81])
        await line.send(ctx, [0x3C], stop=0)
        events.append(edge_after(line.now))
        await line.hold(ctx, 1, bit)  # the receiver waits for the line to go high
        await line.send(ctx, [0xA5, 0x00])
        await line.hold(ctx, 0, 25 * bit)
        events.append(edge_after(line.now))
        await line.hold(ctx, 1, 1.5 * bit)
        await line.send(ctx, [0x7E])
        await line.hold(ctx, 1, 2 * bit)
        await line.hold(ctx, 0, (dut.glitch_cycles - 0.3) * CLOCK)
        await line.hold(ctx, 1, 2 * bit)
        await line.send(ctx, [0xFF])

    got, errors, gaps = run_receiver(dut, stimulus, cycles=3 * divisor)
    assert [b for b, _ in got] == [0x81, 0xA5, 0x00, 0x7E, 0xFF], got
    assert len(errors) == 2, errors
    # The low stop bit is seen at its middle; the break at the middle of its first stop bit.
    assert events[0] - divisor <= errors[0] <= events[0], (errors, events)
    assert errors[1] < events[1] - 10 * divisor, (errors, events)


@pytest.mark.parametrize("compact, first", [(False, 0x11), (True, 0x33)],
                         ids=["holds-oldest", "compact-keeps-newest"])
def test_overrun(compact, first):
    """rx.ready low while 3 bytes arrive: two are dropped (an rx_error each). By default the
    first is held and the next two are dropped; ``compact`` drops each byte when the next
    one's first data bit is sampled, so the last is kept. The kept byte is offered until
    taken; later bytes come through."""
    divisor = 8
    bit = divisor * CLOCK
    dut = UART(CLK_HZ, CLK_HZ / divisor, compact=compact)
    release = edge_after(4.6 * CLOCK + 33 * bit)

    async def stimulus(ctx):
        line = Line(dut.rx_pin, bit)
        await line.hold(ctx, 1, 4.6 * CLOCK)
        await line.send(ctx, [0x11, 0x22, 0x33])
        await line.hold(ctx, 1, 5 * bit)
        await line.send(ctx, [0x44])

    got, errors, gaps = run_receiver(dut, stimulus, cycles=3 * divisor,
                                     ready=lambda edge: edge >= release)
    assert [b for b, _ in got] == [first, 0x44], got
    assert got[0][1] == release, (got, release)
    assert len(errors) == 2 and errors[1] - errors[0] == 10 * divisor, errors


@pytest.mark.parametrize("divisor, gap_bits, phase", [(8, 20, 0.05), (5, 3, 0.45),
                                                       (13, 1, 0.95), (4, 2, 0.6)])
def test_idle_gap(divisor, gap_bits, phase):
    """No pulse while idle from reset; a pause of gap_bits - 1 bits: none; one pulse
    gap_bits bit times (plus the synchroniser) after the last stop bit, never a second."""
    dut = UART(CLK_HZ, CLK_HZ / divisor, gap_bits=gap_bits)
    bit = divisor * CLOCK
    ends = []

    async def stimulus(ctx):
        line = Line(dut.rx_pin, bit)
        await line.hold(ctx, 1, (3 * gap_bits + 10) * bit + phase * CLOCK)
        await line.send(ctx, [0x0F, 0xF0])
        if gap_bits > 1:
            await line.hold(ctx, 1, (gap_bits - 1) * bit)
        ends.extend(await line.send(ctx, [0x5A]))
        await line.hold(ctx, 1, (3 * gap_bits + 10) * bit)
        ends.extend(await line.send(ctx, [0xC3]))

    got, errors, gaps = run_receiver(dut, stimulus, cycles=(3 * gap_bits + 10) * divisor)
    print(f"divisor={divisor} gap_bits={gap_bits} phase={phase}: stop bits end {ends} s, "
          f"pulses at edges {gaps}")
    assert [b for b, _ in got] == [0x0F, 0xF0, 0x5A, 0xC3] and errors == []
    assert len(gaps) == 2, gaps
    for end, pulse in zip(ends, gaps, strict=True):
        earliest = edge_after(end) + gap_bits * divisor
        assert earliest <= pulse <= earliest + 3, (end / CLOCK, pulse)


# --- Transmitter. ---

def run_transmitter(dut, offers, cycles):
    """``offers``: (idle edges before, byte); the producer raises ``tx.valid`` after the idle
    edges and holds it until the handshake. Returns, edge by edge, (valid, ready, payload,
    tx_pin) as sampled at that edge."""
    trace = []

    async def producer(ctx):
        for idle, byte in offers:
            if idle:
                await ctx.tick().repeat(idle)
            ctx.set(dut.tx.valid, 1)
            ctx.set(dut.tx.payload, byte)
            await ctx.tick().until(dut.tx.ready)
            ctx.set(dut.tx.valid, 0)
        await ctx.tick().repeat(cycles)

    async def monitor(ctx):
        while True:
            _, _, *values = await ctx.tick().sample(dut.tx.valid, dut.tx.ready,
                                                    dut.tx.payload, dut.tx_pin)
            trace.append(values)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(producer)
    sim.add_process(monitor)
    sim.run()
    return trace


def transmitter_model(trace, divisor):
    """What the pin and ``ready`` must be at each edge, given the producer's ``valid``: a
    byte taken at edge h is on the pin at edges h + 1 to h + 10 divisor; ``ready`` is high
    from edge h + 10 divisor on (the last cycle of the stop bit)."""
    frame = 10 * divisor
    free_at, pins, readies = 0, [1] * len(trace), []
    for edge, (valid, _, payload, _) in enumerate(trace):
        ready = edge >= free_at
        readies.append(int(ready))
        if valid and ready:
            free_at = edge + frame
            for i, level in enumerate(character_bits(payload)):
                for j in range(divisor):
                    if edge + 1 + i * divisor + j < len(pins):
                        pins[edge + 1 + i * divisor + j] = level
    return pins, readies


@pytest.mark.parametrize("divisor", [4, 7])
def test_transmit_back_to_back_and_with_pauses(divisor):
    seed = 30 + divisor
    rng = np.random.default_rng(seed)
    print(f"seed={seed} divisor={divisor}")
    data = EDGE_BYTES + [int(b) for b in rng.integers(0, 256, size=12)]
    # Back to back, then pauses shorter and longer than a character, some at the edges.
    idles = [3] + [0] * 7 + [int(i) for i in rng.integers(0, 14 * divisor, size=8)]
    idles[9] = 10 * divisor
    dut = UART(CLK_HZ, CLK_HZ / divisor)
    trace = run_transmitter(dut, list(zip(idles, data, strict=True)), 12 * divisor)
    pins, readies = transmitter_model(trace, divisor)
    got_pins = [t[3] for t in trace]
    got_readies = [t[1] for t in trace]
    first = next((i for i, (a, b) in enumerate(zip(got_pins, pins, strict=True)) if a != b), None)
    assert first is None, f"seed={seed}: tx_pin differs first at edge {first}"
    assert got_readies == readies, f"seed={seed}: tx.ready differs"
    assert decode_line(got_pins, divisor) == data
    handshakes = [i for i, t in enumerate(trace) if t[0] and t[1]]
    assert np.diff(handshakes[:8]).tolist() == [10 * divisor] * 7, handshakes


def test_loopback():
    """tx_pin into rx_pin: what goes out comes back, in order, with idle gap afterwards."""
    divisor = 6
    seed = 40
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    data = EDGE_BYTES + [int(b) for b in rng.integers(0, 256, size=8)]
    dut = UART(CLK_HZ, CLK_HZ / divisor, gap_bits=4)
    m = Module()
    m.submodules.uart = dut
    m.d.comb += dut.rx_pin.eq(dut.tx_pin)
    got, gaps = [], []

    async def producer(ctx):
        for byte in data:
            ctx.set(dut.tx.valid, 1)
            ctx.set(dut.tx.payload, byte)
            await ctx.tick().until(dut.tx.ready)
        ctx.set(dut.tx.valid, 0)
        await ctx.tick().repeat(20 * divisor)

    async def consumer(ctx):
        ctx.set(dut.rx.ready, 1)
        while True:
            _, _, valid, payload, gap = await ctx.tick().sample(dut.rx.valid, dut.rx.payload,
                                                                dut.idle_gap)
            if valid:
                got.append(payload)
            if gap:
                gaps.append(gap)

    sim = Simulator(m)
    sim.add_clock(CLOCK)
    sim.add_testbench(producer)
    sim.add_process(consumer)
    sim.run()
    assert got == data and gaps == [1], f"seed={seed}: {got} {gaps}"


# --- Parameters. ---

@pytest.mark.parametrize("clk_hz, baud, divisor", [
    (12_000_000, 3_000_000, 4), (12e6, 115200, 104), (12_000_000, 921600, 13),
    (25e6, 115200, 217), (48_000_000, 1_000_000, 48)])
def test_divisor(clk_hz, baud, divisor):
    dut = UART(clk_hz, baud)
    dut._MustUse__silence = True
    assert dut.divisor == divisor
    assert abs(dut.actual_baud / baud - 1) <= 0.02


@pytest.mark.parametrize("make, error, message", [
    (lambda: UART(12_000_000, 2_500_000), ValueError,
     r"^baud must be within 2% of clk_hz / an integer, not 2500000 \(clk_hz / 5 is 2400000, "
     r"-4\.0%\)$"),
    (lambda: UART(12_000_000, 1.3e6), ValueError,
     r"^baud must be within 2% of clk_hz / an integer, not 1300000\.0 \(clk_hz / 9 is "
     r"1333333, \+2\.6%\)$"),
    (lambda: UART(12_000_000, 4_000_000), ValueError,
     r"^baud must be at most clk_hz / 4 \(3000000\), not 4000000$"),
    (lambda: UART(12_000_000, 0), ValueError, r"^baud must be positive and finite, not 0$"),
    (lambda: UART(12_000_000, "115200"), TypeError, r"^baud must be a number, not '115200'$"),
    (lambda: UART(-1, 115200), ValueError, r"^clk_hz must be positive and finite, not -1$"),
    (lambda: UART(float("inf"), 115200), ValueError,
     r"^clk_hz must be positive and finite, not inf$"),
    (lambda: UART(True, 115200), TypeError, r"^clk_hz must be a number, not True$"),
    (lambda: UART(12e6, 115200, compact=1), TypeError, r"^compact must be a bool, not 1$"),
    (lambda: UART(12e6, 115200, gap_bits=0), ValueError,
     r"^gap_bits must be a positive integer, not 0$"),
    (lambda: UART(12e6, 115200, gap_bits=2.0), TypeError,
     r"^gap_bits must be an integer, not 2\.0$"),
])
def test_parameter_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


# --- The UART in front of the host link. ---

RAM_BYTES = 64
MAX_PAYLOAD = 16
DIVISOR = 8
GAP_BITS = 12
CSR_MAP = RegisterMap("UARTLINK", [
    Register("SCRATCH", 0x00, Access.RW, 0x12345678, "A whole word."),
    Register("MAGIC", 0x04, Access.CONST, 0xC0FFEE00, "A constant."),
])


class SerialBridge(Elaboratable):
    """UART -> HostLink -> RAM and a register bank: the host link as a board has it."""

    def __init__(self, compact=False):
        self.uart = UART(CLK_HZ, CLK_HZ / DIVISOR, gap_bits=GAP_BITS, compact=compact)
        self.link = HostLink(ram_bytes=RAM_BYTES, max_payload=MAX_PAYLOAD, compact=compact)
        self.ram = AXI4RAM(RAM_BYTES, AXI4Signature(addr_width=32, data_width=32, id_width=4),
                           single_port=compact, full_incr_only=compact)
        self.bank = AXI4LiteRegisterBank(CSR_MAP, addr_width=12)

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart, m.submodules.link = self.uart, self.link
        m.submodules.ram, m.submodules.bank = self.ram, self.bank
        wiring.connect(m, self.uart.rx, self.link.rx)
        wiring.connect(m, self.link.tx, self.uart.tx)
        m.d.comb += self.link.frame_end.eq(self.uart.idle_gap)
        wiring.connect(m, self.link.csr, self.bank.bus)
        wiring.connect(m, self.link.ram, self.ram.host)
        return m


@pytest.mark.parametrize("compact", [False, True])
def test_host_link_over_uart(compact):
    """Frames as serial bits, replies decoded from tx_pin, against the model: every command,
    a frame cut short by an idle gap (TRUNCATED), a corrupted byte (BAD_CRC), a byte with a
    bad stop bit (dropped: the frame is short, the gap truncates it), then good frames."""
    seed = 50
    rng = np.random.default_rng(seed)
    print(f"seed={seed} divisor={DIVISOR} gap_bits={GAP_BITS}")
    payload = bytes([0x00, 0xFF, 0x55, 0xAA]) + bytes(rng.integers(0, 256, 12, dtype=np.uint8))
    write = encode_request(Command.MEM_WRITE, 2, 8, payload=payload)
    corrupted = bytearray(encode_request(Command.MEM_WRITE, 7, 8, payload=bytes(16)))
    corrupted[12] ^= 0x10
    # (bytes, how the line ends them): "reply" waits for the reply, "gap" idles gap_bits.
    # "framing": the last byte goes out with a low stop bit.
    steps = [
        (encode_request(Command.PING, 1, 0), "reply"),
        (write, "reply"),
        (encode_request(Command.MEM_READ, 3, 8, 16), "reply"),
        (encode_request(Command.CSR_WRITE, 4, 0, payload=(0xDEADBEEF).to_bytes(4, "little")),
         "reply"),
        (encode_request(Command.CSR_READ, 5, 0, 8), "reply"),
        (encode_request(Command.MEM_WRITE, 6, 0, payload=bytes(8))[:10], "gap"),
        (bytes(corrupted), "reply"),
        (encode_request(Command.MEM_WRITE, 8, 0, payload=b"\x01\x02\x03\x04"), "framing"),
        (encode_request(Command.MEM_READ, 9, 0, 16), "reply"),
        (encode_request(Command.MEM_WRITE, 10, 60, payload=b"\x0A\x0B\x0C\x0D"), "reply"),
        (encode_request(Command.MEM_READ, 11, 56, 8), "reply"),
    ]

    model = BridgeModel(ram=bytearray(RAM_BYTES), csr=RegisterBankModel(CSR_MAP, 12),
                        max_payload=MAX_PAYLOAD)
    want, expected_counts = bytearray(), []
    for data, end in steps:
        if end == "framing":  # the last byte is lost on the line
            want += model.feed(data[:-1]) + model.frame_end()
        else:
            want += model.feed(data) + (model.frame_end() if end == "gap" else b"")
        expected_counts.append(len(want))

    dut = SerialBridge(compact)
    bit = DIVISOR * CLOCK
    replies = LineDecoder(DIVISOR)
    rx_errors = []

    async def host(ctx):
        line = Line(dut.uart.rx_pin, bit)
        await line.hold(ctx, 1, 5.7 * CLOCK)
        for (data, end), count in zip(steps, expected_counts, strict=True):
            if end == "framing":
                await line.send(ctx, data[:-1])
                await line.send(ctx, data[-1:], stop=0)
            else:
                await line.send(ctx, data)
            # Wait for the reply (then a little more) or, at most, 60 characters.
            for _ in range(600):
                await line.hold(ctx, 1, bit)
                if len(replies.bytes) >= count:
                    break
            await line.hold(ctx, 1, (GAP_BITS + 4) * bit)

    async def monitor(ctx):
        while True:
            _, _, pin, error = await ctx.tick().sample(dut.uart.tx_pin, dut.uart.rx_error)
            replies.push(pin)
            if error:
                rx_errors.append(error)

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(host)
    sim.add_process(monitor)
    sim.run()

    got = bytes(replies.bytes)
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                 min(len(got), len(want)))
    assert got == bytes(want), (f"seed={seed}: replies differ at byte {first}: got {got.hex()}, "
                                f"want {bytes(want).hex()}")
    statuses = [Status(want[start]).name for start in [0] + expected_counts[:-1]]
    assert statuses == ["OK"] * 5 + ["TRUNCATED", "BAD_CRC", "TRUNCATED"] + ["OK"] * 3, statuses
    assert rx_errors == [1], rx_errors
    assert model.ram[8:24] == payload and model.ram[60:] == b"\x0A\x0B\x0C\x0D"

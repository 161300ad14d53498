"""DMA reference model, random transfers, and the cocotb testbench of the generated Verilog.

:func:`split_transfer` is the reference model of :class:`hdl.burst_splitter.BurstSplitter`;
:func:`random_command` makes the transfers of the tests (near 4 KiB boundaries, at the
256-beat limit, one-beat rows, big strides); the ``expected_*`` and ``check_*`` helpers turn
the model into expected beats and memory images. They are shared with the Amaranth-simulator
tests (``tests/test_dma.py``).

The cocotb tests drive :class:`hdl.dma.DMA` (its Verilog from ``sw.verilog``) against
:class:`CheckedAxiRam`, cocotbext-axi's AxiRam made strict. They run through
:func:`sim.cocotb_run.run_cocotb` (``tests/test_dma_cocotb.py``, ``bench/dma_bench.py``);
parameters come in the environment: ``TESSERA_CONFIG`` (the config as JSON),
``TESSERA_SEED``, ``TESSERA_STALL`` (probability of a pause cycle on every memory channel and
of a stall on every stream), ``TESSERA_LATENCY`` (extra read latency of the memory, cycles),
``TESSERA_MAX_BURST``, ``TESSERA_COMMANDS`` (random commands per direction) and, for the
benchmark only, ``TESSERA_BENCH_OUT`` (where its JSON goes).
"""

import json
import os
from collections import deque
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam, AxiResp

from hdl.axi4 import MAX_BURST_BEATS, PAGE_BYTES
from hdl.burst_splitter import DMAError, command_field_widths, dma_command_layout
from hdl.dma_read import read_beat_layout
from sim.cocotb_run import config_from_env
from sim.cocotb_streams import start_clock_and_reset

__all__ = ["Burst", "Command", "beat_addresses", "burst_rule_violations", "check_memory",
           "check_read_beats", "command_beats", "command_fits", "edge_commands",
           "expected_memory",
           "expected_read_beats", "flag_beats", "model_bursts", "random_command",
           "random_words", "split_transfer"]


@dataclass(frozen=True)
class Command:
    """A DMA command (:func:`hdl.burst_splitter.dma_command_layout`)."""
    addr: int
    row_beats: int
    rows: int
    stride: int

    def fields(self):
        return {"addr": self.addr, "row_beats": self.row_beats, "rows": self.rows,
                "stride": self.stride}


@dataclass(frozen=True)
class Burst:
    """A burst: byte address, beats (AxLEN + 1), end of row, end of command, refused, and the
    error the first refused burst of a command reports (with the command's address)."""
    addr: int
    beats: int
    row_last: bool
    last: bool
    refused: bool = False
    cause: str | None = None


def command_fits(config, command):
    """Whether ``command``'s ``row_beats`` and ``rows`` fit the fields of the DMA's own
    (narrow at 50 MHz and below) :func:`hdl.burst_splitter.dma_command_layout`."""
    row_beats_width, rows_width = command_field_widths(config)
    return command.row_beats >> row_beats_width == 0 and command.rows >> rows_width == 0


def reported_address(config, addr):
    """The address an engine reports for a command error of a command at ``addr``: ``addr``,
    or at 50 MHz and below on a bus narrower than 32 bits with its bits above the bus all set
    if any was (:attr:`hdl.burst_splitter.BurstSplitter.folds_high_bits`)."""
    width = config.bus_addr_width
    if config.fast_clock or width >= 32 or addr >> width == 0:
        return addr
    return (addr & ((1 << width) - 1)) | (((1 << 32) - 1) ^ ((1 << width) - 1))


def split_transfer(command, *, beat_bytes, max_burst=256, addr_width=32, block_aligned=False):
    """The bursts of ``command`` and the error it raises (``None``, ``"misaligned"``,
    ``"empty"`` or ``"range"``), as :class:`hdl.burst_splitter.BurstSplitter` makes them
    (``block_aligned``: as its :attr:`~hdl.burst_splitter.BurstSplitter.block_aligned`) on a
    bus of ``addr_width`` bits (``command`` may have bits above it: ``"range"``)."""
    top = 1 << addr_width
    # A bit at or above addr_width: the whole command is refused (before anything else),
    # its bursts cut from the low bits.
    high = (command.addr | command.stride) >= top
    if command.row_beats == 0 or command.rows == 0:
        return [], "range" if high else "empty"
    page = PAGE_BYTES
    mask = top - 1
    misaligned = bool(command.addr % beat_bytes or command.stride % beat_bytes)
    refused = misaligned or high
    error = announce = "range" if high else "misaligned" if misaligned else None
    row = (command.addr & mask) // beat_bytes * beat_bytes
    stride = (command.stride & mask) // beat_bytes * beat_bytes
    bursts = []
    for r in range(command.rows):
        addr, left = row, command.row_beats
        last_row = r == command.rows - 1
        while left:
            block = max_burst - addr // beat_bytes % max_burst if block_aligned else max_burst
            beats = min(left, block, (page - addr % page) // beat_bytes)
            row_last = beats == left
            bursts.append(Burst(addr, beats, row_last,
                                row_last and last_row, refused, announce))
            announce = None
            left -= beats
            wraps = (addr + beats * beat_bytes >= top if left else
                     not last_row and row + stride >= top)
            if wraps and not refused:
                refused, error = True, "range"
                announce = error
            addr = (addr + beats * beat_bytes) & mask
        row = (row + stride) & mask
    return bursts, error


def beat_addresses(bursts, beat_bytes):
    """The byte address of every beat of ``bursts``."""
    return [b.addr + i * beat_bytes for b in bursts for i in range(b.beats)]


def random_command(rng, beat_bytes, *, max_rows=4, max_row_beats=600, region=(0, 1 << 20)):
    """A random valid command inside ``region`` (start, end): rows near 4 KiB boundaries,
    one-beat rows, rows of exactly 256 beats or just above or below, big strides."""
    start, end = region
    kind = rng.integers(0, 6)
    if kind == 0:
        row_beats = 1
    elif kind == 1:
        row_beats = int(rng.choice([255, 256, 257, 512, PAGE_BYTES // beat_bytes]))
    elif kind == 2:
        row_beats = int(rng.integers(1, 9))
    else:
        row_beats = int(rng.integers(1, max_row_beats + 1))
    rows = int(rng.integers(1, max_rows + 1))
    row_bytes = row_beats * beat_bytes
    stride_kind = rng.integers(0, 4)
    if stride_kind == 0:
        stride = row_bytes
    elif stride_kind == 1:
        stride = row_bytes + beat_bytes * int(rng.integers(1, 64))
    elif stride_kind == 2:
        stride = PAGE_BYTES * int(rng.integers(1, 4)) + beat_bytes * int(rng.integers(-2, 3))
        stride = max(stride, row_bytes)
    else:
        stride = beat_bytes * int(rng.integers(0, row_beats + 1))  # overlapping rows
    span = (rows - 1) * stride + row_bytes
    room = (end - start - span) // beat_bytes
    if room < 0:
        return random_command(rng, beat_bytes, max_rows=max_rows,
                              max_row_beats=max_row_beats, region=region)
    addr = start + beat_bytes * int(rng.integers(0, room + 1))
    if rng.random() < 0.5:
        # A few beats before a 4 KiB boundary, so that the row crosses it.
        near = (addr // PAGE_BYTES + 1) * PAGE_BYTES - beat_bytes * int(rng.integers(0, 8))
        if start <= near <= start + room * beat_bytes:
            addr = near
    return Command(addr, row_beats, rows, stride)


def burst_rule_violations(addr, beats, size, burst, *, beat_bytes, max_burst=256):
    """What is wrong with an AR or AW burst (empty when it follows the rules)."""
    problems = []
    if 1 << size != beat_bytes:
        problems.append(f"AxSIZE {size} is not the beat size ({beat_bytes} bytes)")
    if burst != 1:
        problems.append(f"AxBURST {burst} is not INCR")
    if addr % beat_bytes:
        problems.append(f"address {addr:#x} is not beat-aligned")
    if not 1 <= beats <= max_burst:
        problems.append(f"{beats} beats (at most {max_burst})")
    if addr % PAGE_BYTES + beats * beat_bytes > PAGE_BYTES:
        problems.append(f"{beats} beats from {addr:#x} cross a 4 KiB boundary")
    return problems


def expected_read_beats(commands, read, *, beat_bytes, max_burst=256, addr_width=32,
                        block_aligned=False):
    """(data, row_last, last) of every beat the read engine delivers for ``commands`` from a
    memory without errors; ``read(addr, n)`` returns ``n`` bytes. A refused command's beats
    are ``(None, row_last, last)``: their data is unspecified and their error flag set.
    Items of ``commands`` that are not :class:`Command` are skipped."""
    beats = []
    for command in commands:
        if not isinstance(command, Command):
            continue
        bursts, error = split_transfer(command, beat_bytes=beat_bytes, max_burst=max_burst,
                                       addr_width=addr_width)
        for b in bursts:
            for i in range(b.beats):
                end = i == b.beats - 1
                data = None if b.refused else int.from_bytes(
                    read(b.addr + i * beat_bytes, beat_bytes), "little")
                beats.append((data, end and b.row_last, end and b.last))
    return beats


def edge_commands(beat_bytes, base=0):
    """Hand-picked corners, inside ``base`` .. ``base + 0x200000``."""
    b = beat_bytes
    page_beats = PAGE_BYTES // b
    return [Command(base + c.addr, c.row_beats, c.rows, c.stride) for c in [
        Command(0, 1, 1, 0),                          # one beat
        Command(0x1000, 256, 1, 0),                   # a row of exactly 256 beats
        Command(0x1000 - b, 256, 2, 0x3000),          # crosses 4 KiB after one beat
        Command(0x2000 - 255 * b, 512, 1, 0),         # 255 + 256 + 1
        Command(0x3000, page_beats + 1, 1, 0),        # a whole page and one beat more
        Command(0x40, 1, 17, b),                      # one-beat rows back to back
        Command(0x40, 3, 5, 0),                       # stride 0: the same row again
        Command(0x100000, 7, 3, 0x7FF00 // b * b),    # big stride
        Command(0x5000, 300, 1, 0),                   # > 256 beats, 4 KiB aligned
    ]]


def model_bursts(commands, beat_bytes, *, max_burst=256, addr_width=32, block_aligned=False):
    """(address, beats) of the bursts the engine issues for ``commands`` (the non-refused
    ones); items of ``commands`` that are not :class:`Command` are skipped."""
    return [(b.addr, b.beats) for c in commands if isinstance(c, Command)
            for b in split_transfer(c, beat_bytes=beat_bytes, max_burst=max_burst,
                                    addr_width=addr_width, block_aligned=block_aligned)[0]
            if not b.refused]


def command_beats(commands, beat_bytes, max_burst=256, block_aligned=False):
    """Beats that ``commands`` move in all (items that are not :class:`Command` skipped)."""
    return sum(b.beats for c in commands if isinstance(c, Command)
               for b in split_transfer(c, beat_bytes=beat_bytes, max_burst=max_burst,
                                             block_aligned=block_aligned)[0])


def check_read_beats(received, want, context):
    """``received``: (data, row_last, last, error); ``want``: (data, row_last, last) with data
    ``None`` for a beat that must be flagged (its data is not checked)."""
    assert len(received) == len(want), f"{context}: {len(received)} beats, want {len(want)}"
    for i, (got, (data, row_last, last)) in enumerate(zip(received, want, strict=True)):
        flagged = data is None
        expected = (got[0] if flagged else data, row_last, last, flagged)
        assert got == expected, f"{context}: first mismatch at beat {i}: {got} != {expected}"


def flag_beats(want, start, stop):
    """``want`` with the beats ``start`` to ``stop - 1`` expected flagged."""
    return [(None, *beat[1:]) if start <= i < stop else beat for i, beat in enumerate(want)]


def expected_memory(initial, base, commands, words, *, beat_bytes, max_burst=256,
                    written=lambda burst: not burst.refused, block_aligned=False,
                    addr_width=32):
    """``initial`` (the memory from ``base`` on) after the writes of ``commands`` with
    ``words``, in order; bursts for which ``written(burst)`` is false consume their words
    without writing."""
    memory = bytearray(initial)
    words = iter(words)
    for command in commands:
        if not isinstance(command, Command):
            continue
        for b in split_transfer(command, beat_bytes=beat_bytes, max_burst=max_burst,
                                block_aligned=block_aligned, addr_width=addr_width)[0]:
            for i in range(b.beats):
                word = next(words)
                if written(b):
                    offset = b.addr + i * beat_bytes - base
                    memory[offset:offset + beat_bytes] = word.to_bytes(beat_bytes, "little")
    return memory


def check_memory(got, want, base, context):
    """Compares two memory images from ``base``; names the first wrong byte."""
    if got != want:
        first = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        raise AssertionError(f"{context}: first wrong byte at {base + first:#x}: "
                             f"{got[first]:#04x} != {want[first]:#04x}")


# --- cocotb: the generated Verilog of hdl.dma.DMA against cocotbext-axi's AxiRam ---

#: Marks, in a command list, where the testbench waits for the engine to be idle and then
#: pulses its ``error_clear``.
CLEAR = "clear"

#: Inputs of the DMA's Verilog (besides the AXI port, which AxiRam drives).
DMA_INPUTS = ("read_cmd__valid", "read_cmd__payload", "read_data__ready",
              "read_status__error_clear", "write_cmd__valid", "write_cmd__payload",
              "write_data__valid", "write_data__payload", "write_status__error_clear")


class AccessOutside(Exception):
    """An access outside the memory the test expects."""


class InjectedError(Exception):
    """An access the test answers with an error response."""


class CheckedAxiRam(AxiRam):
    """cocotbext-axi's AxiRam, made strict: the memory is ``size`` bytes at ``base`` and any
    access outside it is recorded in ``violations`` (and answered SLVERR) instead of wrapping
    modulo the size; ``errors`` maps beat addresses to the AXI response they get (SLVERR or
    DECERR; AxiRam itself only knows SLVERR, for a failing access); R beats of a burst start
    at least ``latency`` cycles after its AR handshake (``ar_cycles``, filled by the
    testbench's monitor, holds those cycles; bursts stay pipelined; with ``latency`` 0 no
    log is kept).
    """

    def __init__(self, bus, clock, reset, *, base, size, rng, cycle, latency=0, errors=None):
        super().__init__(bus, clock, reset, mem=bytearray(rng.bytes(size)))
        self.base, self.latency, self.cycle = base, latency, cycle
        self.errors = dict(errors or {})
        self.violations = []
        self.ar_cycles = deque()
        self._response = {"read": None, "write": None}
        self.read_if._read = self._checked_read
        self.write_if._write = self._checked_write
        self._override_response(self.read_if.r_channel, "rresp", "read")
        self._override_response(self.write_if.b_channel, "bresp", "write")
        if not latency:
            return  # no AR log needed
        receive = self.read_if.ar_channel.recv
        clock_edge = RisingEdge(clock)

        async def delayed_receive():
            ar = await receive()
            due = self.ar_cycles.popleft() + self.latency
            while self.cycle() < due:
                await clock_edge
            return ar
        self.read_if.ar_channel.recv = delayed_receive

    def _override_response(self, channel, field, kind):
        send = channel.send

        async def send_with_response(transaction):
            if self._response[kind] is not None:
                setattr(transaction, field, self._response[kind])
                self._response[kind] = None
            await send(transaction)
        channel.send = send_with_response

    def _check(self, kind, address, length):
        if not (self.base <= address and address + length <= self.base + len(self.mem)):
            self.violations.append(f"{kind} of {length} bytes at {address:#x} outside the "
                                   f"memory ({self.base:#x} + {len(self.mem):#x})")
            raise AccessOutside(address)
        if address in self.errors:
            self._response[kind] = self.errors[address]
            raise InjectedError(address)

    async def _checked_read(self, address, length):
        self._check("read", address, length)
        return self.read(address - self.base, length)

    async def _checked_write(self, address, data):
        self._check("write", address, len(data))
        self.write(address - self.base, data)


class TB:
    """Owns clock, reset, the AxiRam and the DMA's streams; one coroutine drives the streams
    and monitors every channel, cycle by cycle.

    ``stall``: probability of a pause cycle on every AxiRam channel, of an idle cycle before
    each command and write beat, and of ``read_data.ready`` low.
    """

    def __init__(self, dut, config, *, seed, stall=0.0, latency=0, base, size, errors=None,
                 max_burst=MAX_BURST_BEATS, stream_stall=None):
        self.dut, self.config, self.stall, self.max_burst = dut, config, stall, max_burst
        self.stream_stall = stall if stream_stall is None else stream_stall
        self.bb = config.bus_data_width // 8
        self.base = base
        self.rng = np.random.default_rng(seed)
        self.cycle = 0
        self.command = dma_command_layout(config, wide=True)  # as build_dma
        self.beat_fields = {name: (field.offset, field.width)
                            for name, field in read_beat_layout(config)}
        self.ram = CheckedAxiRam(AxiBus.from_prefix(dut, "axi", bus_separator="__"),
                                 dut.clk, dut.rst, base=base, size=size, rng=self.rng,
                                 cycle=lambda: self.cycle, latency=latency, errors=errors)
        self.log = {key: [] for key in ("ar", "aw", "violations")}
        for engine in ("read", "write"):
            self.log.update({f"{engine}_accept": [], f"{engine}_beats": [],
                             f"{engine}_done": [], f"{engine}_errors": []})
        self.log["r"] = self.log["b"] = 0

    async def start(self):
        await start_clock_and_reset(self.dut, DMA_INPUTS)
        if self.stall:
            ram = self.ram
            for channel in (ram.read_if.ar_channel, ram.read_if.r_channel,
                            ram.write_if.aw_channel, ram.write_if.w_channel,
                            ram.write_if.b_channel):
                channel.set_pause_generator(self._pauses(int(self.rng.integers(1 << 31))))

    def _pauses(self, seed):
        rng = np.random.default_rng(seed)
        while True:
            yield bool(rng.random() < self.stall)

    def _stalled(self):
        return bool(self.stream_stall and self.rng.random() < self.stream_stall)

    def _beat(self, bits):
        return tuple(bits >> offset & ((1 << width) - 1) if name == "data"
                     else bool(bits >> offset & 1)
                     for name, (offset, width) in self.beat_fields.items())

    def _check_burst(self, channel, addr, length, size, burst):
        for problem in burst_rule_violations(addr, length + 1, size, burst, beat_bytes=self.bb,
                                             max_burst=self.max_burst):
            self.log["violations"].append(f"cycle {self.cycle}: {channel} {problem}")

    async def run(self, reads=(), writes=(), words=(), *, timeout=500_000):
        """Offer the ``reads`` and ``writes`` commands (and :data:`CLEAR` marks), the write
        ``words``; returns the read beats, (data, row_last, last, error), once every expected
        beat moved and both engines are idle."""
        dut, log = self.dut, self.log
        n_read = command_beats(reads, self.bb, self.max_burst)
        queues = {"read": deque(reads), "write": deque(writes)}
        offered = {"read": None, "write": None}
        idle = {"read": True, "write": True}
        words = deque(words)
        word_offered = False
        received = []
        holds = {"ar": None, "aw": None, "w": None}
        ports = {engine: {name: getattr(dut, f"{engine}_{name}") for name in (
            "cmd__valid", "cmd__ready", "cmd__payload", "status__busy", "status__done",
            "status__error", "status__error_cause", "status__error_addr",
            "status__error_clear")} for engine in ("read", "write")}
        axi = {name: getattr(dut, f"axi__{name}") for name in (
            "arvalid", "arready", "araddr", "arlen", "arsize", "arburst", "awvalid",
            "awready", "awaddr", "awlen", "awsize", "awburst", "wvalid", "wready", "wdata",
            "wstrb", "wlast", "rvalid", "rready", "bvalid", "bready")}
        strobes = (1 << self.bb) - 1
        last_error = {"read": False, "write": False}
        start = self.cycle
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            assert self.cycle - start < timeout, f"timeout after {timeout} cycles: {log}"
            # --- drive ---
            for engine, port in ports.items():
                port["status__error_clear"].value = 0
                queue = queues[engine]
                if offered[engine] is None and queue:
                    if queue[0] is CLEAR:
                        if idle[engine]:
                            queue.popleft()
                            port["status__error_clear"].value = 1
                    elif not self._stalled():
                        offered[engine] = queue.popleft()
                        port["cmd__payload"].value = self.command.const(
                            offered[engine].fields()).as_bits()
                port["cmd__valid"].value = offered[engine] is not None
            dut.read_data__ready.value = not self._stalled()
            if not word_offered and words and not self._stalled():
                dut.write_data__payload.value = words.popleft()
                word_offered = True
            dut.write_data__valid.value = word_offered
            # --- sample ---
            await ReadOnly()
            cycle = self.cycle
            for engine, port in ports.items():
                if offered[engine] is not None and port["cmd__ready"].value:
                    log[f"{engine}_accept"].append(cycle)
                    offered[engine] = None
                # Idle: nothing offered and not busy, sampled after the last acceptance.
                recent = log[f"{engine}_accept"] and log[f"{engine}_accept"][-1] >= cycle - 1
                idle[engine] = (offered[engine] is None and not recent
                                and not port["status__busy"].value)
                if port["status__done"].value:
                    log[f"{engine}_done"].append(cycle)
                error = bool(port["status__error"].value)
                if error and not last_error[engine]:
                    log[f"{engine}_errors"].append(
                        (cycle, DMAError(int(port["status__error_cause"].value)),
                         int(port["status__error_addr"].value)))
                last_error[engine] = error
            if dut.read_data__ready.value and dut.read_data__valid.value:
                bits = dut.read_data__payload.value
                assert bits.is_resolvable, f"cycle {cycle}: read_data is X/Z: {bits}"
                received.append(self._beat(bits.to_unsigned()))
                log["read_beats"].append(cycle)
            if word_offered and dut.write_data__ready.value:
                log["write_beats"].append(cycle)
                word_offered = False
            for channel in ("ar", "aw"):
                valid, ready = axi[f"{channel}valid"].value, axi[f"{channel}ready"].value
                if valid or holds[channel] is not None:
                    burst = (int(axi[f"{channel}addr"].value), int(axi[f"{channel}len"].value),
                             int(axi[f"{channel}size"].value),
                             int(axi[f"{channel}burst"].value))
                    if holds[channel] is not None and (not valid or burst != holds[channel]):
                        log["violations"].append(f"cycle {cycle}: {channel.upper()} changed "
                                                 f"before its handshake")
                    holds[channel] = burst if valid and not ready else None
                    if valid and ready:
                        self._check_burst(channel.upper(), *burst)
                        log[channel].append((cycle, burst[0], burst[1] + 1))
                        if channel == "ar":
                            self.ram.ar_cycles.append(cycle)
            if axi["wvalid"].value or holds["w"] is not None:
                w = (int(axi["wdata"].value), int(axi["wlast"].value), int(axi["wstrb"].value))
                if holds["w"] is not None and (not axi["wvalid"].value or w != holds["w"]):
                    log["violations"].append(f"cycle {cycle}: W changed before its handshake")
                if w[2] != strobes:
                    log["violations"].append(f"cycle {cycle}: WSTRB {w[2]:#x}")
                holds["w"] = w if axi["wvalid"].value and not axi["wready"].value else None
            log["r"] += bool(axi["rvalid"].value and axi["rready"].value)
            log["b"] += bool(axi["bvalid"].value and axi["bready"].value)
            if (len(received) == n_read and not words and not word_offered
                    and not any(queues.values()) and all(idle.values())):
                return received

    def check_clean(self):
        """No AXI rule broken, no access outside the memory."""
        problems = self.log["violations"] + self.ram.violations
        assert not problems, f"{len(problems)} violations, the first: {problems[:5]}"

    def memory(self):
        return bytes(self.ram.mem)


def _parameters():
    env = os.environ
    return {
        "config": config_from_env(),
        "seed": int(env.get("TESSERA_SEED", "1")),
        "stall": float(env.get("TESSERA_STALL", "0")),
        "latency": int(env.get("TESSERA_LATENCY", "0")),
        "max_burst": int(env.get("TESSERA_MAX_BURST", str(MAX_BURST_BEATS))),
        "commands": int(env.get("TESSERA_COMMANDS", "12")),
    }


def random_words(rng, count, width):
    """``count`` random words of ``width`` bits."""
    return [int.from_bytes(rng.bytes(width // 8), "little") for _ in range(count)]


@cocotb.test()
async def random_transfers(dut):
    """Reads and writes at once: the corner cases, then random 2-D transfers, back to back;
    data, burst sequences and completions checked against the reference model."""
    p = _parameters()
    config, max_burst = p["config"], p["max_burst"]
    bb = config.bus_data_width // 8
    # A bus narrower than 2 GiB (tiny: 64 KiB) gets two halves of its whole address space.
    base, half = (0x4000_0000, 1 << 21) if config.bus_addr_width > 31 else (
        0, 1 << (config.bus_addr_width - 1))
    tb = TB(dut, config, seed=p["seed"], stall=p["stall"], latency=p["latency"], base=base,
            size=2 * half, max_burst=max_burst)
    dut._log.info(f"seed={p['seed']} stall={p['stall']} latency={p['latency']} "
                  f"max_burst={max_burst} config={config}")
    rng = np.random.default_rng(p["seed"] + 1)

    def inside(commands, start):
        return [c for c in commands
                if c.addr + (c.rows - 1) * c.stride + c.row_beats * bb <= start + half]
    reads = inside(edge_commands(bb, base), base) + [
        random_command(rng, bb, region=(base, base + half), max_rows=3, max_row_beats=200)
        for _ in range(p["commands"])]
    writes = inside(edge_commands(bb, base + half), base + half) + [
        random_command(rng, bb, region=(base + half, base + 2 * half), max_rows=3,
                       max_row_beats=200) for _ in range(p["commands"])]
    words = random_words(rng, command_beats(writes, bb, max_burst), config.bus_data_width)
    await tb.start()
    initial = tb.memory()
    want_beats = expected_read_beats(reads, lambda a, n: initial[a - base:a - base + n],
                                     beat_bytes=bb, max_burst=max_burst)
    received = await tb.run(reads, writes, words)
    tb.check_clean()
    check_read_beats(received, want_beats, f"seed={p['seed']} reads")
    check_memory(tb.memory(), expected_memory(initial, base, writes, words, beat_bytes=bb,
                                              max_burst=max_burst),
                 base, f"seed={p['seed']} writes")
    for channel, commands in (("ar", reads), ("aw", writes)):
        got = [(addr, beats) for _, addr, beats in tb.log[channel]]
        assert got == model_bursts(commands, bb, max_burst=max_burst,
                                   block_aligned=not config.fast_clock), f"{channel} bursts"
    assert len(tb.log["read_done"]) == len(reads)
    assert len(tb.log["write_done"]) == len(writes)
    assert tb.log["read_errors"] == tb.log["write_errors"] == []
    assert tb.log["r"] == sum(b for _, _, b in tb.log["ar"])


@cocotb.test()
async def errors_and_recovery(dut):
    """An SLVERR read beat and a DECERR write response in the middle of multi-burst
    transfers with bursts outstanding, a command while the error is latched, then a clear
    and a good command; then misaligned, empty and out-of-range commands, each followed by
    a clear and a good command. Reads and writes run at the same time."""
    p = _parameters()
    config, max_burst = p["config"], p["max_burst"]
    bb = config.bus_data_width // 8
    width = config.bus_addr_width
    top = 1 << width
    size = min(1 << 20, top)
    base = top - size
    # More bursts than the engines keep in flight (outstanding, plus the one on AW or AR).
    rows = (config.dma_outstanding + 4) * max_burst + 5
    # Commands that would run past the top of the address space (the second or the third
    # row), the read's and the write's apart; on a bus narrower than the commands' 32 bits
    # also an address and a stride with a bit beyond it (refused as a whole).
    range_commands = {"read": [Command(top - 0x1000, 0x400 // bb, 2, 0x1000)],
                      "write": [Command(top - 0x800, 0x400 // bb, 3, 0x400)]}
    if width < 32:
        range_commands["read"].append(Command(base + 0x100 | 1 << 31, 5, 2, 0x40))
        range_commands["write"].append(Command(base + 0x100, 5, 2, top))
    plans, errors = {}, {}
    for engine, region, resp in (("read", base, AxiResp.SLVERR),
                                 ("write", base + size // 2, AxiResp.DECERR)):
        failing = Command(region + 0x100, rows, 1, 0)
        bursts = split_transfer(failing, beat_bytes=bb, max_burst=max_burst,
                                block_aligned=not config.fast_clock)[0]
        errors[bursts[1].addr + 3 * bb] = resp
        good = Command(region + size * 3 // 8, 3, 2, 0x100)
        plans[engine] = {
            "failing": failing, "bursts": bursts, "region": region,
            "causes": [(DMAError[resp.name], bursts[1].addr), (DMAError.MISALIGNED, region + 2),
                       (DMAError.EMPTY, region)] + [
                          (DMAError.RANGE, reported_address(config, c.addr))
                          for c in range_commands[engine]],
            "commands": [failing, Command(region + size // 4, 5, 2, 0x40), CLEAR, good,
                         Command(region + 2, 3, 1, 0), CLEAR, good,
                         Command(region, 0, 4, 0), CLEAR, good] + [
                            item for c in range_commands[engine] for item in (c, CLEAR, good)]}
    tb = TB(dut, config, seed=p["seed"], stall=p["stall"], latency=max(p["latency"], 8),
            base=base, size=size, errors=errors, max_burst=max_burst)
    dut._log.info(f"seed={p['seed']} stall={p['stall']} max_burst={max_burst} errors={errors}")
    reads, writes = plans["read"]["commands"], plans["write"]["commands"]
    rng = np.random.default_rng(p["seed"] + 2)
    words = random_words(rng, command_beats(writes, bb, max_burst), config.bus_data_width)
    await tb.start()
    initial = tb.memory()
    received = await tb.run(reads, writes, words)
    tb.check_clean()

    for engine, channel in (("read", "ar"), ("write", "aw")):
        plan = plans[engine]
        failing, bursts = plan["failing"], plan["bursts"]
        causes = [(cause, addr) for _, cause, addr in tb.log[f"{engine}_errors"]]
        assert causes == plan["causes"], f"{engine} errors {causes} != {plan['causes']}"
        error_cycle = tb.log[f"{engine}_errors"][0][0]
        issued = [b for b in tb.log[channel] if failing.addr <= b[1] < failing.addr + rows * bb]
        late = [b for b in issued if b[0] >= error_cycle]
        assert len(late) <= 1, f"{engine}: bursts issued after the error: {late}"
        assert 2 <= len(issued) < len(bursts), f"{engine}: {len(issued)} bursts issued"
        later = [(a, n) for _, a, n in tb.log[channel][len(issued):]]
        first_clear = plan["commands"].index(CLEAR)
        assert later == model_bursts(plan["commands"][first_clear:], bb, max_burst=max_burst,
                                     block_aligned=not config.fast_clock, addr_width=width)
        assert len(tb.log[f"{engine}_done"]) == sum(
            isinstance(c, Command) and c.rows * c.row_beats > 0 for c in plan["commands"])
    assert tb.log["r"] == sum(b for _, _, b in tb.log["ar"]), "R beats left unaccepted"
    assert tb.log["b"] == len(tb.log["aw"]), "B responses left unaccepted"

    mem = lambda a, n: initial[a - base:a - base + n]  # noqa: E731
    want = expected_read_beats(reads, mem, beat_bytes=bb, max_burst=max_burst,
                               addr_width=width)
    first_error = plans["read"]["bursts"][0].beats + 3
    recovered = rows + 10  # the failing command's beats, then the 10 beats sent meanwhile
    check_read_beats(received, flag_beats(want, first_error, recovered), "reads")

    issued_writes = {(a, n) for _, a, n in tb.log["aw"]}

    def written(burst):
        return not burst.refused and (burst.addr, burst.beats) in issued_writes
    want_memory = expected_memory(initial, base, writes, words, beat_bytes=bb,
                                  max_burst=max_burst, written=written,
                                  block_aligned=not config.fast_clock, addr_width=width)
    bad = plans["write"]["bursts"][1].addr + 3 * bb - base
    want_memory[bad:bad + bb] = initial[bad:bad + bb]  # AxiRam skips the failing beat
    check_memory(tb.memory(), want_memory, base, "writes")


def throughput_scenarios(config, base):
    """(name, reads, writes) of the benchmark: long contiguous transfers and short strided
    rows, each direction alone, and both at once."""
    bb = config.bus_data_width // 8
    long = (16 << 10) // bb
    half = 1 << 20
    rows = {f"{n}-beat rows, stride 512 B": Command(base, n, 256, 512) for n in (1, 4)}
    scenarios = [
        ("read, contiguous 16 KiB", [Command(base, long, 1, 0)], []),
        ("write, contiguous 16 KiB", [], [Command(base + half, long, 1, 0)]),
        ("read + write at once, contiguous 16 KiB each", [Command(base, long, 1, 0)],
         [Command(base + half, long, 1, 0)]),
    ]
    for name, command in rows.items():
        scenarios.append((f"read, {name}", [command], []))
        moved = Command(base + half, command.row_beats, command.rows, command.stride)
        scenarios.append((f"write, {name}", [], [moved]))
    return scenarios


@cocotb.test(skip="TESSERA_BENCH_OUT" not in os.environ)
async def throughput(dut):
    """The benchmark (``bench/dma_bench.py``): beats per cycle of each of
    :func:`throughput_scenarios`, from the first command accepted to the last read beat
    delivered or the last write response, whichever is later; streams never stall, the
    memory as ``TESSERA_STALL`` and ``TESSERA_LATENCY`` say. Results (checked) go as JSON to
    the file ``TESSERA_BENCH_OUT`` names."""
    p = _parameters()
    config = p["config"]
    bb = config.bus_data_width // 8
    base = 0x2000_0000
    tb = TB(dut, config, seed=p["seed"], stall=p["stall"], latency=p["latency"], base=base,
            size=2 << 20, max_burst=p["max_burst"], stream_stall=0.0)
    await tb.start()
    rng = np.random.default_rng(p["seed"])
    results = {}
    for name, reads, writes in throughput_scenarios(config, base):
        for key in ("read_accept", "read_beats", "write_accept", "write_done"):
            tb.log[key] = []
        initial = tb.memory()
        words = random_words(rng, command_beats(writes, bb), config.bus_data_width)
        received = await tb.run(reads, writes, words)
        want = expected_read_beats(
            reads, lambda a, n, image=initial: image[a - base:a - base + n], beat_bytes=bb)
        check_read_beats(received, want, name)
        check_memory(tb.memory(), expected_memory(initial, base, writes, words,
                                                  beat_bytes=bb), base, name)
        log = tb.log
        first = min(log["read_accept"][:1] + log["write_accept"][:1])
        end = max(log["read_beats"][-1:] + log["write_done"][-1:])
        beats = len(received) + len(words)
        results[name] = {"beats": beats, "cycles": end - first + 1,
                         "beats_per_cycle": beats / (end - first + 1)}
        dut._log.info(f"{name}: {results[name]}")
    tb.check_clean()
    with open(os.environ["TESSERA_BENCH_OUT"], "w") as out:
        json.dump(results, out, indent=1)

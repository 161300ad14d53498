"""Host side of the framed host link (:mod:`hdl.host_link`): frames, CRC, a reference model of
the bridge, transports, and :class:`LinkBackend`, a driver backend (:mod:`sw.driver`).

The CRC and the framing here are written from the protocol description, not from the HDL:
the tests compare the two. One :class:`LinkBackend` runs over any :class:`Transport`: SPI in
a cocotb simulation (``sim/tb_tt.py``), a serial port on a board (:class:`SerialTransport`),
or the Python model (:class:`ModelTransport`).

A transaction: the host sends the request, then reads bytes, skipping :data:`FILL`, until a
status byte; then the tag, the data (for an OK read) and the CRC. A reply that is garbled
(bad CRC, not a status, none within ``poll_limit`` bytes, a wrong tag) or says BAD_CRC or
TRUNCATED is retried with the same tag, so the bridge answers a repeated write without
executing it again (an instruction is never pushed twice). Before a retry the transport
resynchronises (:meth:`Transport.resync`): over a UART the line stays idle until the link's
idle-gap framing has dropped whatever was left of the failed exchange.
"""

import time
from dataclasses import dataclass

from hdl.host_link import CRC_INIT, CRC_POLY, FILL, PING_BYTES, PROTOCOL_VERSION, Command, Status
from hdl.isa import ErrorCause
from hdl.registers import TESSERA_ID, tessera_register_map

from .assembler import to_words

__all__ = ["AcceleratorError", "BridgeModel", "LinkBackend", "LinkError", "LinkInfo",
           "LinkStatusError", "ModelTransport", "SerialTransport", "Transport", "crc16",
           "encode_reply", "encode_request", "reply_data_bytes"]

HEADER_BYTES = 7


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (bitwise; ``crc16(b"123456789") == 0x29B1``)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _with_crc(body):
    return bytes(body) + crc16(body).to_bytes(2, "big")


def encode_request(command, tag, addr, length=0, payload=b""):
    """A request frame; ``length`` defaults to the payload's for a write."""
    command = Command(command)
    if command.value & 1 and not length:
        length = len(payload)
    return _with_crc(bytes([command.value, tag]) + addr.to_bytes(4, "little")
                     + bytes([length]) + bytes(payload))


def encode_reply(status, tag, data=b""):
    return _with_crc(bytes([Status(status).value, tag]) + bytes(data))


def reply_data_bytes(command, length):
    """Data bytes in an OK reply to ``command``."""
    command = Command(command)
    if command is Command.PING:
        return PING_BYTES
    return 0 if command.value & 1 else length


class LinkError(Exception):
    """The link failed: no good reply after the retries, or a device that is not Tessera."""


class LinkStatusError(LinkError):
    """The bridge refused a request (not a transmission error: retrying will not help)."""

    def __init__(self, status, command, addr, length):
        super().__init__(f"{Status(status).name} for {Command(command).name} at {addr:#x}, "
                         f"length {length}")
        self.status = Status(status)


class AcceleratorError(Exception):
    """The accelerator stopped with an error (ERROR_CAUSE, ERROR_ADDR)."""

    def __init__(self, cause, unit, addr):
        super().__init__(f"accelerator error {cause.name} (unit {unit}, address {addr:#x})")
        self.cause, self.unit, self.addr = cause, unit, addr


@dataclass(frozen=True)
class LinkInfo:
    """What a PING tells: protocol version, longest transfer, RAM bytes."""
    version: int
    max_payload: int
    ram_bytes: int


class BridgeModel:
    """The bridge, byte by byte: :meth:`feed` request bytes and get the replies they cause.

    ``csr`` answers ``read(addr) -> (data, resp)`` and ``write(addr, data, strb) -> resp``
    (resp 0 is OKAY), like :class:`sim.tb_axi_lite.RegisterBankModel`; ``ram`` is a bytearray.
    """

    def __init__(self, *, ram, csr, max_payload, csr_addr_width=12):
        self.ram, self.csr, self.max_payload = ram, csr, max_payload
        self.csr_bytes = 1 << csr_addr_width
        self.frame = None
        self.tag = 0
        self.last = None  # (tag, write, status) of the last frame with a good CRC

    def feed(self, data):
        out = bytearray()
        for byte in data:
            if self.frame is None:
                if byte == FILL:
                    continue
                self.frame = bytearray()
            self.frame.append(byte)
            if len(self.frame) == 2:
                self.tag = byte
            if len(self.frame) >= HEADER_BYTES:
                payload = self.frame[6] if self.frame[0] & 1 else 0
                if len(self.frame) == HEADER_BYTES + payload + 2:
                    out += self._execute(bytes(self.frame))
                    self.frame = None
        return bytes(out)

    def frame_end(self):
        """A framing event: a frame in progress is dropped and answered TRUNCATED."""
        if self.frame is None:
            return b""
        self.frame = None
        return encode_reply(Status.TRUNCATED, self.tag)

    def abort(self):
        """The host stopped listening: a frame in progress is dropped, without a reply."""
        self.frame = None

    def _execute(self, frame):
        command, tag = frame[0], frame[1]
        addr, length = int.from_bytes(frame[2:6], "little"), frame[6]
        if crc16(frame):
            return encode_reply(Status.BAD_CRC, tag)
        write = bool(command & 1)
        last, self.last = self.last, (tag, write, None)
        status, data = self._status(command, addr, length), b""
        if status is None and write and last is not None and last[:2] == (tag, True):
            self.last = last
            return encode_reply(last[2], tag)
        if status is None:
            status, data = self._access(Command(command), addr, length, frame[7:7 + length])
        self.last = (tag, write, status)
        return encode_reply(status, tag, data if status is Status.OK else b"")

    def _status(self, command, addr, length):
        try:
            command = Command(command)
        except ValueError:
            return Status.BAD_COMMAND
        if command is Command.PING:
            return None if length == 0 else Status.BAD_LENGTH
        if not 1 <= length <= self.max_payload:
            return Status.BAD_LENGTH
        if command.value >> 4 == 2:  # CSR
            if length % 4:
                return Status.BAD_LENGTH
            span = 4 if command is Command.CSR_WRITE_FIXED else length
            if addr % 4 or addr + span > self.csr_bytes:
                return Status.BAD_ADDRESS
        elif addr + length > len(self.ram):
            return Status.BAD_ADDRESS
        return None

    def _access(self, command, addr, length, payload):
        if command is Command.PING:
            return Status.OK, (bytes([PROTOCOL_VERSION, self.max_payload])
                               + len(self.ram).to_bytes(4, "little"))
        if command is Command.MEM_READ:
            return Status.OK, bytes(self.ram[addr:addr + length])
        if command is Command.MEM_WRITE:
            self.ram[addr:addr + length] = payload
            return Status.OK, b""
        data = bytearray()
        for i in range(0, length, 4):
            where = addr if command is Command.CSR_WRITE_FIXED else addr + i
            if command is Command.CSR_READ:
                value, resp = self.csr.read(where)
                data += value.to_bytes(4, "little")
            else:
                resp = self.csr.write(where, int.from_bytes(payload[i:i + 4], "little"), 0xF)
            if getattr(resp, "value", resp):  # OKAY is 0
                return Status.BUS_ERROR, b""
        return Status.OK, bytes(data)


class Transport:
    """Moves bytes between the host and a host link. A transaction is ``begin``, ``send``
    (the request), ``receive`` (one byte at a time: :data:`FILL` while the device has nothing
    to say; ``None`` when nothing arrives in time), ``end``. :meth:`resync` runs after a
    failed transaction, before its retry."""

    async def begin(self):
        pass

    async def resync(self):
        """Bring the link back to a frame boundary after a failed transaction (garbled or
        missing reply). Nothing to do where a transaction has its own framing (SPI chip
        select); a UART waits for the link's idle gap and drops what arrived meanwhile."""

    async def send(self, data):
        raise NotImplementedError

    async def receive(self):
        raise NotImplementedError

    async def end(self):
        pass


class ModelTransport(Transport):
    """A :class:`BridgeModel` behind an SPI-like transport: replies are clocked out by
    :meth:`receive`, what is left of them at :meth:`end` is dropped. ``corrupt(direction,
    data) -> data`` may damage requests (``"request"``) and replies (``"reply"``, per byte)."""

    def __init__(self, model, corrupt=None):
        self.model, self.corrupt = model, corrupt or (lambda direction, data: data)
        self.pending = bytearray()

    async def send(self, data):
        self.pending += self.model.feed(self.corrupt("request", bytes(data)))

    async def receive(self):
        if not self.pending:
            self.pending += self.model.feed(bytes([FILL]))
        if not self.pending:
            return FILL
        return self.corrupt("reply", bytes([self.pending.pop(0)]))[0]

    async def end(self):
        self.model.abort()
        self.pending.clear()


class SerialTransport(Transport):
    """A serial port (pyserial) to a UART host link.

    A good reply leaves the link at a frame boundary, so the next request follows at once;
    after a failed transaction :meth:`resync` keeps the line silent for ``gap_s`` (longer than
    the link's idle gap, :data:`hdl.board_system.GAP_SECONDS`, plus a reply to a truncated
    frame) and drops what arrived meanwhile. ``timeout_s`` bounds the wait for each byte.
    """

    def __init__(self, port, baudrate=115200, *, timeout_s=0.5, gap_s=0.01):
        import serial  # only boards need pyserial

        self.port = serial.Serial(port, baudrate, timeout=timeout_s)
        self.gap_s = gap_s

    async def begin(self):
        self.port.reset_input_buffer()

    async def send(self, data):
        self.port.write(bytes(data))

    async def receive(self):
        byte = self.port.read(1)
        return byte[0] if byte else None

    async def resync(self):
        self.port.flush()  # the silence starts after the last byte is out
        time.sleep(self.gap_s)
        self.port.reset_input_buffer()

    def close(self):
        self.port.close()


class _Garbled(Exception):
    pass


class LinkBackend:
    """A driver backend (``write``, ``read``, ``run``) over a host link.

    Parameters
    ----------
    config : TesseraConfig
        The accelerator behind the link (its register map).
    transport : Transport
    retries : int
        Attempts after the first for a request whose reply was garbled, BAD_CRC or
        TRUNCATED.
    poll_limit : int
        Fill bytes to read before a reply is given up for missing (and retried).
    max_polls : int
        STATUS reads before :meth:`run` raises TimeoutError.
    """

    name = "link"

    def __init__(self, config, transport, *, retries=4, poll_limit=64, max_polls=100_000):
        self.config, self.transport = config, transport
        self.retries, self.poll_limit, self.max_polls = retries, poll_limit, max_polls
        self.registers = {reg.name: reg for reg in tessera_register_map(config)}
        self.info = None
        self.tag = 0
        self.stats = {"requests": 0, "retries": 0}
        self.problems = []  # (command name, attempt, what was wrong) of every retry

    # --- Frames. ---

    async def _exchange(self, request, data_bytes):
        transport = self.transport
        await transport.begin()
        try:
            await transport.send(request)
            for _ in range(self.poll_limit):
                first = await transport.receive()
                if first != FILL:
                    break
            if first is None or first == FILL:
                raise _Garbled("no reply")
            if first not in {s.value for s in Status}:
                raise _Garbled(f"{first:#04x} is not a status")
            count = 3 + (data_bytes if first == Status.OK.value else 0)
            rest = [await transport.receive() for _ in range(count)]
            if None in rest:
                raise _Garbled("reply cut short")
        finally:
            await transport.end()
        frame = bytes([first] + rest)
        if crc16(frame):
            raise _Garbled("reply CRC")
        return Status(first), frame[1], frame[2:-2]

    async def request(self, command, addr=0, length=0, payload=b""):
        """Send one request (retrying as needed); returns the reply's data."""
        if self.info is None and command is not Command.PING:
            await self.connect()
        self.tag = (self.tag + 1) & 0xFF
        self.stats["requests"] += 1
        frame = encode_request(command, self.tag, addr, length, payload)
        problem = None
        for attempt in range(self.retries + 1):
            if attempt:
                await self.transport.resync()
                self.stats["retries"] += 1
                self.problems.append((Command(command).name, attempt, problem))
            try:
                status, tag, data = await self._exchange(frame, reply_data_bytes(command, length))
            except _Garbled as error:
                problem = str(error)
                continue
            if status in (Status.BAD_CRC, Status.TRUNCATED):
                problem = status.name
                continue
            if tag != self.tag:
                problem = f"reply tag {tag}, not {self.tag}"
                continue
            if status is not Status.OK:
                raise LinkStatusError(status, command, addr, length)
            return data
        raise LinkError(f"{Command(command).name} at {addr:#x}: no good reply after "
                        f"{self.retries + 1} attempts (last: {problem})")

    async def connect(self):
        """PING (which also ends the repeat detection of an earlier session) and check that
        the device is a Tessera; returns its :class:`LinkInfo`."""
        data = await self.request(Command.PING)
        info = LinkInfo(data[0], data[1], int.from_bytes(data[2:6], "little"))
        if info.version != PROTOCOL_VERSION:
            raise LinkError(f"host link protocol {info.version}, not {PROTOCOL_VERSION}")
        self.info = info
        ident = await self.read_register("ID")
        if ident != TESSERA_ID:
            self.info = None
            raise LinkError(f"ID register reads {ident:#010x}, not {TESSERA_ID:#010x}")
        return info

    # --- Registers. ---

    async def read_register(self, name):
        data = await self.request(Command.CSR_READ, self.registers[name].offset, 4)
        return int.from_bytes(data, "little")

    async def write_register(self, name, value):
        await self.request(Command.CSR_WRITE, self.registers[name].offset,
                           payload=value.to_bytes(4, "little"))

    async def fields(self, name):
        reg = self.registers[name]
        return {k.lower(): v for k, v in reg.decode(await self.read_register(name)).items()}

    async def control(self, **fields):
        await self.write_register("CONTROL", self.registers["CONTROL"].encode(
            **{k.upper(): v for k, v in fields.items()}))

    # --- The driver backend. ---

    async def write(self, addr, payload):
        if self.info is None:
            await self.connect()
        payload = bytes(payload)
        step = self.info.max_payload
        for i in range(0, len(payload), step):
            await self.request(Command.MEM_WRITE, addr + i, payload=payload[i:i + step])

    async def read(self, addr, size):
        if self.info is None:
            await self.connect()
        step, data = self.info.max_payload, bytearray()
        for i in range(0, size, step):
            data += await self.request(Command.MEM_READ, addr + i, min(step, size - i))
        return bytes(data)

    async def _raise_on_error(self, status):
        """Raise :class:`AcceleratorError` when ``status`` (STATUS fields) shows a latched
        error, with its cause, unit and address."""
        if status["error"]:
            cause = await self.fields("ERROR_CAUSE")
            raise AcceleratorError(ErrorCause(cause["code"]), cause["unit"],
                                   await self.read_register("ERROR_ADDR"))

    async def push(self, program):
        """Push ``program``'s words into INSN, at most INSN_FREE instructions at a time,
        several words per frame."""
        insns = [to_words(insn) for insn in program]
        per_frame = max(1, self.info.max_payload // 16) * 4
        offset = self.registers["INSN"].offset
        polls = 0
        while insns:
            free = await self.read_register("INSN_FREE")
            if not free:
                # A full queue that stays full: the accelerator may have stopped on an error
                # (it then takes no more instructions): report that, not a timeout.
                await self._raise_on_error(await self.fields("STATUS"))
                polls += 1
                if polls > self.max_polls:
                    raise TimeoutError(f"INSN_FREE stayed 0 for {self.max_polls} reads")
                continue
            polls = 0
            words = [word for insn in insns[:free] for word in insn]
            insns = insns[free:]
            for i in range(0, len(words), per_frame):
                payload = b"".join(w.to_bytes(4, "little") for w in words[i:i + per_frame])
                await self.request(Command.CSR_WRITE_FIXED, offset, payload=payload)

    async def run(self, program):
        """Push ``program``, run it to END; returns the cycles the accelerator was busy (the
        CYCLES counter). Raises :class:`AcceleratorError` on a latched error."""
        if self.info is None:
            await self.connect()
        await self.control(perf_clear=1)
        await self.control(run=1)
        await self.push(program)
        for _ in range(self.max_polls):
            status = await self.fields("STATUS")
            await self._raise_on_error(status)
            if status["done"] and not status["busy"]:
                break
        else:
            raise TimeoutError(f"no END after {self.max_polls} STATUS reads: {status}")
        await self.control(run=0)
        while True:
            high = await self.read_register("CYCLES_HI")
            low = await self.read_register("CYCLES_LO")
            if await self.read_register("CYCLES_HI") == high:
                return low | high << 32

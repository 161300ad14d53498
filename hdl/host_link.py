"""Framed host link: request frames in, reply frames out, over byte streams.

A request frame (all multi-byte fields little-endian except the CRC):

====== ========= =============================================================
bytes  field     meaning
====== ========= =============================================================
1      command   a :class:`Command`; bit 0 set: ``length`` payload bytes follow
1      tag       chosen by the host; echoed in the reply; a write frame whose tag
                 repeats the previous good frame's is answered, not executed again
4      address   CSR byte address or memory byte address
1      length    bytes to read or write (0 for PING)
length payload   only when bit 0 of the command is set
2      CRC       CRC-16/CCITT-FALSE of every byte before it, most significant first
====== ========= =============================================================

A reply frame: status (a :class:`Status`), tag, data (only for an OK PING, CSR_READ or
MEM_READ: :data:`PING_BYTES` or ``length`` bytes), CRC-16 of the bytes before it.

Outside a frame, :data:`FILL` bytes are ignored (the host clocks them while it waits for a
reply over SPI). Two framing events end a frame early: ``frame_end`` (a UART idle gap) in the
middle of a request drops it and answers TRUNCATED; ``abort`` (SPI chip select high: the host
stopped listening) drops a request in progress and any reply in progress or still to come.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi_lite import AXI4LiteSignature, AXIResp
from .axi_ram import RAMPortSignature

__all__ = ["CRC_INIT", "CRC_POLY", "FILL", "PING_BYTES", "PROTOCOL_VERSION", "Command",
           "HostLink", "Status"]

#: Version of the frame format, the first byte of a PING reply.
PROTOCOL_VERSION = 1
#: Byte the host sends, and the device answers, when it has nothing to say.
FILL = 0xFF
#: CRC-16/CCITT-FALSE: polynomial and initial value (no reflection, no final XOR).
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
#: Data bytes of a PING reply: version, max payload, RAM bytes (32-bit little-endian).
PING_BYTES = 6


class Command(enum.Enum, shape=8):
    """Request commands. Bit 0: the frame carries ``length`` payload bytes."""
    PING = 0x10             #: length 0; replies PING_BYTES bytes
    CSR_READ = 0x20         #: length/4 words from address, address + 4, ...
    CSR_WRITE = 0x21        #: length/4 words to address, address + 4, ...
    CSR_WRITE_FIXED = 0x23  #: length/4 words all to address (a queue register)
    MEM_READ = 0x30         #: length bytes
    MEM_WRITE = 0x31        #: length bytes


class Status(enum.Enum, shape=8):
    """Reply status; never :data:`FILL`, so the host can tell a reply's start."""
    OK = 0x50
    BAD_CRC = 0x51      #: the request's CRC did not check: nothing was done
    BAD_COMMAND = 0x52  #: unknown command
    BAD_LENGTH = 0x53   #: length 0, too long, or not whole words for a CSR command
    BAD_ADDRESS = 0x54  #: outside the CSR space or the RAM, or a misaligned CSR address
    BUS_ERROR = 0x55    #: a CSR access answered SLVERR/DECERR (earlier words were done)
    TRUNCATED = 0x56    #: the frame ended early: nothing was done


def crc16_step(crc, byte):
    """The CRC-16/CCITT-FALSE register ``crc`` after ``byte`` (Amaranth values).

    Written as the byte-wise form of the polynomial 0x1021 (``x = crc[8:] ^ byte``,
    ``x ^= x >> 4``, ``crc << 8 ^ x << 12 ^ x << 5 ^ x``): plain XORs, which yosys maps to
    about a third of the LUTs of the bit-serial loop's multiplexers."""
    x = crc[8:16] ^ byte
    x = x ^ (x >> 4)
    return ((crc << 8) ^ (x << 12) ^ (x << 5) ^ x)[:16]


_STATUS_BASE = 0x50
assert all(status.value >> 3 == _STATUS_BASE >> 3 for status in Status)


def _compact(command):
    """Bits 0, 1, 4 and 5 of a command byte (a Value or an int)."""
    if isinstance(command, int):
        return (command & 3) | (command >> 2 & 0b1100)
    return Cat(command[:2], command[4:6])


assert len({_compact(c.value) for c in Command}) == len(Command)


def _code(status):
    """The low 3 bits of a Status (a constant), or a code (a Value) as it is."""
    return status.value & 7 if isinstance(status, Status) else status


class HostLink(wiring.Component):
    """Executes request frames from ``rx`` on the CSR bus and the RAM; replies on ``tx``.

    Writes are buffered: nothing is written before the frame's CRC checked, so a corrupted or
    truncated frame changes nothing. A write payload longer than ``max_payload`` is consumed
    (to stay in step with the byte stream) and answered BAD_LENGTH.

    Timing: ``rx.ready`` is high while a request is received (one byte per cycle) and low
    while it executes and its reply is sent (back-pressure; the SPI target then drops the
    host's fill bytes). The frame is checked the cycle after its last byte (its length and
    address already while its CRC arrives). The buffer is a byte-wide block RAM, so a CSR word
    takes 6 cycles or more (7 with :class:`hdl.axi_lite.AXI4LiteRegisterBank`): 4 to fetch its
    bytes (``compact``: 3, byte 3 straight from the buffer's read port), AW and W together,
    then B; or AR, then R and its byte 0, then 3 to store bytes 1-3 from R, whose RREADY
    comes with the last (the bank holds R until then). A RAM byte takes 1 cycle to write
    (``w_en``) and 2 to read (``r_en``, then ``r_data``), plus the cycles the RAM is ``busy``
    (the access is repeated); ``r_en`` is high only then. The reply goes out at one byte per
    cycle while ``tx.ready`` is high, but for one cycle before its CRC (not ``compact``: the
    last data byte enters the CRC in the cycle after it was sent).

    Framing: a ``frame_end`` pulse in the middle of a request drops it and answers TRUNCATED
    (it is ignored between frames, while a frame executes and while its reply is sent: a
    UART's idle gap after a request must not cut its reply). An ``abort`` pulse drops a
    request in progress without a reply, stops a reply in progress, and marks the reply of a
    frame that is executing to be dropped (a bus access in progress always completes): the
    bridge is idle again when the next transaction starts.

    With ``compact`` (for small FPGAs) a CSR read takes its whole word at the first R beat
    (RREADY with it: the bank is free again 3 cycles earlier) and stores bytes 1-3 from a
    shift register, and a PING's reply length is kept in ``length``; the tag is kept in the
    buffer (a 512-byte block RAM initialised to zero, the tag at byte 255: the header's other
    bytes land in bytes 0-4, below any payload or read data), and so is a PING reply's data
    (initialised at byte 256): fewer LUTs and flip-flops, and a cycle less per CSR word.

    Parameters
    ----------
    ram_bytes : int
        Size of the memory behind ``ram`` (MEM commands must stay inside it).
    max_payload : int
        Longest read or write, bytes: a multiple of 4, 4 to 252 (the buffer holds it).
    csr_addr_width : int
        Byte-address width of ``csr``.
    compact : bool
        The smaller implementation described above.

    Members
    -------
    rx : In(stream.Signature(8))
    tx : Out(stream.Signature(8))
    frame_end, abort : In(1)
    csr : Out(AXI4LiteSignature(addr_width=csr_addr_width))
    ram : Out(RAMPortSignature(ceil(log2(ram_bytes))))
    busy : Out(1)
        A frame is executing or its reply is being sent.
    error : Out(1)
        The last reply's status was not OK.

    Raises
    ------
    TypeError, ValueError
        A parameter is not an integer, or out of range.
    """

    def __init__(self, *, ram_bytes, max_payload=64, csr_addr_width=12, compact=False):
        if not isinstance(compact, bool):
            self._MustUse__silence = True
            raise TypeError(f"compact must be a bool, not {compact!r}")
        for name, value, low, high in (("ram_bytes", ram_bytes, 1, 1 << 32),
                                       ("max_payload", max_payload, 4, 252),
                                       ("csr_addr_width", csr_addr_width, 3, 32)):
            if not isinstance(value, int) or isinstance(value, bool):
                self._MustUse__silence = True
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not low <= value <= high or (name == "max_payload" and value % 4):
                self._MustUse__silence = True
                extra = " and a multiple of 4" if name == "max_payload" else ""
                raise ValueError(f"{name} must be {low} to {high}{extra}, not {value!r}")
        self.ram_bytes, self.max_payload = ram_bytes, max_payload
        self.csr_addr_width, self.compact = csr_addr_width, compact
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "frame_end": In(1),
            "abort": In(1),
            "csr": Out(AXI4LiteSignature(addr_width=csr_addr_width)),
            "ram": Out(RAMPortSignature(max(1, (ram_bytes - 1).bit_length()))),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def ping_data(self):
        """The data bytes of a PING reply."""
        return bytes([PROTOCOL_VERSION, self.max_payload]) + self.ram_bytes.to_bytes(4, "little")

    def elaborate(self, platform):
        m = Module()
        rx, tx, csr, ram = self.rx, self.tx, self.csr, self.ram

        # The command as bits 0, 1, 4 and 5 of its byte (which tell the known ones apart)
        # and whether it is known.
        command, known, tag, length = Signal(4), Signal(), Signal(8), Signal(8)
        # The address bits any access uses; ``addr_high``: a bit above them is set.
        addr_width = max(len(ram.addr), self.csr_addr_width)
        addr, addr_high = Signal(addr_width), Signal()
        count = Signal(8)  # byte index in the current phase
        crc = Signal(16, init=CRC_INIT)
        # A status as its low 3 bits (every Status is 0x50 to 0x57).
        status = Signal(3)
        last_tag, last_write = Signal(8), Signal()
        last_status = Signal(3)  # of the last frame executed (replays)
        aw_done, w_done = Signal(), Signal()
        drop = Signal()  # aborted: no reply for the frame executing
        # Bytes 0-2 of a CSR word to write; byte 3 sits on the buffer's read port, which holds
        # it while not enabled. A read's word stays on ``csr.rdata`` (R holds until RREADY);
        # ``compact``: bytes 1-3 of a read word, shifted out to the buffer.
        # (Not ``compact``: all 4 bytes, byte 3 fetched last, so that ``csr.wdata`` comes from
        # flip-flops rather than from the buffer's block RAM output.)
        word = Signal(24 if self.compact else 32)

        # Byte-wide with a synchronous read: one block RAM (512x8 on iCE40, 2048x9 on ECP5).
        # It is written at ``count`` and read one byte ahead, at ``count + 1``, never in the
        # same cycle: an asynchronous port and its register (``buf_r_data``, enabled by
        # ``buf_r_en``), which yosys merges with ``no_rw_check``, so that it adds no logic
        # for a collision (a synchronous port would get a read-before-write emulation).
        # ``compact``: 512 bytes, the frame's tag at TAG_ADDR (255, above any payload; zero
        # from configuration, like the ``tag`` register from reset), a PING reply's data
        # bytes from 256 (PING_ADDR, from configuration; read with address bit 8 set).
        compact = self.compact
        tag_addr = 255
        m.submodules.buffer = buffer = Memory(
            shape=8, depth=512 if compact else self.max_payload,
            init=[0] * 256 + list(self.ping_data) if compact else [],
            attrs={"no_rw_check": 1})
        buf_w = buffer.write_port()
        buf_r = buffer.read_port(domain="comb")
        buf_r_en, buf_r_data = Signal(), Signal(8)
        with m.If(buf_r_en):
            m.d.sync += buf_r_data.eq(buf_r.data)
        m.d.comb += [buf_w.addr.eq(count), buf_r.addr.eq((count + 1)[:8]), buf_r_en.eq(0),
                     ram.addr.eq(addr), ram.w_data.eq(buf_r_data),
                     csr.awaddr.eq(addr), csr.araddr.eq(addr),
                     csr.wdata.eq(Cat(word, buf_r_data) if compact else word),
                     csr.wstrb.eq(0b1111)]

        addr_step = Signal(3)  # the accesses advance the address by this
        with m.If(addr_step.any()):
            m.d.sync += addr.eq(addr + addr_step)
        # The CRC starts from CRC_INIT at a request's and a reply's first byte (cheaper than
        # resetting ``crc`` on every way out of a frame).
        crc_byte, crc_first = Signal(8), Signal()
        crc_next = crc16_step(Mux(crc_first, CRC_INIT, crc), crc_byte)
        # Not ``compact``: a reply's byte enters the CRC in the cycle after it was sent, from a
        # register (it may come from the buffer's block RAM output); the CRC's own bytes wait.
        deferred = not compact
        if deferred:
            sent_byte, sent_first, sent_due = Signal(8), Signal(), Signal()
            m.d.sync += sent_due.eq(0)
            with m.If(sent_due):
                m.d.sync += crc.eq(crc16_step(Mux(sent_first, CRC_INIT, crc), sent_byte))
        has_payload = command[0]
        is_ping, is_csr, is_mem = (command[2:] == group for group in (1, 2, 3))
        fixed = command[1]  # of a known CSR command: CSR_WRITE_FIXED
        # Data bytes of the reply if it is OK (a replay's command is a write: none); with
        # ``compact`` an OK PING's ``length`` is PING_BYTES.
        if self.compact:
            data_bytes = length
            no_data = has_payload
        else:
            data_bytes = Mux(is_ping, PING_BYTES, Mux(has_payload, 0, length))
            no_data = data_bytes == 0

        good_length, good_addr = self._header_checks(m, command, known, addr, addr_high, length)
        length_ok, addr_ok = Signal(), Signal()

        def finish(value):
            m.d.sync += [status.eq(_code(value)), count.eq(0)]
            m.next = "REPLY_STATUS"

        def send(byte, checked=True, hold=0):
            """Offers ``byte`` on ``tx`` (unless dropped, or while ``hold``); returns the
            handshake. ``checked``: the CRC covers it."""
            m.d.comb += [tx.payload.eq(byte), tx.valid.eq(~drop & ~self.abort & ~hold)]
            with m.If(drop | self.abort):
                m.d.sync += drop.eq(0)
                m.next = "IDLE"
            if checked and deferred:
                with m.If(tx.ready & tx.valid):
                    m.d.sync += [sent_byte.eq(byte), sent_first.eq(crc_first), sent_due.eq(1)]
            elif checked:
                m.d.comb += crc_byte.eq(byte)
                with m.If(tx.ready & tx.valid):
                    m.d.sync += crc.eq(crc_next)
            return tx.ready & tx.valid

        def end_early(frame_end, abort):
            with m.If(abort):
                m.next = "IDLE"
            with m.Elif(frame_end):
                finish(Status.TRUNCATED)

        def advance(stop):
            """Next byte of a multi-byte access; ``stop``: the last one is done."""
            m.d.sync += count.eq(count + 1)
            with m.If(stop):
                finish(Status.OK)

        m.d.comb += crc_byte.eq(rx.payload)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [rx.ready.eq(1), crc_first.eq(1)]
                m.d.sync += drop.eq(0)
                with m.If(rx.valid & (rx.payload != FILL)):
                    m.d.sync += [command.eq(_compact(rx.payload)),
                                 known.eq(Cat(rx.payload == c for c in Command).any()),
                                 count.eq(tag_addr if compact else 0), addr_high.eq(0),
                                 crc.eq(crc_next)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    first = tag_addr if compact else 0  # ``count`` at the tag byte
                    if compact:  # the tag to TAG_ADDR; the other bytes land below the payload
                        m.d.comb += [buf_w.data.eq(rx.payload), buf_w.en.eq(1)]
                    with m.Switch(count):
                        with m.Case(first):
                            if not compact:
                                m.d.sync += tag.eq(rx.payload)
                        for i in range(4):
                            with m.Case((first + 1 + i) & 0xFF):
                                inside = min(8, max(0, addr_width - 8 * i))
                                if inside:
                                    m.d.sync += addr[8 * i:][:inside].eq(rx.payload)
                                if inside < 8:
                                    with m.If(rx.payload[inside:].any()):
                                        m.d.sync += addr_high.eq(1)
                        with m.Case((first + 5) & 0xFF):
                            m.d.sync += [length.eq(rx.payload), count.eq(0)]
                            with m.If(has_payload & (rx.payload != 0)):
                                m.next = "PAYLOAD"
                            with m.Else():
                                m.next = "CRC"
                end_early(self.frame_end, self.abort)

            with m.State("PAYLOAD"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    m.d.comb += [buf_w.data.eq(rx.payload),
                                 buf_w.en.eq(count < self.max_payload)]
                    with m.If(count + 1 == length):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"
                end_early(self.frame_end, self.abort)

            with m.State("CRC"):
                m.d.comb += rx.ready.eq(1)
                # The header is complete: its length and address checks go to registers here
                # (two bytes, so two cycles at least), off the path into CHECK's decision.
                m.d.sync += [length_ok.eq(good_length), addr_ok.eq(good_addr)]
                if compact:  # the tag, for CHECK
                    m.d.comb += [buf_r.addr.eq(tag_addr), buf_r_en.eq(1)]
                complete = rx.valid & (count == 1)
                with m.If(rx.valid):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    with m.If(complete):
                        m.next = "CHECK"
                with m.If(complete):
                    m.d.sync += drop.eq(self.abort)
                end_early(self.frame_end & ~complete, self.abort & ~complete)

            with m.State("CHECK"):
                m.d.comb += [buf_r.addr.eq(0), buf_r_en.eq(1)]  # a write's first byte
                m.d.sync += count.eq(0)
                self._check(m, command, known, buf_r_data if compact else tag, length_ok,
                            addr_ok, length, crc, last_tag, last_write, last_status, finish)

            with m.State("CSR_WRITE_FETCH"):  # bytes 0-2 of the word into ``word``
                m.d.comb += buf_r_en.eq(1)
                m.d.sync += [word.eq(Cat(word[8:], buf_r_data)), count.eq(count + 1)]
                with m.If(count[:2] == 2):
                    m.next = "CSR_WRITE" if compact else "CSR_WRITE_LAST"

            if not compact:
                with m.State("CSR_WRITE_LAST"):  # byte 3, on the buffer's read port now
                    m.d.sync += word.eq(Cat(word[8:], buf_r_data))
                    m.next = "CSR_WRITE"

            with m.State("CSR_WRITE"):
                m.d.comb += [csr.awvalid.eq(~aw_done), csr.wvalid.eq(~w_done)]
                aw = aw_done | csr.awready
                w = w_done | csr.wready
                m.d.sync += [aw_done.eq(aw), w_done.eq(w)]
                with m.If(aw & w):
                    m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                    m.next = "CSR_WRITE_RESPONSE"

            with m.State("CSR_WRITE_RESPONSE"):
                m.d.comb += csr.bready.eq(1)
                with m.If(csr.bvalid):
                    m.d.comb += buf_r_en.eq(1)  # the next word's byte 0
                    m.d.comb += addr_step.eq(Mux(fixed, 0, 4))
                    m.d.sync += count.eq(count + 1)
                    with m.If(csr.bresp != AXIResp.OKAY):
                        finish(Status.BUS_ERROR)
                    with m.Elif(count + 1 == length):
                        finish(Status.OK)
                    with m.Else():
                        m.next = "CSR_WRITE_FETCH"

            with m.State("CSR_READ"):
                m.d.comb += csr.arvalid.eq(1)
                with m.If(csr.arready):
                    m.next = "CSR_READ_RESPONSE"

            with m.State("CSR_READ_RESPONSE"):  # byte 0 of the word; R stays for the others
                m.d.comb += [buf_w.data.eq(csr.rdata[:8]), buf_w.en.eq(csr.rvalid)]
                with m.If(csr.rvalid):
                    m.d.comb += addr_step.eq(4)
                    m.d.sync += count.eq(count + 1)
                    if self.compact:  # the word's bytes 1-3 into ``word``, R done
                        m.d.comb += csr.rready.eq(1)
                        m.d.sync += word.eq(csr.rdata[8:])
                    with m.If(csr.rresp != AXIResp.OKAY):
                        m.d.comb += csr.rready.eq(1)
                        finish(Status.BUS_ERROR)
                    with m.Else():
                        m.next = "CSR_READ_STORE"

            with m.State("CSR_READ_STORE"):  # bytes 1-3 of the word, from R; then RREADY
                if self.compact:
                    m.d.comb += [buf_w.data.eq(word[:8]), buf_w.en.eq(1)]
                    m.d.sync += word.eq(Cat(word[8:], buf_r_data))  # as CSR_WRITE_FETCH
                else:
                    m.d.comb += [buf_w.data.eq(csr.rdata.word_select(count[:2], 8)),
                                 buf_w.en.eq(1), csr.rready.eq(count[:2] == 3)]
                with m.If(count[:2] == 3):
                    m.next = "CSR_READ"
                advance(count + 1 == length)

            with m.State("MEM_WRITE"):  # again while ``ram.busy``
                m.d.comb += ram.w_en.eq(1)
                with m.If(~ram.busy):
                    m.d.comb += [buf_r_en.eq(1), addr_step.eq(1)]
                    advance(count + 1 == length)

            with m.State("MEM_READ"):  # again while ``ram.busy``
                m.d.comb += ram.r_en.eq(1)
                with m.If(~ram.busy):
                    m.next = "MEM_READ_DATA"

            with m.State("MEM_READ_DATA"):  # r_data is the byte at addr
                m.d.comb += [buf_w.data.eq(ram.r_data), buf_w.en.eq(1)]
                m.d.comb += addr_step.eq(1)
                m.next = "MEM_READ"
                advance(count + 1 == length)

            # The reply's bytes, one state each; the CRC covers those before it.
            with m.State("REPLY_STATUS"):
                m.d.comb += [buf_r.addr.eq(tag_addr if compact else 0),  # else the first data byte
                             buf_r_en.eq(1), crc_first.eq(1)]
                # A frame not executed: BAD_CRC, TRUNCATED (a replay's status is last_status).
                with m.If((status != _code(Status.BAD_CRC))
                          & (status != _code(Status.TRUNCATED))):
                    m.d.sync += last_status.eq(status)
                with m.If(send(Cat(status, Const(_STATUS_BASE >> 3, 5)))):
                    m.next = "REPLY_TAG"

            with m.State("REPLY_TAG"):
                # The first data byte (``compact``: a PING's from PING_ADDR).
                m.d.comb += buf_r.addr.eq(Cat(Const(0, 8), is_ping) if compact else 0)
                sent = send(buf_r_data if compact else tag)
                m.d.comb += buf_r_en.eq(sent if compact else 1)
                with m.If(sent):
                    m.next = "REPLY_DATA"
                    with m.If(no_data | (status != _code(Status.OK))):
                        m.next = "REPLY_CRC_HIGH"

            with m.State("REPLY_DATA"):
                if compact:  # a PING's bytes from the buffer
                    m.d.comb += buf_r.addr.eq(Cat((count + 1)[:8], is_ping))
                    byte = buf_r_data
                else:
                    ping = Const(int.from_bytes(self.ping_data, "little"), 8 * PING_BYTES)
                    byte = Mux(is_ping, ping.word_select(count[:3], 8), buf_r_data)
                with m.If(send(byte)):
                    m.d.comb += buf_r_en.eq(1)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == data_bytes):
                        m.next = "REPLY_CRC_HIGH"

            with m.State("REPLY_CRC_HIGH"):
                with m.If(send(crc[8:], checked=False, hold=sent_due if deferred else 0)):
                    m.next = "REPLY_CRC_LOW"

            with m.State("REPLY_CRC_LOW"):
                with m.If(send(crc[:8], checked=False)):
                    m.next = "IDLE"

        with m.If(self.abort & ~rx.ready):  # CHECK and the accesses
            m.d.sync += drop.eq(1)
        m.d.comb += [self.busy.eq(~rx.ready), self.error.eq(status != _code(Status.OK))]
        return m

    def _header_checks(self, m, command, known, addr, addr_high, length):
        """Whether the header's length and its address range are good (comb)."""
        is_ping, is_csr, is_mem = (known & (command[2:] == group) for group in (1, 2, 3))
        fixed = is_csr & command[1]
        fits = (length != 0) & (length <= self.max_payload)
        good_length = Mux(is_ping, length == 0, fits & Mux(is_csr, length[:2] == 0, 1))
        last = Signal(len(addr) + 1)  # the last byte's address
        m.d.comb += last.eq(addr + Mux(fixed, 3, length - 1))

        def below(limit):
            if limit & (limit - 1) == 0:
                return ~last[limit.bit_length() - 1:].any()
            return last < limit
        good_addr = Mux(is_csr, ~addr_high & (addr[:2] == 0) & below(1 << self.csr_addr_width),
                        ~is_mem | ~addr_high & below(self.ram_bytes))
        return good_length, good_addr

    def _check(self, m, command, known, tag, good_length, good_addr, length, crc, last_tag,
               last_write, last_status, finish):
        """The CHECK state: the frame's status, or the access to start. ``good_length`` and
        ``good_addr``: the header's checks, registered."""
        write = command[0]
        replay = write & last_write & (tag == last_tag)
        with m.If(crc != 0):
            finish(Status.BAD_CRC)
        with m.Else():
            m.d.sync += [last_tag.eq(tag), last_write.eq(write)]
            with m.If(~known):
                finish(Status.BAD_COMMAND)
            with m.Elif(~good_length):
                finish(Status.BAD_LENGTH)
            with m.Elif(~good_addr):
                finish(Status.BAD_ADDRESS)
            with m.Elif(replay):
                finish(last_status)
            with m.Else():
                with m.Switch(command):
                    for c in Command:
                        with m.Case(_compact(c.value)):
                            if c is Command.PING:
                                if self.compact:  # the reply's data bytes
                                    m.d.sync += length.eq(PING_BYTES)
                                finish(Status.OK)
                            else:
                                m.next = {Command.CSR_READ: "CSR_READ",
                                          Command.MEM_READ: "MEM_READ",
                                          Command.MEM_WRITE: "MEM_WRITE"}.get(
                                              c, "CSR_WRITE_FETCH")

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
    """The CRC-16/CCITT-FALSE register ``crc`` after ``byte`` (Amaranth values)."""
    for i in reversed(range(8)):
        feedback = crc[15] ^ byte[i]
        crc = (crc << 1)[:16] ^ Mux(feedback, CRC_POLY, 0)
    return crc


class HostLink(wiring.Component):
    """Executes request frames from ``rx`` on the CSR bus and the RAM; replies on ``tx``.

    Writes are buffered: nothing is written before the frame's CRC checked, so a corrupted or
    truncated frame changes nothing. A write payload longer than ``max_payload`` is consumed
    (to stay in step with the byte stream) and answered BAD_LENGTH.

    Timing: ``rx.ready`` is high while a request is received (one byte per cycle) and low
    while it executes and its reply is sent (back-pressure; the SPI target then drops the
    host's fill bytes). The frame is checked the cycle after its last byte; a CSR word takes
    3 cycles or more (AW and W together, then B; AR, then R), a RAM byte 1 cycle to write
    and 2 to read. The reply goes out at one byte per cycle while ``tx.ready`` is high.

    Framing: a ``frame_end`` pulse in the middle of a request drops it and answers TRUNCATED
    (it is ignored between frames, while a frame executes and while its reply is sent: a
    UART's idle gap after a request must not cut its reply). An ``abort`` pulse drops a
    request in progress without a reply, stops a reply in progress, and marks the reply of a
    frame that is executing to be dropped (a bus access in progress always completes): the
    bridge is idle again when the next transaction starts.

    Parameters
    ----------
    ram_bytes : int
        Size of the memory behind ``ram`` (MEM commands must stay inside it).
    max_payload : int
        Longest read or write, bytes: a multiple of 4, 4 to 252 (the buffer holds it).
    csr_addr_width : int
        Byte-address width of ``csr``.

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

    def __init__(self, *, ram_bytes, max_payload=64, csr_addr_width=12):
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
        self.csr_addr_width = csr_addr_width
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

        command, tag, length = Signal(8), Signal(8), Signal(8)
        addr = Signal(32)
        count = Signal(9)  # byte index in the current phase
        crc = Signal(16, init=CRC_INIT)
        status = Signal(Status, init=Status.OK)
        data_bytes = Signal(9)  # data bytes of an OK reply
        last_tag, last_write = Signal(8), Signal()
        last_status = Signal(Status, init=Status.OK)
        aw_done, w_done = Signal(), Signal()
        drop = Signal()  # aborted: no reply for the frame executing

        m.submodules.buffer = buffer = Memory(shape=32, depth=self.max_payload // 4, init=[])
        buf_w = buffer.write_port(granularity=8)
        buf_r = buffer.read_port(domain="comb")
        buf_byte = buf_r.data.word_select(count[:2], 8)
        index_bits = (self.max_payload // 4 - 1).bit_length()

        def buffer_at(index):
            return index[2:][:max(1, index_bits)]

        crc_byte = Signal(8)
        crc_next = crc16_step(crc, crc_byte)
        has_payload = command[0]
        fixed = command == Command.CSR_WRITE_FIXED

        def finish(value, executed=True):
            m.d.sync += [status.eq(value), count.eq(0), crc.eq(CRC_INIT), self.error.eq(
                value != Status.OK)]
            if executed:
                m.d.sync += last_status.eq(value)
            m.next = "REPLY"

        def advance(step, stop):
            """Next element of a multi-element access; ``stop``: the last one is done."""
            m.d.sync += count.eq(count + step)
            with m.If(stop):
                finish(Status.OK)

        def word_done(resp, again, addr_step):
            """A CSR word's response: stop at an error, else the next word (from ``again``)."""
            m.d.sync += addr.eq(addr + addr_step)
            with m.If(resp != AXIResp.OKAY):
                finish(Status.BUS_ERROR)
            with m.Else():
                m.next = again
                advance(4, count + 4 == length)

        m.d.comb += crc_byte.eq(rx.payload)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += rx.ready.eq(1)
                m.d.sync += drop.eq(0)
                with m.If(rx.valid & (rx.payload != FILL)):
                    m.d.sync += [command.eq(rx.payload), count.eq(0),
                                 crc.eq(crc16_step(Const(CRC_INIT, 16), rx.payload))]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    with m.Switch(count):
                        with m.Case(0):
                            m.d.sync += tag.eq(rx.payload)
                        for i in range(4):
                            with m.Case(1 + i):
                                m.d.sync += addr.word_select(i, 8).eq(rx.payload)
                        with m.Case(5):
                            m.d.sync += [length.eq(rx.payload), count.eq(0)]
                            with m.If(has_payload & (rx.payload != 0)):
                                m.next = "PAYLOAD"
                            with m.Else():
                                m.next = "CRC"
                self._end_early(m, self.frame_end, self.abort, finish)

            with m.State("PAYLOAD"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    m.d.comb += [buf_w.addr.eq(buffer_at(count)),
                                 buf_w.data.eq(rx.payload.replicate(4)),
                                 buf_w.en.eq(Mux(count < self.max_payload,
                                                 Const(1, 4) << count[:2], 0))]
                    with m.If(count == length - 1):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"
                self._end_early(m, self.frame_end, self.abort, finish)

            with m.State("CRC"):
                m.d.comb += rx.ready.eq(1)
                complete = rx.valid & (count == 1)
                with m.If(rx.valid):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    with m.If(complete):
                        m.next = "CHECK"
                with m.If(complete):
                    m.d.sync += drop.eq(self.abort)
                self._end_early(m, self.frame_end & ~complete, self.abort & ~complete, finish)

            with m.State("CHECK"):
                self._check(m, command, tag, addr, length, count, crc, data_bytes, last_tag,
                            last_write, last_status, finish)

            with m.State("CSR_WRITE"):
                m.d.comb += [
                    csr.awaddr.eq(addr), csr.awvalid.eq(~aw_done),
                    buf_r.addr.eq(buffer_at(count)), csr.wdata.eq(buf_r.data),
                    csr.wstrb.eq(0b1111), csr.wvalid.eq(~w_done),
                ]
                aw = aw_done | csr.awready
                w = w_done | csr.wready
                m.d.sync += [aw_done.eq(aw), w_done.eq(w)]
                with m.If(aw & w):
                    m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                    m.next = "CSR_WRITE_RESPONSE"

            with m.State("CSR_WRITE_RESPONSE"):
                m.d.comb += csr.bready.eq(1)
                with m.If(csr.bvalid):
                    word_done(csr.bresp, "CSR_WRITE", Mux(fixed, 0, 4))

            with m.State("CSR_READ"):
                m.d.comb += [csr.araddr.eq(addr), csr.arvalid.eq(1)]
                with m.If(csr.arready):
                    m.next = "CSR_READ_RESPONSE"

            with m.State("CSR_READ_RESPONSE"):
                m.d.comb += [csr.rready.eq(1), buf_w.addr.eq(buffer_at(count)),
                             buf_w.data.eq(csr.rdata), buf_w.en.eq(Mux(csr.rvalid, 0b1111, 0))]
                with m.If(csr.rvalid):
                    word_done(csr.rresp, "CSR_READ", 4)

            with m.State("MEM_WRITE"):
                m.d.comb += [ram.addr.eq(addr), buf_r.addr.eq(buffer_at(count)),
                             ram.w_data.eq(buf_byte), ram.w_en.eq(1)]
                m.d.sync += addr.eq(addr + 1)
                advance(1, count + 1 == length)

            with m.State("MEM_READ"):
                m.d.comb += ram.addr.eq(addr)
                m.next = "MEM_READ_DATA"

            with m.State("MEM_READ_DATA"):  # r_data is the byte at addr
                m.d.comb += [ram.addr.eq(addr), buf_w.addr.eq(buffer_at(count)),
                             buf_w.data.eq(ram.r_data.replicate(4)),
                             buf_w.en.eq(Const(1, 4) << count[:2])]
                m.d.sync += addr.eq(addr + 1)
                m.next = "MEM_READ"
                advance(1, count + 1 == length)

            with m.State("REPLY"):
                with m.If(drop | self.abort):
                    m.d.sync += drop.eq(0)
                    m.next = "IDLE"
                data = Mux(status == Status.OK, data_bytes, 0)
                index = Signal(9)
                m.d.comb += [index.eq(count - 2), buf_r.addr.eq(buffer_at(index)),
                             tx.valid.eq(~drop & ~self.abort)]
                ping = Const(int.from_bytes(self.ping_data, "little"), 8 * PING_BYTES)
                data_byte = Mux(command == Command.PING, ping.word_select(index[:3], 8),
                                buf_r.data.word_select(index[:2], 8))
                with m.If(count == 0):
                    m.d.comb += tx.payload.eq(status)
                with m.Elif(count == 1):
                    m.d.comb += tx.payload.eq(tag)
                with m.Elif(count < data + 2):
                    m.d.comb += tx.payload.eq(data_byte)
                with m.Elif(count == data + 2):
                    m.d.comb += tx.payload.eq(crc[8:])
                with m.Else():
                    m.d.comb += tx.payload.eq(crc[:8])
                m.d.comb += crc_byte.eq(tx.payload)
                with m.If(tx.valid & tx.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count < data + 2):
                        m.d.sync += crc.eq(crc_next)
                    with m.If(count == data + 3):
                        m.next = "IDLE"

        with m.If(self.abort & ~rx.ready):  # CHECK and the accesses
            m.d.sync += drop.eq(1)
        m.d.comb += self.busy.eq(~rx.ready)
        return m

    @staticmethod
    def _end_early(m, frame_end, abort, finish):
        with m.If(abort):
            m.next = "IDLE"
        with m.Elif(frame_end):
            finish(Status.TRUNCATED, executed=False)

    def _check(self, m, command, tag, addr, length, count, crc, data_bytes, last_tag,
               last_write, last_status, finish):
        """The CHECK state: the frame's status, or the access to start."""
        is_csr = Cat(command == c for c in (Command.CSR_READ, Command.CSR_WRITE,
                                            Command.CSR_WRITE_FIXED)).any()
        is_mem = (command == Command.MEM_READ) | (command == Command.MEM_WRITE)
        known = is_csr | is_mem | (command == Command.PING)
        fits = (length != 0) & (length <= self.max_payload)
        good_length = Mux(command == Command.PING, length == 0,
                          fits & Mux(is_csr, length[:2] == 0, 1))
        csr_span = Mux(command == Command.CSR_WRITE_FIXED, 4, length)
        end = Signal(34)
        m.d.comb += end.eq(addr + Mux(is_csr, csr_span, length))
        good_addr = Mux(is_csr, (addr[:2] == 0) & (end <= 1 << self.csr_addr_width),
                        ~is_mem | (end <= self.ram_bytes))
        write = command[0]
        replay = write & last_write & (tag == last_tag)
        m.d.sync += count.eq(0)
        with m.If(crc != 0):
            finish(Status.BAD_CRC, executed=False)
        with m.Else():
            m.d.sync += [last_tag.eq(tag), last_write.eq(write)]
            with m.If(~known):
                finish(Status.BAD_COMMAND)
            with m.Elif(~good_length):
                finish(Status.BAD_LENGTH)
            with m.Elif(~good_addr):
                finish(Status.BAD_ADDRESS)
            with m.Elif(replay):
                finish(last_status, executed=False)
            with m.Else():
                m.d.sync += data_bytes.eq(Mux(command == Command.PING, PING_BYTES,
                                              Mux(write, 0, length)))
                with m.Switch(command):
                    with m.Case(Command.PING):
                        finish(Status.OK)
                    with m.Case(Command.CSR_READ):
                        m.next = "CSR_READ"
                    with m.Case(Command.CSR_WRITE, Command.CSR_WRITE_FIXED):
                        m.next = "CSR_WRITE"
                    with m.Case(Command.MEM_READ):
                        m.next = "MEM_READ"
                    with m.Case(Command.MEM_WRITE):
                        m.next = "MEM_WRITE"

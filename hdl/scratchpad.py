"""Scratchpad: banked int8 row memory between the loads and the systolic array."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .response_buffer import ResponseBuffer
from .sram import SRAM1R1W

__all__ = ["Scratchpad", "sp_read_layout", "sp_write_layout"]


def sp_write_layout(config):
    return data.StructLayout({
        "addr": config.addr_width,
        "row": data.ArrayLayout(config.act_shape, config.dim),
    })


def sp_read_layout(config):
    """A read answer; ``error`` marks a refused out-of-range address (``row`` is then zero)."""
    return data.StructLayout({
        "row": data.ArrayLayout(config.act_shape, config.dim),
        "error": 1,
    })


class Scratchpad(wiring.Component):
    """``config.sp_depth`` rows of ``dim`` activation lanes in ``config.sp_banks`` banks.

    The bank is selected by the top address bits, so with two banks the halves are the
    ping-pong buffers. Each bank is one :class:`hdl.sram.SRAM1R1W`.

    Timing:

    - ``write``: one row per cycle, written at the end of the cycle it is accepted.
    - ``read`` -> ``read_data``: one row per cycle; an answer appears 2 cycles after its request
      is accepted (with an empty response buffer). A read sees every write accepted in an
      earlier cycle, not one accepted in the same cycle.
    - ``read_b`` -> ``read_b_data``: a second read port with the same timing, for another
      bank: a bank has one read port, so when both ports want the same bank in a cycle,
      ``read`` goes first, ``read_b`` waits and the conflict is counted. (The EXEC unit reads
      the next tile's weights from one ping-pong half while activation rows stream from the
      other.)
    - Back-pressure: ``read_data`` not ready fills a 3-row response buffer, then ``read.ready``
      drops; nothing is lost. ``write.ready`` stays high, except that a write waits while
      a read of the same row is accepted (with ``config.sp_single_port`` banks: of the same
      bank): the read, which feeds the array, goes first, and the conflict is counted.
    - An address at or above ``sp_depth`` is refused, never wrapped: a write is dropped, a
      read answers a zero row with ``error`` set, and the sticky ``error`` output rises.

    Members
    -------
    write : In(stream.Signature(sp_write_layout(config)))
    read : In(stream.Signature(config.addr_width))
    read_data : Out(stream.Signature(sp_read_layout(config)))
    read_b : In(stream.Signature(config.addr_width))
    read_b_data : Out(stream.Signature(sp_read_layout(config)))
    error : Out(1)
        Sticky: an out-of-range address was refused.
    conflict : Out(1)
        High in each cycle a write waits for a same-row read (same-bank with single-ported
        banks), or ``read_b`` for a same-bank ``read`` (the top level counts these cycles).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "write": In(stream.Signature(sp_write_layout(config))),
            "read": In(stream.Signature(config.addr_width)),
            "read_data": Out(stream.Signature(sp_read_layout(config))),
            "read_b": In(stream.Signature(config.addr_width)),
            "read_b_data": Out(stream.Signature(sp_read_layout(config))),
            "error": Out(1),
            "conflict": Out(1),
        })

    #: Cycles from an accepted read request to its answer on ``read_data``.
    read_latency = 2

    @property
    def sram_shapes(self):
        """``(depth, width)`` of each bank."""
        return [(self.config.sp_bank_depth, self.config.dim * self.config.act_width)] * \
            self.config.sp_banks

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        bank_depth = cfg.sp_bank_depth
        index_bits = (bank_depth - 1).bit_length()
        width = cfg.dim * cfg.act_width
        banks = []
        for b in range(cfg.sp_banks):
            # A row is never read and written in one cycle (the write waits, see below).
            banks.append(SRAM1R1W(bank_depth, width, collision="any"))
            m.submodules[f"bank{b}"] = banks[-1]

        def read_port(name, stream_in, stream_out):
            """Request side of a read port: (address, in range, bank, accepted, buffer)."""
            response = ResponseBuffer(sp_read_layout(cfg), 1)
            m.submodules[name] = response
            wiring.connect(m, wiring.flipped(stream_out), response.output)
            addr = stream_in.payload
            return addr, addr < cfg.sp_depth, addr[index_bits:], response

        r_addr, r_in_range, r_bank, response = read_port("response", self.read, self.read_data)
        r_fire = self.read.valid & response.ready
        m.d.comb += [self.read.ready.eq(response.ready), response.issue.eq(r_fire)]
        # Port b waits when port a reads the same bank in this cycle.
        b_addr, b_in_range, b_bank, response_b = read_port("response_b", self.read_b,
                                                           self.read_b_data)
        b_conflict = r_fire & r_in_range & b_in_range & (r_bank == b_bank)
        b_fire = self.read_b.valid & response_b.ready & ~b_conflict
        m.d.comb += [self.read_b.ready.eq(response_b.ready & ~b_conflict),
                     response_b.issue.eq(b_fire)]

        w_addr = self.write.payload.addr
        w_in_range = w_addr < cfg.sp_depth
        w_bank = w_addr[index_bits:]
        # A write waits for a read of the same row (of the same bank, if single-ported), so
        # that the read returns the old row without the memory having to order the two.
        conflict = Signal()
        if cfg.sp_single_port:
            m.d.comb += conflict.eq(w_in_range & (
                (r_fire & r_in_range & (r_bank == w_bank))
                | (b_fire & b_in_range & (b_bank == w_bank))))
        else:
            m.d.comb += conflict.eq(w_in_range & ((r_fire & (r_addr == w_addr))
                                                  | (b_fire & (b_addr == w_addr))))
        m.d.comb += self.write.ready.eq(~conflict)
        w_fire = self.write.valid & self.write.ready

        for b, bank in enumerate(banks):
            a_here = r_fire & r_in_range & (r_bank == b)
            m.d.comb += [
                bank.r_addr.eq(Mux(a_here, r_addr[:index_bits], b_addr[:index_bits])),
                bank.r_en.eq(a_here | (b_fire & b_in_range & (b_bank == b))),
                bank.w_addr.eq(w_addr[:index_bits]),
                bank.w_data.eq(self.write.payload.row),
                bank.w_en.eq(w_fire & w_in_range & (w_bank == b)),
            ]

        # The answers arrive one cycle after the requests: pick the banks read then.
        for port_bank, in_range, buffer in [(r_bank, r_in_range, response),
                                            (b_bank, b_in_range, response_b)]:
            answer_bank = Signal.like(port_bank)
            answer_error = Signal()
            m.d.sync += [answer_bank.eq(port_bank), answer_error.eq(~in_range)]
            with m.Switch(answer_bank):
                for b, bank in enumerate(banks):
                    with m.Case(b):
                        m.d.comb += buffer.data.row.eq(bank.r_data)
            with m.If(answer_error):
                m.d.comb += buffer.data.row.eq(0)
            m.d.comb += buffer.data.error.eq(answer_error)

        with m.If((r_fire & ~r_in_range) | (b_fire & ~b_in_range) | (w_fire & ~w_in_range)):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.conflict.eq((self.write.valid & conflict)
                                     | (self.read_b.valid & b_conflict))
        return m

"""Scratchpad: banked int8 row memory between the loads and the systolic array."""

from amaranth.hdl import Module, Signal
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
    - Back-pressure: ``read_data`` not ready fills a 3-row response buffer, then ``read.ready``
      drops; nothing is lost. ``write.ready`` stays high, except with
      ``config.sp_single_port`` banks, where a write to the bank being read in the same cycle
      waits (the read, which feeds the array, goes first) and the conflict is counted.
    - An address at or above ``sp_depth`` is refused, never wrapped: a write is dropped, a
      read answers a zero row with ``error`` set, and the sticky ``error`` output rises.

    Members
    -------
    write : In(stream.Signature(sp_write_layout(config)))
    read : In(stream.Signature(config.addr_width))
    read_data : Out(stream.Signature(sp_read_layout(config)))
    error : Out(1)
        Sticky: an out-of-range address was refused.
    conflicts : Out(32)
        Cycles a write waited for a same-bank read (single-ported banks only).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "write": In(stream.Signature(sp_write_layout(config))),
            "read": In(stream.Signature(config.addr_width)),
            "read_data": Out(stream.Signature(sp_read_layout(config))),
            "error": Out(1),
            "conflicts": Out(32),
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
            banks.append(SRAM1R1W(bank_depth, width))
            m.submodules[f"bank{b}"] = banks[-1]

        m.submodules.response = response = ResponseBuffer(sp_read_layout(cfg), 1)
        wiring.connect(m, wiring.flipped(self.read_data), response.output)

        r_addr = self.read.payload
        r_in_range = r_addr < cfg.sp_depth
        r_bank = r_addr[index_bits:]
        r_fire = self.read.valid & response.ready
        m.d.comb += [self.read.ready.eq(response.ready), response.issue.eq(r_fire)]

        w_addr = self.write.payload.addr
        w_in_range = w_addr < cfg.sp_depth
        w_bank = w_addr[index_bits:]
        conflict = Signal()
        if cfg.sp_single_port:
            m.d.comb += conflict.eq(r_fire & r_in_range & w_in_range & (r_bank == w_bank))
        m.d.comb += self.write.ready.eq(~conflict)
        w_fire = self.write.valid & self.write.ready

        for b, bank in enumerate(banks):
            m.d.comb += [
                bank.r_addr.eq(r_addr[:index_bits]),
                bank.r_en.eq(r_fire & r_in_range & (r_bank == b)),
                bank.w_addr.eq(w_addr[:index_bits]),
                bank.w_data.eq(self.write.payload.row),
                bank.w_en.eq(w_fire & w_in_range & (w_bank == b)),
            ]

        # The answer arrives one cycle after the request: pick the bank read then.
        answer_bank = Signal.like(r_bank)
        answer_error = Signal()
        m.d.sync += [answer_bank.eq(r_bank), answer_error.eq(~r_in_range)]
        with m.Switch(answer_bank):
            for b, bank in enumerate(banks):
                with m.Case(b):
                    m.d.comb += response.data.row.eq(bank.r_data)
        with m.If(answer_error):
            m.d.comb += response.data.row.eq(0)
        m.d.comb += response.data.error.eq(answer_error)

        with m.If((r_fire & ~r_in_range) | (w_fire & ~w_in_range)):
            m.d.sync += self.error.eq(1)
        with m.If(self.write.valid & conflict):
            m.d.sync += self.conflicts.eq(self.conflicts + 1)
        return m

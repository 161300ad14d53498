"""DMA transfers: the command, its checks and error codes, and its split into AXI4 bursts.

The definitions here are shared by the read engine (:mod:`hdl.dma_read`) and the write engine
(:mod:`hdl.dma_write`), which both start with a :class:`BurstSplitter`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi4 import MAX_BURST_BEATS, PAGE_BYTES, AXI4Signature, AXIResp

__all__ = ["ROWS_WIDTH", "ROW_BEATS_WIDTH", "BurstSplitter", "DMAError", "burst_layout",
           "check_engine_parameters", "dma_axi_signature", "dma_command_layout",
           "dma_status_signature", "error_event_layout", "latch_first_error", "response_error"]

#: Width of a command's beats-per-row and row-count fields.
ROW_BEATS_WIDTH = 16
ROWS_WIDTH = 16


class DMAError(enum.Enum, shape=3):
    """Why a DMA engine stopped (its sticky ``error_cause``).

    ``SLVERR`` / ``DECERR``: a read beat or a write response carried that AXI error.
    ``MISALIGNED``: a command's address or stride is not a multiple of the beat size.
    ``EMPTY``: a command with zero rows or zero beats per row.
    ``RANGE``: a command runs past the top of the address space (it would wrap to 0).
    """
    NONE = 0
    SLVERR = 1
    DECERR = 2
    MISALIGNED = 3
    EMPTY = 4
    RANGE = 5


def dma_command_layout(config):
    """One DMA command: a 2-D transfer of ``rows`` rows of ``row_beats`` bus beats each.

    Row ``r`` starts at byte address ``addr + r * stride``. ``addr`` and ``stride`` must be
    multiples of the beat size (``config.bus_data_width // 8`` bytes), so that every row is a
    whole number of aligned beats (the driver lays matrices out padded to beats); ``rows``
    and ``row_beats`` must be at least 1. Any ``stride`` is allowed, also one smaller than a
    row (rows overlap; 0 reads or writes the same row again).
    """
    return data.StructLayout({
        "addr": config.bus_addr_width,
        "row_beats": ROW_BEATS_WIDTH,
        "rows": ROWS_WIDTH,
        "stride": config.bus_addr_width,
    })


def burst_layout(config):
    """One burst of a transfer: byte address, AxLEN (beats - 1), whether it ends a row and
    the whole command, and whether the command was refused (the burst must not be issued;
    its beats are delivered or consumed flagged as errors). The first refused burst of a
    command carries the ``cause`` (else ``NONE``), and then its ``addr`` is the command's
    address."""
    return data.StructLayout({
        "addr": config.bus_addr_width,
        "len": 8,
        "row_last": 1,
        "last": 1,
        "refused": 1,
        "cause": DMAError,
    })


def error_event_layout(config):
    """An error found in one cycle: ``valid``, its ``cause`` and the address it concerns."""
    return data.StructLayout({"valid": 1, "cause": DMAError, "addr": config.bus_addr_width})


def dma_status_signature(config):
    """Status of a DMA engine, as the CSR block exposes it.

    ``busy``: a command is being executed (accepted and not yet complete). ``done``: pulses
    for one cycle per completed command (see the engine for when that is). ``error``: sticky;
    set by the first error, with its ``error_cause`` (:class:`DMAError`) and ``error_addr``;
    cleared by a pulse on ``error_clear`` (an error in the same cycle is latched instead).
    ``error_cause`` is ``NONE`` while ``error`` is low.
    """
    return wiring.Signature({
        "busy": Out(1),
        "done": Out(1),
        "error": Out(1),
        "error_cause": Out(DMAError),
        "error_addr": Out(config.bus_addr_width),
        "error_clear": In(1),
    })


def dma_axi_signature(config, *, read=True, write=True):
    """The DMA's AXI4 manager port (or its read or write half) for ``config``'s bus."""
    return AXI4Signature(addr_width=config.bus_addr_width, data_width=config.bus_data_width,
                         id_width=config.bus_id_width, read=read, write=write)


def response_error(m, config, valid, resp, addr):
    """The :func:`error_event_layout` of an AXI response ``resp`` received when ``valid``:
    valid for SLVERR and DECERR, with ``addr``."""
    event = Signal(error_event_layout(config))
    m.d.comb += [
        event.valid.eq(valid & resp.as_value()[1]),
        event.cause.eq(Mux(resp == AXIResp.DECERR, DMAError.DECERR, DMAError.SLVERR)),
        event.addr.eq(addr),
    ]
    return event


def latch_first_error(m, status, events):
    """Sticky error register of ``status`` (:func:`dma_status_signature`, seen from inside).

    ``events`` are :func:`error_event_layout` values, highest priority first: while no error
    is latched (or in the cycle it is cleared), the first valid one is latched.
    """
    with m.If(status.error_clear):
        m.d.sync += [status.error.eq(0), status.error_cause.eq(DMAError.NONE)]
    for event in reversed(events):  # later assignments win: the first event has priority
        with m.If(event.valid & (~status.error | status.error_clear)):
            m.d.sync += [status.error.eq(1), status.error_cause.eq(event.cause),
                         status.error_addr.eq(event.addr)]


def check_engine_parameters(component, config, *, max_burst, axi_id=0):
    """Checks the parameters of a DMA block (``max_burst``, ``axi_id``); raises
    :class:`TypeError` or :class:`ValueError`, and then keeps ``component`` (never built)
    from warning that it was created but never used."""
    try:
        if not isinstance(max_burst, int) or isinstance(max_burst, bool):
            raise TypeError(f"max_burst must be an integer, not {max_burst!r}")
        if not 1 <= max_burst <= MAX_BURST_BEATS or max_burst & (max_burst - 1):
            raise ValueError(f"max_burst must be a power of two from 1 to {MAX_BURST_BEATS}, "
                             f"not {max_burst!r}")
        if (not isinstance(axi_id, int) or isinstance(axi_id, bool)
                or not 0 <= axi_id < 1 << config.bus_id_width):
            raise ValueError(f"axi_id must fit bus_id_width ({config.bus_id_width} bits), "
                             f"not {axi_id!r}")
    except (TypeError, ValueError):
        component._MustUse__silence = True
        raise


class BurstSplitter(wiring.Component):
    """Splits 2-D transfer commands into AXI4 INCR bursts.

    Each row is cut into bursts of at most ``max_burst`` beats that never cross a 4 KiB
    boundary and never a row end: a burst is ``min(beats left in the row, max_burst, beats
    to the next 4 KiB boundary)`` beats long. Bursts come out in address order, row after row.
    :func:`sim.tb_dma.split_transfer` is the reference model.

    A command is checked as it is accepted. A misaligned ``addr`` or ``stride``
    (``MISALIGNED``) produces the bursts of the command with the low address bits cleared,
    all flagged ``refused``, so that the engine delivers (or consumes) the command's number
    of beats, flagged. A command that would run past the top of the address space
    (``RANGE``) has its bursts flagged ``refused`` from the first one that would wrap. The
    error is reported on ``error`` (for one cycle, with the command's address) when the
    first refused burst leaves, so every earlier burst has left before it. A zero ``rows`` or
    ``row_beats`` (``EMPTY``) produces no burst; it is reported once every burst of the
    earlier commands has left (unless one of them reports an error in that same cycle: only
    the first error is kept anyway).

    Timing:

    - Latency: a burst is on ``bursts`` in the cycle after its command was accepted (or
      after the previous burst left).
    - Throughput: one burst per cycle. The next command is accepted in the cycle the last
      burst of the current one is computed, so back-to-back one-burst commands also run at
      one burst per cycle.
    - Back-pressure: ``bursts.ready`` low holds the current burst; ``cmd.ready`` follows
      ``bursts.ready`` combinationally while a command is in progress.

    Parameters
    ----------
    config : TesseraConfig
        ``bus_data_width`` (beat size) and ``bus_addr_width``.
    max_burst : int
        Longest burst in beats: a power of two, 1 to 256.

    Members
    -------
    cmd : In(stream.Signature(dma_command_layout(config)))
    bursts : Out(stream.Signature(burst_layout(config)))
    busy : Out(1)
        A command is in progress or a burst waits on ``bursts``.
    error : Out(error_event_layout(config))
        A command error: valid for one cycle, in the cycle its first refused burst leaves
        (``bursts.valid & bursts.ready``), combinationally.

    Raises
    ------
    TypeError, ValueError
        ``max_burst`` is not a power of two from 1 to 256.
    """

    def __init__(self, config, *, max_burst=MAX_BURST_BEATS):
        check_engine_parameters(self, config, max_burst=max_burst)
        self.config = config
        self.max_burst = max_burst
        super().__init__({
            "cmd": In(stream.Signature(dma_command_layout(config))),
            "bursts": Out(stream.Signature(burst_layout(config))),
            "busy": Out(1),
            "error": Out(error_event_layout(config)),
        })

    @property
    def beat_bytes(self):
        return self.config.bus_data_width // 8

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        size = (self.beat_bytes - 1).bit_length()
        beat_addr_width = cfg.bus_addr_width - size
        page_beats = PAGE_BYTES // self.beat_bytes
        page_bits = page_beats.bit_length() - 1
        cmd = self.cmd.payload
        out = self.bursts

        active = Signal()
        addr = Signal(beat_addr_width)       # beat address of the next burst
        row_addr = Signal(beat_addr_width)   # beat address of the current row
        stride = Signal(beat_addr_width)
        row_beats = Signal(ROW_BEATS_WIDTH)
        remaining = Signal(ROW_BEATS_WIDTH)  # beats of the current row not yet in a burst
        rows_left = Signal(ROWS_WIDTH)       # rows including the current one
        refused = Signal()
        base = Signal(cfg.bus_addr_width)    # the command's address, for error reports

        to_boundary = Signal(page_bits + 1)
        m.d.comb += to_boundary.eq(page_beats - addr[:page_bits])
        cap = Mux(to_boundary < self.max_burst, to_boundary, self.max_burst)
        row_end = remaining <= cap
        beats = Mux(row_end, remaining, cap)
        last_row = rows_left == 1
        next_in_row = Signal(beat_addr_width + 1)
        next_row = Signal(beat_addr_width + 1)
        m.d.comb += [next_in_row.eq(addr + beats), next_row.eq(row_addr + stride)]
        # The next burst would start at or beyond 2**bus_addr_width.
        wraps = Mux(row_end, ~last_row & next_row[-1], next_in_row[-1])

        emit = active & (~out.valid | out.ready)
        cmd_end = row_end & last_row
        announce = Signal(DMAError)  # the error the next burst leaving reports
        empty_pending = Signal()     # an EMPTY command waits for the earlier bursts to leave
        m.d.comb += [
            self.cmd.ready.eq((~active | (emit & cmd_end)) & ~empty_pending),
            self.busy.eq(active | out.valid | empty_pending),
        ]

        with m.If(out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(emit):
            m.d.sync += [
                out.valid.eq(1),
                out.payload.addr.eq(Mux(announce == DMAError.NONE, Cat(Const(0, size), addr),
                                        base)),
                out.payload.len.eq(beats - 1),
                out.payload.row_last.eq(row_end),
                out.payload.last.eq(cmd_end),
                out.payload.refused.eq(refused),
                out.payload.cause.eq(announce),
                announce.eq(DMAError.NONE),
            ]
            with m.If(row_end):
                m.d.sync += [
                    addr.eq(next_row),
                    row_addr.eq(next_row),
                    remaining.eq(row_beats),
                    rows_left.eq(rows_left - 1),
                ]
                with m.If(last_row):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [addr.eq(next_in_row), remaining.eq(remaining - beats)]
            with m.If(wraps & ~refused):
                m.d.sync += [refused.eq(1), announce.eq(DMAError.RANGE)]

        burst_error = out.valid & out.ready & (out.payload.cause != DMAError.NONE)
        empty_error = empty_pending & (~out.valid | out.ready)
        m.d.comb += [
            self.error.valid.eq(burst_error | empty_error),
            self.error.cause.eq(Mux(burst_error, out.payload.cause, DMAError.EMPTY)),
            self.error.addr.eq(Mux(burst_error, out.payload.addr, base)),
        ]
        with m.If(empty_error):
            m.d.sync += empty_pending.eq(0)

        with m.If(self.cmd.valid & self.cmd.ready):
            misaligned = cmd.addr[:size].any() | cmd.stride[:size].any() if size else Const(0)
            empty = (cmd.row_beats == 0) | (cmd.rows == 0)
            m.d.sync += [
                active.eq(~empty),
                empty_pending.eq(empty),
                addr.eq(cmd.addr[size:]),
                row_addr.eq(cmd.addr[size:]),
                stride.eq(cmd.stride[size:]),
                row_beats.eq(cmd.row_beats),
                remaining.eq(cmd.row_beats),
                rows_left.eq(cmd.rows),
                refused.eq(misaligned),
                announce.eq(Mux(misaligned, DMAError.MISALIGNED, DMAError.NONE)),
                base.eq(cmd.addr),
            ]
        return m

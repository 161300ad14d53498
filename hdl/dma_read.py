"""DMA read engine: 2-D transfers from memory over AXI4 into a stream of bus beats."""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .axi4 import MAX_BURST_BEATS, incr_burst_fields
from .burst_splitter import (
    BurstSplitter,
    burst_len_bits,
    check_engine_parameters,
    connect_commands,
    dma_axi_signature,
    dma_command_layout,
    dma_status_signature,
    latch_engine_error,
    may_leave,
    small_fifo,
)
from .sram import SRAM1R1W, has_ice40_ebr

__all__ = ["DMAReader", "read_beat_layout"]


def read_beat_layout(config):
    """One beat of read data: ``data`` (``bus_data_width`` bits), ``row_last`` on the last
    beat of each row, ``last`` on the last beat of the command, ``error`` on every beat from
    the first failing one to the end of its command (see :class:`DMAReader`)."""
    return data.StructLayout({
        "data": config.bus_data_width,
        "row_last": 1,
        "last": 1,
        "error": 1,
    })


class _Port(NamedTuple):
    """The signals of a memory port, as :class:`amaranth.lib.memory` ports name them."""
    en: Value
    addr: Value
    data: Value


def _order_layout(max_burst):
    """A burst on its way to the output: its length, end flags, and whether it was issued."""
    return data.StructLayout({"len": burst_len_bits(max_burst), "row_last": 1, "last": 1,
                              "skip": 1})


class DMAReader(wiring.Component):
    """Reads 2-D transfers (:func:`hdl.burst_splitter.dma_command_layout`) over AXI4.

    Each command is split into INCR bursts (:class:`hdl.burst_splitter.BurstSplitter`: at
    most ``max_burst`` beats, never across 4 KiB or a row end; ARSIZE the full beat, ARBURST
    INCR, ARID ``axi_id`` for all bursts, so the memory answers them in order). The beats
    come out on ``data`` in address order, row after row, with ``row_last`` and ``last``.

    Flow control: an AR is issued only when :attr:`buffer_depth` minus the beats already
    reserved leaves room for a longest burst in the data buffer, so ``rready`` is always
    high: the engine never back-pressures R. A stalled consumer fills the buffer and then
    stops AR issue. At most ``config.dma_outstanding`` bursts are in flight (AR accepted or
    waiting on AR, R not yet complete).

    Errors: an SLVERR or DECERR beat latches the sticky error (cause, and the address of its
    burst). From then on no new AR is issued (a burst already on AR stays there until
    accepted), and every R beat still due is accepted. Every command still delivers all its
    beats, so the consumer never hangs: the beats before the failing one normally, the
    failing beat and the rest of its command with ``error`` set. Bursts that were not issued
    (those taken while the error is latched) deliver their beats flagged, with unspecified
    ``data``; so while the error is latched later commands deliver flagged beats without
    reading memory (their bursts issued before the error was latched deliver normally).
    After ``status.error_clear`` new bursts are issued again. A refused command (see
    :class:`hdl.burst_splitter.DMAError`) delivers its beats flagged as well, except an
    ``EMPTY`` one, which delivers nothing and does not pulse ``done``. At 50 MHz and below
    with ``dma_outstanding`` 2 (:func:`hdl.burst_splitter.latch_engine_error`) a command error
    is reported only while at most one burst is in flight: the refused burst that reports it
    waits for that, and an ``EMPTY`` command is accepted only with no burst in flight.

    Timing:

    - Latency: ARVALID is high 2 cycles after the cycle the command was accepted in (the
      splitter's state, the AR register); a beat is on ``data`` 2 cycles after
      its R handshake (the buffer's write, then its read into the read port's register),
      3 with :attr:`output_register` (then a fabric register).
    - Throughput: one beat per cycle while the memory answers one per cycle, provided the
      memory's AR-to-R latency is covered by the outstanding bursts (``dma_outstanding``
      bursts of the row length, and at most one ``max_burst`` burst plus the buffer).
      One AR per cycle, so rows of one beat run at one beat per cycle given enough
      outstanding bursts.
    - Back-pressure: ``data.ready`` low stops delivery; R keeps being accepted into the
      reserved buffer space. ``data`` comes from registers (``data.data`` from the block
      RAM's read register, ``error`` an OR of three registers; with :attr:`output_register`
      all from one register); ``data.valid`` does not depend on ``data.ready``.
    - ``status.done`` pulses one cycle after the ``last`` beat of a command was delivered;
      ``status.busy`` is high from the command's acceptance until its last beat is delivered.

    Parameters
    ----------
    config : TesseraConfig
        ``bus_data_width``, ``bus_addr_width``, ``bus_id_width``, ``dma_outstanding``.
    max_burst : int
        Longest burst in beats: a power of two, 1 to 256.
    axi_id : int
        ARID of every burst.
    wide_commands : bool
        16-bit ``rows`` and ``row_beats`` also at 50 MHz and below (see
        :func:`hdl.burst_splitter.command_field_widths`).

    Members
    -------
    cmd : In(stream.Signature(dma_command_layout(config, wide=wide_commands)))
    data : Out(stream.Signature(read_beat_layout(config)))
    status : Out(dma_status_signature(config))
    axi : Out(dma_axi_signature(config, write=False))
        The read half of an AXI4 manager port.

    Raises
    ------
    TypeError, ValueError
        ``max_burst`` is not a power of two from 1 to 256, or ``axi_id`` does not fit.
    """

    def __init__(self, config, *, max_burst=MAX_BURST_BEATS, axi_id=0, wide_commands=False):
        check_engine_parameters(self, config, max_burst=max_burst, axi_id=axi_id)
        self.config = config
        self.max_burst = max_burst
        self.axi_id = axi_id
        self.wide_commands = wide_commands
        super().__init__({
            "cmd": In(stream.Signature(dma_command_layout(config, wide=wide_commands))),
            "data": Out(stream.Signature(read_beat_layout(config))),
            "status": Out(dma_status_signature(config)),
            "axi": Out(dma_axi_signature(config, write=False)),
        })

    @property
    def output_register(self):
        """Whether ``data`` comes through a register after the buffer's read register (for
        ``config.fast_clock``: one more cycle of latency, a shorter path)."""
        return self.config.fast_clock

    @property
    def buffer_depth(self):
        """Beats the data buffer's block RAM holds: two longest bursts (the beat on ``data``
        is in its read register, apart)."""
        return 2 * self.max_burst

    @property
    def outstanding(self):
        """Bursts in flight at most."""
        return self.config.dma_outstanding

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        axi = self.axi
        status = self.status

        # Commands come through the read arbiter's multiplexer: on an iCE40 (a LUT packs
        # with the flip-flop it alone feeds) relative rows save that many logic cells; with
        # gates (micro's ASIC) the adder they add costs more than it saves.
        m.submodules.splitter = splitter = BurstSplitter(
            cfg, max_burst=self.max_burst, relative_rows=has_ice40_ebr(platform),
            wide_commands=self.wide_commands)
        burst = splitter.bursts.payload

        # Every burst, issued or not, in order: what the output stage delivers.
        order_layout = _order_layout(self.max_burst)
        m.submodules.order = order = small_fifo(cfg, width=order_layout.size,
                                                depth=2 * self.outstanding)
        # R beats with their error bit, in block RAM; space for every issued beat is reserved.
        # A row is never read in the cycle it is written (it counts as filled from the next
        # cycle on), so a read colliding with a write may return anything: on an iCE40 the
        # buffer is raw SB_RAM40_4K tiles (its width rounded up to theirs), elsewhere an
        # inline memory with a transparent read port (what FPGAs build most cheaply).
        width = cfg.bus_data_width + 1
        if has_ice40_ebr(platform):
            m.submodules.buffer = buffer = SRAM1R1W(self.buffer_depth, -(-width // 16) * 16,
                                                    collision="any")
            w_port = _Port(en=buffer.w_en, addr=buffer.w_addr, data=buffer.w_data)
            r_port = _Port(en=buffer.r_en, addr=buffer.r_addr, data=buffer.r_data)
        else:
            m.submodules.buffer = buffer = Memory(shape=width, depth=self.buffer_depth,
                                                  init=[])
            w_port = buffer.write_port()
            r_port = buffer.read_port(transparent_for=(w_port,))
        w_ptr = Signal(self.buffer_depth.bit_length())  # with a wrap bit
        r_ptr = Signal.like(w_ptr)
        credits = Signal(range(self.buffer_depth + 1), init=self.buffer_depth)

        # --- AR: one burst per cycle into the AR register, unless it is skipped. ---
        ar_valid = Signal()
        skip = burst.refused | status.error
        beats = burst.len + 1
        ar_free = ~ar_valid | axi.arready
        r_done = axi.rvalid & axi.rlast
        issue = Signal()
        # The sticky error; a bus error reports the burst whose R beats arrive.
        in_flight_room, idle = latch_engine_error(
            m, cfg, status, self.outstanding, newest=axi.araddr, issue=issue, retire=r_done,
            resp_valid=axi.rvalid, resp=axi.rresp, command_error=splitter.error)
        connect_commands(m, cfg, self.outstanding, self.cmd, splitter, idle)
        if cfg.fast_clock:
            credit_room = credits >= self.max_burst
        else:  # max_burst is a power of two
            credit_room = credits[exact_log2(self.max_burst):].any()
        room = order.w_rdy & may_leave(cfg, self.outstanding, burst, skip, in_flight_room,
                                       ar_free & credit_room)
        take = splitter.bursts.valid & room
        record_in = Signal(order_layout)
        m.d.comb += [
            issue.eq(take & ~skip),
            splitter.bursts.ready.eq(room),
            record_in.len.eq(burst.len),
            record_in.row_last.eq(burst.row_last),
            record_in.last.eq(burst.last),
            record_in.skip.eq(skip),
            order.w_en.eq(take),
            order.w_data.eq(record_in),
        ]
        with m.If(axi.arready):
            m.d.sync += ar_valid.eq(0)
        with m.If(issue):
            m.d.sync += [ar_valid.eq(1), axi.araddr.eq(burst.addr), axi.arlen.eq(burst.len)]
        m.d.comb += [
            axi.arvalid.eq(ar_valid),
            *incr_burst_fields(axi, "ar", axi_id=self.axi_id),
        ]

        # --- R: always accepted into reserved space. ---
        r_error = axi.rresp.as_value()[1]  # SLVERR or DECERR
        m.d.comb += [
            axi.rready.eq(1),
            w_port.en.eq(axi.rvalid),
            w_port.addr.eq(w_ptr[:-1]),
            w_port.data.eq(Cat(axi.rdata, r_error)),
        ]
        with m.If(axi.rvalid):
            m.d.sync += w_ptr.eq(w_ptr + 1)

        # --- Output: the bursts in order, their beats read from the buffer (its read port's
        # data register) or made up, into `beat_out`; above 50 MHz through one more register
        # (a block RAM's unregistered output is slow on ECP5: 4.3 ns clock-to-out). ---
        out = self.data
        if self.output_register:
            beat_out = Signal.like(out.payload, name="beat_out")
            beat_valid, beat_ready = Signal(name="beat_valid"), Signal(name="beat_ready")
            m.d.comb += beat_ready.eq(~out.valid | out.ready)
            with m.If(beat_ready):
                m.d.sync += [out.valid.eq(beat_valid), out.payload.eq(beat_out)]
        else:
            beat_out, beat_valid, beat_ready = out.payload, out.valid, out.ready
        record = order_layout(order.r_data)
        beat = Signal.like(record.len)
        burst_end = beat == record.len
        advance = ~beat_valid | beat_ready  # the read port's register takes the next beat
        staged = advance & order.r_rdy & (record.skip | (r_ptr != w_ptr))
        popped = staged & ~record.skip
        row_last, last = Signal(), Signal()
        made_up = Signal()  # the beat was not read (its burst was skipped)
        failed = Signal()   # an earlier beat of this command was flagged: flag the rest of it
        m.d.comb += [
            r_port.addr.eq(r_ptr[:-1]),
            r_port.en.eq(popped),
            order.r_en.eq(staged & burst_end),
            beat_out.data.eq(r_port.data[:cfg.bus_data_width]),
            beat_out.row_last.eq(row_last),
            beat_out.last.eq(last),
            beat_out.error.eq(made_up | r_port.data[width - 1] | failed),
        ]
        with m.If(advance):
            m.d.sync += [beat_valid.eq(staged), row_last.eq(burst_end & record.row_last),
                         last.eq(burst_end & record.last), made_up.eq(record.skip)]
        with m.If(staged):
            m.d.sync += beat.eq(Mux(burst_end, 0, beat + 1))
        with m.If(popped):
            m.d.sync += r_ptr.eq(r_ptr + 1)
        with m.If(beat_valid & beat_ready):
            m.d.sync += failed.eq((failed | beat_out.error) & ~last)
        if cfg.fast_clock:
            credits_next = credits - Mux(issue, beats, 0) + popped
        else:  # -(len + 1) is ~len in the counter's width: no incrementer
            spent = Signal.like(credits, attrs={"keep": 1})  # two adders, not a $macc
            len_bits = burst_len_bits(self.max_burst)  # the splitter's len has no more
            minus = Cat(~burst.len[:len_bits], Const(-1, len(credits) - len_bits))
            m.d.comb += spent.eq(credits + Mux(issue, minus, 0))
            credits_next = spent + popped
        m.d.sync += [
            credits.eq(credits_next),
            status.done.eq(out.valid & out.ready & out.payload.last),
        ]
        m.d.comb += status.busy.eq(splitter.busy | ar_valid | order.r_rdy | beat_valid | out.valid)
        return m

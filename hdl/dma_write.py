"""DMA write engine: 2-D transfers from a stream of bus beats into memory over AXI4."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

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
    tracks_in_error_register,
)

__all__ = ["DMAWriter", "write_beat_layout"]


def write_beat_layout(config):
    """One beat of write data: ``data`` (``bus_data_width`` bits, all bytes written)."""
    return data.StructLayout({"data": config.bus_data_width})


def _w_layout(max_burst):
    """A burst's W beats: its length, and whether its AW was issued (else: dropped)."""
    return data.StructLayout({"len": burst_len_bits(max_burst), "skip": 1})


def _b_layout():
    """A burst awaiting its B response: end of command, and whether its AW was issued (else:
    retired once its beats were dropped). The addresses of the issued ones, for error
    reports, are kept apart (:func:`hdl.burst_splitter.oldest_issued_address`)."""
    return data.StructLayout({"last": 1, "skip": 1})


class DMAWriter(wiring.Component):
    """Writes 2-D transfers (:func:`hdl.burst_splitter.dma_command_layout`) over AXI4.

    Each command is split into INCR bursts (:class:`hdl.burst_splitter.BurstSplitter`: at
    most ``max_burst`` beats, never across 4 KiB or a row end; AWSIZE the full beat, AWBURST
    INCR, AWID ``axi_id`` for all bursts, WSTRB all ones, WLAST on each burst's last beat).
    The command's beats come from ``data`` in address order, row after row.

    Flow control: AW runs ahead of W (up to ``config.dma_outstanding`` bursts between AW and
    their B response), and W does not wait for the AW handshake (AXI forbids a manager to
    make WVALID wait for AWREADY). A burst counts as complete when its B response arrives;
    B responses are counted in order.

    Errors: an SLVERR or DECERR response latches the sticky error (cause, and the address of
    its burst). From then on no new AW is issued (a burst already on AW stays there until
    accepted, and gets its W beats); every B response still due is accepted. The command
    still consumes all its beats from ``data``: the beats of bursts not issued are accepted
    and dropped, so the producer never hangs. While the error is latched, later commands
    consume their beats the same way without writing; after ``status.error_clear`` new
    bursts are issued again. A refused command (see :class:`hdl.burst_splitter.DMAError`)
    consumes its beats without writing, except an ``EMPTY`` one, which consumes nothing and
    does not pulse ``done``. At 50 MHz and below with ``dma_outstanding`` 2
    (:func:`hdl.burst_splitter.latch_engine_error`) a command error is reported only while at
    most one burst awaits its B response: the refused burst that reports it waits for that,
    and an ``EMPTY`` command is accepted only with none awaiting.

    Timing:

    - Latency: AWVALID is high 2 cycles after the cycle the command was accepted in (the
      splitter's state, the AW register); the burst's W beats can go out from
      that cycle on.
    - Throughput: one beat per cycle while ``data`` and the memory keep up and the B latency
      is covered by the outstanding bursts; one AW per cycle.
    - Back-pressure: W is a combinational pass-through: WVALID follows ``data.valid`` and
      ``data.ready`` follows WREADY (no buffer in between); BREADY is high while a response
      is due.
    - ``status.done`` pulses one cycle after the B response of a command's last burst (or,
      for a command without issued bursts, after its last beat was dropped and all earlier
      bursts completed); ``status.busy`` is high from the command's acceptance until then.

    Parameters
    ----------
    config : TesseraConfig
        ``bus_data_width``, ``bus_addr_width``, ``bus_id_width``, ``dma_outstanding``.
    max_burst : int
        Longest burst in beats: a power of two, 1 to 256.
    axi_id : int
        AWID of every burst.
    wide_commands : bool
        16-bit ``rows`` and ``row_beats`` also at 50 MHz and below (see
        :func:`hdl.burst_splitter.command_field_widths`).

    Members
    -------
    cmd : In(stream.Signature(dma_command_layout(config, wide=wide_commands)))
    data : In(stream.Signature(write_beat_layout(config)))
    status : Out(dma_status_signature(config))
    axi : Out(dma_axi_signature(config, read=False))
        The write half of an AXI4 manager port.

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
            "data": In(stream.Signature(write_beat_layout(config))),
            "status": Out(dma_status_signature(config)),
            "axi": Out(dma_axi_signature(config, read=False)),
        })

    @property
    def outstanding(self):
        """Bursts between AW and their B response at most."""
        return self.config.dma_outstanding

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        axi = self.axi
        status = self.status

        m.submodules.splitter = splitter = BurstSplitter(cfg, max_burst=self.max_burst,
                                                         wide_commands=self.wide_commands)
        burst = splitter.bursts.payload

        w_layout, b_layout = _w_layout(self.max_burst), _b_layout()
        m.submodules.w_queue = w_queue = small_fifo(cfg, width=w_layout.size,
                                                    depth=self.outstanding)
        m.submodules.b_queue = b_queue = small_fifo(cfg, width=b_layout.size,
                                                    depth=self.outstanding)

        # --- AW: one burst per cycle into the AW register, unless it is skipped. Its W and B
        # records are queued at the same time. ---
        aw_valid = Signal()
        skip = burst.refused | status.error
        aw_free = ~aw_valid | axi.awready
        issue = Signal()
        responded = Signal()
        # The sticky error; a bus error reports the oldest burst awaiting B (every issued
        # burst has a B queue entry, so there is room for its address).
        in_flight_room, idle = latch_engine_error(
            m, cfg, status, self.outstanding, newest=axi.awaddr, issue=issue, retire=responded,
            resp_valid=responded, resp=axi.bresp, command_error=splitter.error)
        connect_commands(m, cfg, self.outstanding, self.cmd, splitter, idle)
        if not tracks_in_error_register(cfg, self.outstanding):
            in_flight_room = 1  # the B queue has room for every burst in flight
        room = w_queue.w_rdy & b_queue.w_rdy & may_leave(cfg, self.outstanding, burst, skip,
                                                         in_flight_room, aw_free)
        take = splitter.bursts.valid & room
        w_in, b_in = Signal(w_layout), Signal(b_layout)
        m.d.comb += [
            splitter.bursts.ready.eq(room),
            w_in.len.eq(burst.len),
            w_in.skip.eq(skip),
            b_in.last.eq(burst.last),
            b_in.skip.eq(skip),
            w_queue.w_en.eq(take),
            w_queue.w_data.eq(w_in),
            b_queue.w_en.eq(take),
            b_queue.w_data.eq(b_in),
        ]
        with m.If(axi.awready):
            m.d.sync += aw_valid.eq(0)
        m.d.comb += issue.eq(take & ~skip)
        with m.If(issue):
            m.d.sync += [aw_valid.eq(1), axi.awaddr.eq(burst.addr), axi.awlen.eq(burst.len)]
        m.d.comb += [
            axi.awvalid.eq(aw_valid),
            *incr_burst_fields(axi, "aw", axi_id=self.axi_id),
        ]

        # --- W: the input beats of the head burst, passed through or dropped. ---
        head = w_layout(w_queue.r_data)
        beat = Signal.like(head.len)
        w_end = beat == head.len
        m.d.comb += [
            axi.wvalid.eq(w_queue.r_rdy & ~head.skip & self.data.valid),
            axi.wdata.eq(self.data.payload.data),
            axi.wstrb.eq(-1),
            axi.wlast.eq(w_end),
            self.data.ready.eq(w_queue.r_rdy & (head.skip | axi.wready)),
        ]
        moved = self.data.valid & self.data.ready
        m.d.comb += w_queue.r_en.eq(moved & w_end)
        with m.If(moved):
            m.d.sync += beat.eq(Mux(w_end, 0, beat + 1))
        dropped_burst = moved & w_end & head.skip

        # --- B: responses in order; skipped bursts retire once their beats were dropped. ---
        pending = b_layout(b_queue.r_data)
        dropped = Signal(range(self.outstanding + 1))  # skipped bursts dropped, not retired
        m.d.comb += axi.bready.eq(b_queue.r_rdy & ~pending.skip)
        m.d.comb += responded.eq(axi.bvalid & axi.bready)
        retire_skipped = b_queue.r_rdy & pending.skip & (dropped != 0)
        retire = responded | retire_skipped
        m.d.comb += b_queue.r_en.eq(retire)
        m.d.sync += dropped.eq(dropped + dropped_burst - retire_skipped)

        m.d.sync += status.done.eq(retire & pending.last)
        m.d.comb += status.busy.eq(splitter.busy | aw_valid | b_queue.r_rdy)
        return m

"""DMA write engine: 2-D transfers from a stream of bus beats into memory over AXI4."""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi4 import MAX_BURST_BEATS, incr_burst_fields
from .burst_splitter import (
    BurstSplitter,
    burst_len_bits,
    check_engine_parameters,
    dma_axi_signature,
    dma_command_layout,
    dma_status_signature,
    latch_first_error,
    oldest_issued_address,
    response_error,
)

__all__ = ["DMAWriter", "write_beat_layout"]


def write_beat_layout(config):
    """One beat of write data: ``data`` (``bus_data_width`` bits, all bytes written)."""
    return data.StructLayout({"data": config.bus_data_width})


def _record_layout(max_burst):
    """A burst on its way through W and B: its length, whether it ends the command, and
    whether its AW was issued (else: its beats are dropped, and it retires without a B
    response). The addresses of the issued ones, for error reports, are kept apart
    (:func:`hdl.burst_splitter.oldest_issued_address`)."""
    return data.StructLayout({"len": burst_len_bits(max_burst), "last": 1, "skip": 1})


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
    does not pulse ``done``.

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

    Members
    -------
    cmd : In(stream.Signature(dma_command_layout(config)))
    data : In(stream.Signature(write_beat_layout(config)))
    status : Out(dma_status_signature(config))
    axi : Out(dma_axi_signature(config, read=False))
        The write half of an AXI4 manager port.

    Raises
    ------
    TypeError, ValueError
        ``max_burst`` is not a power of two from 1 to 256, or ``axi_id`` does not fit.
    """

    def __init__(self, config, *, max_burst=MAX_BURST_BEATS, axi_id=0):
        check_engine_parameters(self, config, max_burst=max_burst, axi_id=axi_id)
        self.config = config
        self.max_burst = max_burst
        self.axi_id = axi_id
        super().__init__({
            "cmd": In(stream.Signature(dma_command_layout(config))),
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

        m.submodules.splitter = splitter = BurstSplitter(cfg, max_burst=self.max_burst)
        wiring.connect(m, wiring.flipped(self.cmd), splitter.cmd)
        burst = splitter.bursts.payload

        # One record per burst, issued or not, in order; the W side reads them first (the
        # beats of a burst go out, or are dropped, before its B response), the B side retires
        # them. ``w_left`` records have W beats still to move, ``b_left`` are not retired.
        depth = self.outstanding
        record_layout = _record_layout(self.max_burst)
        records = Array(Signal(record_layout, name=f"record_{i}") for i in range(depth))
        put, w_at, b_at = (Signal(range(depth), name=n) for n in ("put", "w_at", "b_at"))
        w_left, b_left = Signal(range(depth + 1)), Signal(range(depth + 1))

        def advance(index):
            return Mux(index == depth - 1, 0, index + 1) if depth & (depth - 1) else index + 1

        # --- AW: one burst per cycle into the AW register, unless it is skipped. Its record
        # is queued at the same time. ---
        aw_valid = Signal()
        skip = burst.refused | status.error
        aw_free = ~aw_valid | axi.awready
        room = (b_left != depth) & (skip | aw_free)
        take = splitter.bursts.valid & room
        m.d.comb += splitter.bursts.ready.eq(room)
        with m.If(take):
            m.d.sync += [
                records[put].len.eq(burst.len),
                records[put].last.eq(burst.last),
                records[put].skip.eq(skip),
                put.eq(advance(put)),
            ]
        with m.If(axi.awready):
            m.d.sync += aw_valid.eq(0)
        issue = take & ~skip
        with m.If(issue):
            m.d.sync += [aw_valid.eq(1), axi.awaddr.eq(burst.addr), axi.awlen.eq(burst.len)]
        m.d.comb += [
            axi.awvalid.eq(aw_valid),
            *incr_burst_fields(axi, "aw", axi_id=self.axi_id),
        ]

        # --- W: the input beats of the oldest burst with beats left, passed or dropped. ---
        head = records[w_at]
        w_ready = w_left != 0
        beat = Signal.like(head.len)
        w_end = beat == head.len
        m.d.comb += [
            axi.wvalid.eq(w_ready & ~head.skip & self.data.valid),
            axi.wdata.eq(self.data.payload.data),
            axi.wstrb.eq(-1),
            axi.wlast.eq(w_end),
            self.data.ready.eq(w_ready & (head.skip | axi.wready)),
        ]
        moved = self.data.valid & self.data.ready
        w_done = moved & w_end
        with m.If(moved):
            m.d.sync += beat.eq(Mux(w_end, 0, beat + 1))
        with m.If(w_done):
            m.d.sync += w_at.eq(advance(w_at))
        m.d.sync += w_left.eq(w_left + take - w_done)

        # --- B: responses in order; skipped bursts retire once their beats were dropped. ---
        pending = records[b_at]
        b_ready = b_left != 0
        m.d.comb += axi.bready.eq(b_ready & ~pending.skip)
        responded = axi.bvalid & axi.bready
        retire = responded | (b_ready & pending.skip & (b_left != w_left))
        with m.If(retire):
            m.d.sync += b_at.eq(advance(b_at))
        m.d.sync += b_left.eq(b_left + take - retire)

        # Every issued burst has a record, so there is room for its address.
        b_addr, _ = oldest_issued_address(m, cfg, self.outstanding, newest=axi.awaddr,
                                          issue=issue, retire=responded)
        bus_error = response_error(m, cfg, responded, axi.bresp, b_addr)
        latch_first_error(m, status, [bus_error, splitter.error])

        m.d.sync += status.done.eq(retire & pending.last)
        m.d.comb += status.busy.eq(splitter.busy | aw_valid | b_ready)
        return m

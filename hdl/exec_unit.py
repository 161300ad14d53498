"""EXEC unit: scratchpad rows through the systolic array into the accumulator."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .accumulator import acc_write_layout
from .isa import ADDR_BITS, ErrorCause, Opcode, exec_layout, unit_signature
from .scratchpad import sp_read_layout
from .systolic import SystolicArray

__all__ = ["ExecUnit", "exec_tag_layout"]


def exec_tag_layout(config):
    """What an activation row's tag carries through the array: its accumulator row and
    whether the result is added to it."""
    return data.StructLayout({"acc_addr": range(config.acc_depth), "accumulate": 1})


class ExecUnit(wiring.Component):
    """Executes EXEC instructions (see :func:`hdl.isa.exec_layout`) on its own systolic array.

    An instruction is checked first (``rows`` not zero; weight, activation and accumulator
    rows inside their memories); a failing check latches its :class:`hdl.isa.ErrorCause`
    and the unit stops. Then the unit reads, through the scratchpad read port, the ``dim``
    weight rows (with ``preload``) and the ``rows`` activation rows, in that order; weight
    rows go to the array's shadow tile, activation rows (the first one with ``swap`` after a
    preload) into the array with a tag naming their accumulator row; each result row is
    written (or, with ``accumulate``, added) to that row.

    Timing:

    - One scratchpad read per cycle: an instruction occupies the read port for
      ``rows`` cycles, plus ``dim`` with ``preload`` (the weight rows of the next instruction
      are read right behind this one's activation rows and go to the shadow tile while this
      tile computes, so only the reads themselves cost cycles).
    - The next instruction is accepted while this one's rows are still in the array.
    - ``done`` pulses in the cycle after an instruction's last result row was written to
      the accumulator (about ``array.latency + 3`` cycles after its last read).
    - Back-pressure: none from the accumulator (its writes are always ready); the array's
      credit-based ``acts.ready`` holds the reads.

    Members
    -------
    ctl : Out(hdl.isa.unit_signature())
    sp_read : Out(stream.Signature(config.addr_width))
    sp_read_data : In(stream.Signature(sp_read_layout(config)))
    acc_write : Out(stream.Signature(acc_write_layout(config)))
    computing : Out(1)
        An activation row entered the array in this cycle (``dim * dim`` MACs).

    Raises
    ------
    ValueError
        The tag (``exec_tag_layout``) does not fit ``config.tag_width``.
    """

    #: Reads in flight between the scratchpad and the array; instructions in flight.
    route_depth, inflight_depth = 8, 4

    def __init__(self, config):
        if exec_tag_layout(config).size > config.tag_width:
            self._MustUse__silence = True
            raise ValueError(f"tag_width must be at least {exec_tag_layout(config).size} "
                             f"for acc_depth {config.acc_depth}, not {config.tag_width!r}")
        self.config = config
        super().__init__({
            "ctl": Out(unit_signature()),
            "sp_read": Out(stream.Signature(config.addr_width)),
            "sp_read_data": In(stream.Signature(sp_read_layout(config))),
            "acc_write": Out(stream.Signature(acc_write_layout(config))),
            "computing": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, dim = self.config, self.config.dim
        ctl = self.ctl
        m.submodules.array = array = SystolicArray(cfg)

        error = Signal(ErrorCause)
        m.d.comb += ctl.error.eq(error)

        # --- Issue: check an instruction, then one scratchpad read per cycle. ---
        incoming = exec_layout()(ctl.insn.payload)
        check = Signal(ErrorCause)
        with m.If((incoming.header.opcode != Opcode.EXEC) | (incoming.rows == 0)):
            m.d.comb += check.eq(ErrorCause.MALFORMED)
        with m.Elif((incoming.preload & (incoming.weight_addr + dim > cfg.sp_depth))
                    | (incoming.act_addr + incoming.rows > cfg.sp_depth)):
            m.d.comb += check.eq(ErrorCause.SP_RANGE)
        with m.Elif(incoming.acc_addr + incoming.rows > cfg.acc_depth):
            m.d.comb += check.eq(ErrorCause.ACC_RANGE)

        insn = Signal(exec_layout())
        issuing = Signal()
        in_weights = Signal()          # reading the weight rows (else activation rows)
        index = Signal(ADDR_BITS)      # weight row k or activation row r
        first_act = Signal()           # the next activation row is the first one

        route_layout = data.StructLayout({
            "weight": 1, "last": 1, "swap": 1, "tag": exec_tag_layout(cfg)})
        m.submodules.route = route = SyncFIFOBuffered(width=route_layout.size,
                                                      depth=self.route_depth)
        m.submodules.inflight = inflight = SyncFIFOBuffered(width=ADDR_BITS,
                                                            depth=self.inflight_depth)
        entry = Signal(route_layout)
        m.d.comb += [
            entry.weight.eq(in_weights),
            entry.last.eq(index == dim - 1),
            entry.swap.eq(~in_weights & first_act),
            entry.tag.acc_addr.eq(insn.acc_addr + index),
            entry.tag.accumulate.eq(insn.accumulate),
            self.sp_read.valid.eq(issuing & route.w_rdy),
            self.sp_read.payload.eq(Cat(insn.weight_addr, insn.act_addr).word_select(
                ~in_weights, ADDR_BITS) + index),
            route.w_en.eq(self.sp_read.valid & self.sp_read.ready),
            route.w_data.eq(entry),
        ]
        with m.If(route.w_en):
            m.d.sync += index.eq(index + 1)
            with m.If(in_weights):
                with m.If(index == dim - 1):
                    m.d.sync += [in_weights.eq(0), index.eq(0)]
            with m.Else():
                m.d.sync += first_act.eq(0)
                with m.If(index == insn.rows - 1):
                    m.d.sync += issuing.eq(0)

        # The next instruction is taken in the cycle of this one's last read: no bubble.
        last_read = route.w_en & ~in_weights & (index == insn.rows - 1)
        stopped = error != ErrorCause.NONE
        m.d.comb += ctl.insn.ready.eq((~issuing | last_read) & inflight.w_rdy & ~stopped)
        with m.If(ctl.insn.valid & ctl.insn.ready):
            with m.If(check == ErrorCause.NONE):
                m.d.sync += [insn.eq(ctl.insn.payload), issuing.eq(1), index.eq(0),
                             in_weights.eq(incoming.preload),
                             first_act.eq(incoming.preload)]
            with m.Else():
                m.d.sync += error.eq(check)
        m.d.comb += [
            inflight.w_en.eq(ctl.insn.valid & ctl.insn.ready & (check == ErrorCause.NONE)),
            inflight.w_data.eq(incoming.rows),
        ]

        # --- Route: each answer to the weight or the activation input of the array. ---
        head = route_layout(route.r_data)
        answer = self.sp_read_data.payload.row.as_value()
        to_weights = route.r_rdy & head.weight
        m.d.comb += [
            array.weights.valid.eq(self.sp_read_data.valid & to_weights),
            array.weights.payload.row.as_value().eq(answer),
            array.weights.payload.last.eq(head.last),
            array.acts.valid.eq(self.sp_read_data.valid & route.r_rdy & ~head.weight),
            array.acts.payload.row.as_value().eq(answer),
            array.acts.payload.swap.eq(head.swap),
            array.acts.payload.tag.eq(head.tag),
            self.sp_read_data.ready.eq(route.r_rdy & Mux(head.weight, array.weights.ready,
                                                         array.acts.ready)),
            route.r_en.eq(self.sp_read_data.valid & self.sp_read_data.ready),
            self.computing.eq(array.acts.valid & array.acts.ready),
        ]

        # --- Results into the accumulator; an instruction is done with its last row. ---
        result_tag = exec_tag_layout(cfg)(array.results.payload.tag[:exec_tag_layout(cfg).size])
        m.d.comb += [
            self.acc_write.valid.eq(array.results.valid),
            self.acc_write.payload.addr.eq(result_tag.acc_addr),
            self.acc_write.payload.row.eq(array.results.payload.row),
            self.acc_write.payload.accumulate.eq(result_tag.accumulate),
            array.results.ready.eq(self.acc_write.ready),
        ]
        written = Signal(ADDR_BITS)
        wrote = self.acc_write.valid & self.acc_write.ready
        finished = wrote & inflight.r_rdy & (written == inflight.r_data - 1)
        m.d.sync += ctl.done.eq(finished)
        m.d.comb += inflight.r_en.eq(finished)
        with m.If(wrote):
            m.d.sync += written.eq(Mux(finished, 0, written + 1))

        m.d.comb += ctl.busy.eq(issuing | inflight.r_rdy)
        return m

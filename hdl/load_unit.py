"""LOAD unit: rows from system memory into the scratchpad, through the DMA read engine."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .burst_splitter import ShiftQueue, dma_command_layout
from .dma_read import read_beat_layout
from .isa import (
    ErrorCause,
    Opcode,
    check_dma_addresses,
    load_layout,
    row_bytes,
    unit_signature,
)
from .scratchpad import rows_beyond, sp_write_layout
from .skid_buffer import SkidBuffer

__all__ = ["LoadUnit"]


class LoadUnit(wiring.Component):
    """Executes LOAD instructions (see :func:`hdl.isa.load_layout`).

    An instruction is checked (``rows`` not zero, scratchpad rows inside ``sp_depth``,
    ``dram_addr`` and ``dram_stride`` multiples of the bus beat) before anything happens;
    a failing check latches its :class:`hdl.isa.ErrorCause` and the unit stops. Otherwise it
    becomes one DMA read command of ``rows`` rows of :func:`hdl.isa.row_bytes` bytes, and
    each row's first ``dim`` bytes are written to scratchpad row ``sp_addr + r``.

    Timing:

    - Two stages: the command stage checks an instruction and issues its DMA command in the
      next cycle; the write stage takes the returning beats. Up to :attr:`depth`
      instructions are between the two, so the next LOAD's command goes out while this one's
      data still arrives (the DMA's own latency is hidden). With :attr:`holds_instruction`
      (``config.fast_clock``) the command stage checks an instruction
      as it takes it into a register; otherwise it checks the instruction while it is
      offered and takes it (``ctl.insn.ready``) with its command: ``ctl.insn`` must then
      keep it valid and stable until taken, as a stream does.
    - Throughput: one beat per cycle; a row per cycle when a row is one beat.
    - Slow clocks: an instruction's last row is the one whose beat has ``last`` (the DMA
      delivers every beat of a command, flagged or not): only ``sp_addr`` waits between the
      stages, and the head's counts up in place as the rows are written (the row's address).
    - ``done`` pulses in the cycle after an instruction's last row was accepted by the
      scratchpad.
    - Back-pressure on ``sp_write`` holds ``dma_data.ready`` low (the DMA buffers). Slow
      clocks: the beats pass a skid buffer (:class:`hdl.skid_buffer.SkidBuffer`, a cycle;
      ``sp_write`` comes a cycle after its beat, from the buffer's registers: no path from
      the DMA's beats into the scratchpad's readers, and ``dma_data.ready`` is a register:
      none from the scratchpad's write ``ready`` into the read arbiter and the DMA engine).
    - A beat flagged ``error`` latches ``DMA_READ``. After any error nothing more is written
      and no ``done`` pulses: the beats of commands already issued are consumed and dropped,
      a checked instruction whose command is not out yet is dropped, and no instruction is
      accepted.

    Members
    -------
    ctl : Out(hdl.isa.unit_signature())
    dma_cmd : Out(stream.Signature(dma_command_layout(config)))
    dma_data : In(stream.Signature(read_beat_layout(config)))
    sp_write : Out(stream.Signature(sp_write_layout(config)))
    """

    #: Instructions between the command stage and the write stage.
    depth = 2
    def __init__(self, config):
        try:
            check_dma_addresses(config)
        except ValueError:
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise
        self.config = config
        # Fast clocks: the command stage copies an instruction into a register (a shorter
        # path from the dispatcher to the DMA); slower, it issues the command from the
        # dispatcher's queue stage (about a hundred flip-flops fewer).
        self.holds_instruction = config.fast_clock
        super().__init__({
            "ctl": Out(unit_signature()),
            "dma_cmd": Out(stream.Signature(dma_command_layout(config))),
            "dma_data": In(stream.Signature(read_beat_layout(config))),
            "sp_write": Out(stream.Signature(sp_write_layout(config))),
        })

    @property
    def max_outstanding(self):
        """Instructions taken and not done, at most: :attr:`depth`, one held with
        :attr:`holds_instruction`, one whose ``done`` is on its way."""
        return self.depth + self.holds_instruction + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        beat_bytes = cfg.bus_data_width // 8
        row_beats = row_bytes(cfg) // beat_bytes
        ctl = self.ctl

        error = Signal(ErrorCause)
        m.d.comb += ctl.error.eq(error)

        # --- Command stage: check the offered instruction, issue its DMA command, hand the
        # rows to the write stage. Past the checks, sp_addr < sp_depth and rows <= sp_depth:
        # the write stage keeps only those bits.
        sp_bits, rows_bits = (cfg.sp_depth - 1).bit_length(), cfg.sp_depth.bit_length()
        # Slow clocks: an instruction ends with its command's ``last`` beat (the DMA delivers
        # every beat of a command, also after an error), so only ``sp_addr`` is queued.
        ends_on_last = not cfg.fast_clock
        pending_fields = {"sp_addr": sp_bits}
        if not ends_on_last:
            pending_fields["rows"] = rows_bits
        pending_layout = data.StructLayout(pending_fields)
        # Slow clocks: a shift queue (no output register; the same capacity and timing).
        # Its head's sp_addr counts the rows written up in place (no row counter, no adder).
        if ends_on_last:
            pending = ShiftQueue(width=pending_layout.size, depth=self.depth, counting=True)
        else:
            pending = SyncFIFOBuffered(width=pending_layout.size, depth=self.depth)
        m.submodules.pending = pending
        align_mask = beat_bytes - 1
        incoming = load_layout()(ctl.insn.payload)
        check = Signal(ErrorCause)
        with m.If((incoming.header.opcode != Opcode.LOAD) | (incoming.rows == 0)):
            m.d.comb += check.eq(ErrorCause.MALFORMED)
        # Slow clocks: a range check with an adder as wide as the scratchpad needs.
        with m.Elif(rows_beyond(incoming.sp_addr, incoming.rows, cfg.sp_depth,
                                narrow=not cfg.fast_clock)[0]):
            m.d.comb += check.eq(ErrorCause.SP_RANGE)
        with m.Elif(((incoming.dram_addr | incoming.dram_stride) & align_mask) != 0):
            m.d.comb += check.eq(ErrorCause.DMA_ALIGN)

        cmd = self.dma_cmd
        row_waits = Signal()  # slow clocks: a beat waits in the skid buffer
        if self.holds_instruction:
            source = Signal(load_layout())
            held = Signal()  # `source` holds a checked instruction whose command is not out
            m.d.comb += ctl.insn.ready.eq(~held & (error == ErrorCause.NONE))
            with m.If(ctl.insn.valid & ctl.insn.ready & (check == ErrorCause.NONE)):
                m.d.sync += [source.eq(ctl.insn.payload), held.eq(1)]
            # After an error (of an earlier instruction's data) a held command is dropped.
            with m.If((error != ErrorCause.NONE) | pending.w_en):
                m.d.sync += held.eq(0)
            m.d.comb += [cmd.valid.eq(held & pending.w_rdy & (error == ErrorCause.NONE)),
                         ctl.busy.eq(held | (pending.level != 0))]
        else:
            source = incoming
            checked = Signal()  # the instruction offered in the last cycle passed its checks
            m.d.comb += [
                cmd.valid.eq(ctl.insn.valid & checked & pending.w_rdy
                             & (error == ErrorCause.NONE)),
                ctl.insn.ready.eq(cmd.valid & cmd.ready),
                ctl.busy.eq((pending.level != 0) | row_waits),
            ]
            m.d.sync += checked.eq(ctl.insn.valid & (check == ErrorCause.NONE)
                                   & ~ctl.insn.ready)
        # A failing check latches its cause (the registered stage takes the instruction).
        examined = ctl.insn.ready if self.holds_instruction else error == ErrorCause.NONE
        with m.If(ctl.insn.valid & examined & (check != ErrorCause.NONE)):
            m.d.sync += error.eq(check)
        m.d.comb += [
            cmd.payload.addr.eq(source.dram_addr),
            cmd.payload.row_beats.eq(row_beats),
            cmd.payload.rows.eq(source.rows),  # <= sp_depth: fits the (narrow) field
            cmd.payload.stride.eq(source.dram_stride),
            pending.w_en.eq(cmd.valid & cmd.ready),
            pending.w_data.eq(Cat(source.sp_addr[:sp_bits],
                                  *([] if ends_on_last else [source.rows[:rows_bits]]))),
        ]

        # --- Write stage: assemble rows from beats, write them, count them.
        current = pending_layout(pending.r_data)
        row_index = Signal(0 if ends_on_last else rows_bits)  # < rows <= sp_depth
        beat_index = Signal(range(max(row_beats, 2)))
        failed = Signal()  # the current instruction saw an error beat
        row_bits = cfg.dim * cfg.act_width
        collected = Signal((row_beats - 1) * cfg.bus_data_width)  # earlier beats of the row
        # Slow clocks: the beats pass a skid buffer (``dma_data.ready`` from a register), so
        # that no path runs from the scratchpad's write ``ready`` through this unit into the
        # read arbiter and the DMA engine's buffer pointers and credits.
        # It holds the fields this unit uses: of a row's only beat, the row's bits.
        beats = self.dma_data
        beat = beats.payload
        if not cfg.fast_clock:
            data_bits = row_bits if row_beats == 1 else cfg.bus_data_width
            m.submodules.beat_skid = skid = SkidBuffer(data.StructLayout({
                "data": data_bits, "last": 1, "error": 1}))
            m.d.comb += [skid.i.valid.eq(beats.valid), beats.ready.eq(skid.i.ready),
                         skid.i.payload.data.eq(beat.data[:data_bits]),
                         skid.i.payload.last.eq(beat.last),
                         skid.i.payload.error.eq(beat.error),
                         row_waits.eq(skid.o.valid)]
            beats = skid.o
            beat = beats.payload
        row_value = Cat(collected, beat.data)[:row_bits]
        row_complete = beat_index == row_beats - 1
        writes = (pending.r_rdy & row_complete & ~failed & ~beat.error
                  & (error == ErrorCause.NONE))

        row_addr = current.sp_addr if ends_on_last else current.sp_addr + row_index
        last_row = beat.last if ends_on_last else row_index == current.rows - 1
        m.d.comb += [
            self.sp_write.valid.eq(beats.valid & writes),
            self.sp_write.payload.addr.eq(row_addr),
            self.sp_write.payload.row.as_value().eq(row_value),
            beats.ready.eq(pending.r_rdy & (~writes | self.sp_write.ready)),
        ]
        taken = beats.valid & beats.ready
        next_row = row_index + 1
        m.d.sync += ctl.done.eq(0)
        with m.If(taken):
            if row_beats > 1:
                with m.If(~row_complete):
                    m.d.sync += collected.word_select(beat_index, cfg.bus_data_width).eq(
                        beat.data)
            with m.If(beat.error & ~failed):
                m.d.sync += failed.eq(1)
                with m.If(error == ErrorCause.NONE):
                    m.d.sync += error.eq(ErrorCause.DMA_READ)
            with m.If(row_complete):
                m.d.sync += [beat_index.eq(0), row_index.eq(next_row)]
                with m.If(last_row):
                    m.d.sync += [row_index.eq(0), failed.eq(0)]
                    m.d.sync += ctl.done.eq(~failed & ~beat.error
                                            & (error == ErrorCause.NONE))
            with m.Else():
                m.d.sync += beat_index.eq(beat_index + 1)
        m.d.comb += pending.r_en.eq(taken & row_complete & last_row)
        if ends_on_last:
            m.d.comb += pending.r_step.eq(taken & row_complete & ~last_row)

        return m

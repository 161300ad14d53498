"""STORE unit: accumulator rows through the post-processing to memory; CONFIG parameters."""

from contextlib import nullcontext

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from sim.model import INT8_MAX, INT8_MIN, SHIFT_MAX, SHIFT_MIN

from .accumulator import Accumulator, acc_read_layout
from .burst_splitter import dma_command_layout, dma_status_signature, small_fifo
from .dma_read import read_beat_layout
from .dma_write import write_beat_layout
from .isa import (
    INSN_WIDTH,
    ErrorCause,
    Opcode,
    acc_row_bytes,
    check_dma_addresses,
    config_layout,
    header_layout,
    param_block_bytes,
    row_bytes,
    store_layout,
    unit_signature,
)
from .pingpong_buffer import PingPongBuffer
from .postproc import PostMode, PostProcess, out_row_layout, params_by_word
from .scratchpad import sp_write_layout
from .skid_buffer import SkidBuffer

__all__ = ["StoreUnit"]


class _Sink(enum.Enum, shape=2):
    """Where the output rows of an instruction go (CONFIG: none; it only retires in order)."""
    SP = 0
    DRAM = 1
    CONFIG = 2


def _feed_layout(config):
    """An instruction's rows on their way from the accumulator into the post-processing
    (``rows <= acc_depth`` is checked before any row goes; slow clocks: no ``last_row``, the
    reader marks its last read)."""
    fields = {"mode": PostMode, "swap": 1, "dummy": 1}
    if config.fast_clock:
        fields = {"last_row": range(config.acc_depth), **fields}
    return data.StructLayout(fields)


def _tags_last(config):
    """The post-processing tag marks an instruction's last row (slow clocks, a tag of 2 or
    more bits): the output side needs no row count of its own to find it."""
    return not config.fast_clock and config.tag_width > _LAST_TAG_BIT


def _sink_layout(config):
    """An instruction's rows on their way out of the post-processing (``dest``: a scratchpad
    row; a DMA write has its address in its command; ``last_row`` only where the tag does not
    mark the last row)."""
    fields = {"dest": range(config.sp_depth), "kind": _Sink}
    if not _tags_last(config):
        fields = {"last_row": range(config.acc_depth), **fields}
    return data.StructLayout(fields)


#: Bit of the post-processing tag that marks a dummy row (a forced swap; its output is dropped).
_DUMMY_TAG_BIT = 0
#: Bit of the post-processing tag that marks the last row of a STORE (see :func:`_tags_last`).
_LAST_TAG_BIT = 1


def _sum_exceeds(a, b, limit, *, narrow):
    """``a + b > limit`` for unsigned ``a``, ``b``; ``narrow``: added only in as many bits as
    ``limit`` needs (a higher bit set in either exceeds it), not at full width."""
    if not narrow:
        return a + b > limit
    n = limit.bit_length()
    high = [v[n:].any() for v in (a, b) if len(v) > n]
    return Cat(a[:n] + b[:n] > limit, *high).any()


def _outside(value, low, high, *, narrow):
    """Signed ``value`` outside ``[low, high]``; ``narrow``: from its sign extension and
    compares only as wide as the bounds need, instead of two full-width compares."""
    if not narrow:
        return (value < low) | (value > high)
    n = max((-low - 1).bit_length(), high.bit_length()) + 1  # two's complement bits (low < 0)
    # Not a sign extension of its n low bits: two neighbouring bits above differ (XORs of
    # overlapping bit pairs: 3 bits a LUT4).
    terms = [Cat(value[i] ^ value[i + 1] for i in range(n - 1, len(value) - 1)).any()]
    short = value[:n].as_signed()
    if low > -(1 << (n - 1)):
        terms.append(short < low)
    if high < (1 << (n - 1)) - 1:
        terms.append(short > high)
    return Cat(terms).any()


class StoreUnit(wiring.Component):
    """The STORE unit: runs STORE and CONFIG instructions (:mod:`hdl.isa`) exactly as
    :class:`sim.functional.AcceleratorModel` does, with one :class:`hdl.postproc.PostProcess`.

    STORE reads accumulator rows ``acc_addr + r`` (``r < rows``), passes them through the
    post-processing in ``mode`` (the reserved mode 3 runs as ``ACC_BIAS``) and writes the
    output rows either into scratchpad rows ``dest + r`` (``to_sp``, int8 rows) or to system
    memory with one DMA write command (``addr = dest``, ``rows``, ``stride = dram_stride``,
    ``row_beats`` = :func:`hdl.isa.row_bytes` (int8 rows) or :func:`hdl.isa.acc_row_bytes`
    (int32 rows) divided by the beat size). Each row goes out as whole beats, lane 0 in the
    lowest byte (little endian), zero padded.

    CONFIG reads the parameter block (:func:`hdl.isa.param_block_bytes`, one DMA read command
    of one row) and writes it into the post-processing's shadow set as it arrives: one
    ``params`` beat per column (after a bus error, none), and column ``dim - 1`` once more,
    with ``last`` and the tile's zero point and activation bounds, only once the whole block
    arrived without a bus error and every value checked out (by word, tiny: every word of
    the block as it arrives, the last with ``last`` only if the block checked out; a block
    that fails leaves the set incomplete, and the unit stops). The first row of the next STORE
    carries ``swap``, so the new set becomes active exactly there. A CONFIG that finds a
    completed set still waiting for its swap (CONFIG, CONFIG without a STORE in between) first
    sends a dummy row with ``swap`` through the post-processing (its output is dropped): a
    set is only ever swapped in once complete, and the shadow set is free for the new block
    (slow clocks: one dummy row at a time; such a CONFIG waits until the previous one left).

    Checks, all before any effect, in the model's order: a ``pop_next``/``push_next`` flag or
    an opcode other than STORE/CONFIG is ``MALFORMED``; STORE: zero rows, ``to_sp`` with a
    mode other than ``REQUANT`` (``MALFORMED``), ``acc_addr + rows > acc_depth``
    (``ACC_RANGE``), then with ``to_sp`` ``dest + rows > sp_depth`` (``SP_RANGE``), else
    ``dest`` or ``dram_stride`` not a multiple of the beat size (``DMA_ALIGN``); CONFIG:
    ``dram_addr`` alignment (``DMA_ALIGN``), then after the read a flagged beat
    (``DMA_READ``), then a shift outside ``[SHIFT_MIN, SHIFT_MAX]``, a zero point or bound
    outside int8 or ``act_min > act_max`` (``MALFORMED``). A failed check is reported once
    every earlier instruction has retired (so the cause is that of the first failing
    instruction in program order, as in the model); ``dma_write_status.error`` is reported
    at once as ``DMA_WRITE`` (it can only concern an earlier STORE). After an error, no
    instruction is accepted and no ``done`` pulses; what was started drains (acc reads,
    post-processing, sp writes, every beat of an issued DMA write command, every beat of a
    CONFIG read), then ``busy`` drops. No address is cut: on a bus narrower than the ISA's 32
    bits, a command with an address or stride bit above it is refused by the DMA (``RANGE``:
    ``DMA_WRITE`` / ``DMA_READ``; see :func:`hdl.isa.check_dma_addresses`).

    Pipelining: one instruction waits in a decode register while the previous one issues its
    reads (slow clocks, ``not config.fast_clock``: no decode register; the instruction waits
    on ``ctl.insn``, is checked there (the causes registered) and taken in the cycle it
    issues, a STORE to memory once its DMA write command, whose fields come from
    ``ctl.insn``, was accepted: the
    payload must hold until taken, as the dispatcher's queue head does); the reads (one per
    cycle), the post-processing feed, the output (scratchpad writes or DMA beats) and the
    retirement (``done``) are decoupled by in-order queues of :attr:`queue_depth`
    instructions, so back-to-back STOREs flow without a gap and the next STORE's reads start
    while the previous one still drains. A CONFIG runs in the issue stage (the instructions
    after it wait until its last parameter beat was accepted; those before it keep
    draining), and its ``done`` comes in order after theirs. Slow clocks: no row counts
    against a STORE's ``rows`` after the reader (which stops at the end address of the
    range check): each unanswered accumulator read carries a mark of whether it is the
    STORE's last (a queue of one bit per read the accumulator's read buffer can hold, plus
    one), the feed passes it on in the post-processing tag (bit 1; bit 0 marks a dummy row)
    and the output side ends the STORE on it.

    Timing (``row_cycles`` = :attr:`row_cycles`, ``postproc_latency`` = that of
    :class:`hdl.postproc.PostProcess`):

    - Latency: a STORE accepted on ``ctl.insn`` in cycle 0 by an idle unit (slow clocks:
      taken, at the earliest in the cycle after it was first presented, its checks being
      registered; a STORE to memory is taken one cycle after it issued, with its DMA
      command, if that is accepted at once) issues its first
      accumulator read in cycle :attr:`issue_latency` (2; slow clocks 1); with the
      accumulator's 2-cycle answer, the first row starts in the post-processing in cycle 4
      (slow: 3) and its output is on ``sp_write`` in cycle :attr:`latency` =
      ``5 + postproc_latency`` (after :attr:`output_delay`, a ping-pong buffer; slow: 3 + ...),
      on ``dma_write_data`` :attr:`beat_delay` cycles later (beats leave through a
      register, at fast clocks that of a skid buffer, whose input ``ready`` does not wait
      on ``dma_write_data.ready``; slow clocks with the serial post-processing, tiny: in
      the same cycle, straight from its output beat register; an int32 row's beats then
      leave a lane group apart, each as it lands).
      ``done`` pulses in the cycle after the last scratchpad write was accepted, or in
      the cycle after ``dma_write_status.done`` of its command. CONFIG: its DMA read
      command is valid in cycle 2 (slow clocks: while the CONFIG waits on ``ctl.insn``,
      which is taken in the cycle after the command was accepted); ``done`` pulses 4
      cycles after its last parameter beat was accepted. (Each ``done`` also waits for
      those of the instructions before it.)
    - Throughput: one row per ``row_cycles`` cycles through the whole path, also across
      back-to-back STOREs, while the DMA (one beat per cycle) and the scratchpad keep up;
      rows of more beats than ``row_cycles`` (int32 rows on a narrow bus) go at one beat
      per cycle. An instruction enters at most every 2 cycles (``ctl.insn.ready`` is the
      emptiness of the decode register; slow clocks: one per cycle, ``ctl.insn.ready`` is
      high in the cycle it issues). A CONFIG holds the issue stage for about its
      DMA read latency plus its :func:`hdl.isa.param_block_bytes` / beat beats (and,
      after a STORE with a swap, at least ``PostProcess.param_hold`` cycles, by word
      ``PostProcess.tile_hold`` before the tile's words): a STORE before it with fewer rows
      than that leaves a gap in the output.
    - Back-pressure: ``sp_write.ready`` or ``dma_write_data.ready`` low holds the output row
      in the post-processing's buffer; its credit-based ``acc_rows.ready`` then stalls the
      accumulator's answers, whose own credit-based buffer stalls the reads. Nothing is lost
      or duplicated. ``dma_read_data.ready`` is low outside a CONFIG and while the previous
      parameter beat waits in its register (for ``params.ready``): a CONFIG takes at most one
      beat every 2 cycles. Slow clocks: no staging register; one beat a cycle while the
      parameter register is free (by word, tiny: while ``params.ready``).
    - Combinational paths between ports: ``sp_write`` is driven from the output ping-pong
      buffer (slow clocks: the post-processing's output buffer), and ``sp_write.ready``
      pops it; ``acc_read_data.ready`` depends on
      ``acc_read_data.valid`` (through ``PostProcess.acc_rows.ready``). ``ctl`` outputs,
      the DMA commands, ``dma_write_data`` and ``dma_read_data.ready`` come from registers
      (tiny: ``dma_write_data`` from the post-processing's output row register and the
      queue heads, and ``dma_write_data.ready`` takes that beat: ``out_next_beat``);
      at slow clocks ``ctl.insn.ready`` depends on ``ctl.insn`` (the checks) and the unit's
      state (for a STORE to memory: and ``dma_write_cmd.ready``), ``dma_read_data.ready``
      on ``PostProcess.params.ready``, and ``dma_read_cmd`` comes from ``ctl.insn``.

    Parameters
    ----------
    config : TesseraConfig
    multiplier : str or None
        Passed to :class:`hdl.postproc.PostProcess`.

    Members
    -------
    ctl : Out(unit_signature())
        Instructions in (STORE and CONFIG), ``done``/``busy``/``error`` out.
    acc_read : Out(stream.Signature(config.addr_width))
    acc_read_data : In(stream.Signature(acc_read_layout(config)))
        The accumulator's store read port (its ``error`` flag is ignored: addresses are
        range-checked before any read).
    sp_write : Out(stream.Signature(sp_write_layout(config)))
        Driven combinationally from the post-processing's output buffer (slow clocks: the
        payload whatever the output goes to; only ``valid`` depends on it).
    dma_read_cmd : Out(stream.Signature(dma_command_layout(config)))
    dma_read_data : In(stream.Signature(read_beat_layout(config)))
    dma_write_cmd : Out(stream.Signature(dma_command_layout(config)))
    dma_write_data : Out(stream.Signature(write_beat_layout(config)))
    dma_write_status : In(dma_status_signature(config))
        The write engine's status; only ``done`` and ``error`` are used, ``error_clear`` is
        driven 0 (the engine is the unit's own).
    """

    @property
    def queue_depth(self):
        """Instructions each in-order queue between the stages holds: 4. At slow clocks
        only as many as STOREs of ``dim`` rows have from issue to output at full rate, one
        more than fit in :attr:`latency` (tiny: 2; at most 4)."""
        if self.config.fast_clock:
            return 4
        store_cycles = self.config.dim * self.row_cycles
        return min(4, 1 + -(-self.latency // store_cycles))

    def __init__(self, config, *, multiplier=None):
        try:
            check_dma_addresses(config)
        except ValueError:
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise
        if params_by_word(config) and config.bus_data_width != 32:
            self._MustUse__silence = True
            raise ValueError(f"a post-processing that takes its parameters by word "
                             f"(postproc_multiply_cycles >= 4) needs a 32-bit beat: "
                             f"bus_data_width must be 32, not {config.bus_data_width}")
        self.config = config
        # An output row takes up to one cycle per DMA beat (int32 rows: acc_row_bytes).
        # Slow clocks with the serial multiply: the output row comes by beats.
        # (A beat must be one lane group of int32 results and hold an int8 row, as on tiny.)
        self._shift_beats = (not config.fast_clock and config.postproc_multiply_cycles > 1
                             and config.bus_data_width == 32 * config.postproc_lanes_per_cycle
                             and 8 * config.dim <= config.bus_data_width)
        self.postproc = PostProcess(config, multiplier=multiplier, output_cycles=max(
            1, acc_row_bytes(config) // (config.bus_data_width // 8)),
            out_beat_bits=config.bus_data_width if self._shift_beats else None)
        super().__init__({
            "ctl": Out(unit_signature()),
            "acc_read": Out(stream.Signature(config.addr_width)),
            "acc_read_data": In(stream.Signature(acc_read_layout(config))),
            "sp_write": Out(stream.Signature(sp_write_layout(config))),
            "dma_read_cmd": Out(stream.Signature(dma_command_layout(config))),
            "dma_read_data": In(stream.Signature(read_beat_layout(config))),
            "dma_write_cmd": Out(stream.Signature(dma_command_layout(config))),
            "dma_write_data": Out(stream.Signature(write_beat_layout(config))),
            "dma_write_status": In(dma_status_signature(config)),
        })

    @property
    def beat_bytes(self):
        return self.config.bus_data_width // 8

    @property
    def beat_delay(self):
        """Cycles from an output row ready to its first beat on ``dma_write_data``: 1 (the
        beat register), 0 at slow clocks with the serial post-processing (the beats come
        straight from its output register, one beat: see ``PostProcess.out_beat_bits``)."""
        return 0 if self._shift_beats else 1

    @property
    def latency(self):
        """Cycles from a STORE accepted on ``ctl.insn`` by an idle unit to its first row on
        ``sp_write`` (one more to ``dma_write_data``), with the config's accumulator answering
        in :meth:`hdl.accumulator.Accumulator.read_latency_for` cycles."""
        return (self.issue_latency + Accumulator.read_latency_for(self.config)
                + self.postproc.latency + self.output_delay)

    @property
    def output_delay(self):
        """Cycles an output row spends between the post-processing and the output: 1 at fast
        clocks (a :class:`hdl.pingpong_buffer.PingPongBuffer`), else 0."""
        return 1 if self.config.fast_clock else 0

    @property
    def issue_latency(self):
        """Cycles from a STORE accepted on ``ctl.insn`` by an idle unit to its first
        accumulator read: 2 through the decode register, 1 at slow clocks (none)."""
        return 2 if self.config.fast_clock else 1

    @property
    def row_cycles(self):
        """Cycles per row through the post-processing (its throughput)."""
        return self.postproc.row_cycles

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        dim = cfg.dim
        beat_bytes, beat_bits = self.beat_bytes, cfg.bus_data_width
        align_bits = (beat_bytes - 1).bit_length()
        int8_beats = row_bytes(cfg) // beat_bytes
        int32_beats = acc_row_bytes(cfg) // beat_bytes
        block_beats = param_block_bytes(cfg) // beat_bytes
        ctl = self.ctl
        failed = ctl.error != ErrorCause.NONE

        m.submodules.postproc = pp = self.postproc
        depth = self.queue_depth
        feed_layout, sink_layout = _feed_layout(cfg), _sink_layout(cfg)
        # Slow clocks: shift queues (no read multiplexer; the head's load multiplexer packs
        # with its flip-flop), the same timing as SyncFIFO. Fast clocks: the feed queue's head
        # is a register (its `swap` reaches the post-processing's parameter enables; an entry
        # is there long before the accumulator answers its first read).
        m.submodules.feed_queue = feed_queue = (
            small_fifo(cfg, width=feed_layout.size, depth=depth) if not cfg.fast_clock
            else SyncFIFOBuffered(width=feed_layout.size, depth=depth))
        m.submodules.sink_queue = sink_queue = small_fifo(cfg, width=sink_layout.size,
                                                          depth=depth)
        m.submodules.retire_queue = retire_queue = small_fifo(cfg, width=1, depth=depth)

        # --- Decode register: one instruction waits here; checks are computed from it. Slow
        # clocks: none; the instruction waits in the dispatcher's queue (whose head is
        # flip-flops) and is taken in the cycle it issues. ---
        slow = not cfg.fast_clock
        if slow:
            insn, insn_valid = ctl.insn.payload, ctl.insn.valid
        else:
            insn = Signal(INSN_WIDTH)
            insn_valid = Signal()
            with m.If(ctl.insn.valid & ctl.insn.ready):
                m.d.sync += [insn.eq(ctl.insn.payload), insn_valid.eq(1)]
        header = header_layout()(insn[:header_layout().size])
        store = store_layout()(insn)
        config_insn = config_layout()(insn)

        def misaligned(value):
            return value[:align_bits].any() if align_bits else Const(0)

        # The checks, on the instruction offered on ctl.insn (slow clocks: the one waiting
        # there; fast clocks: registered with it into the decode register, so that no carry
        # chain runs from the decode register into the issue stage).
        offered = header_layout()(ctl.insn.payload[:header_layout().size])
        offered_store, offered_config = (store_layout()(ctl.insn.payload),
                                         config_layout()(ctl.insn.payload))
        is_store = header.opcode == Opcode.STORE
        # Slow clocks: the range check's sum is also the reader's end address.
        if slow:
            n = cfg.acc_depth.bit_length()
            acc_end = Signal(n + 1)
            m.d.comb += acc_end.eq(store.acc_addr[:n] + store.rows[:n])
            acc_end_exceeds = Cat(acc_end > cfg.acc_depth, store.acc_addr[n:].any(),
                                  store.rows[n:].any()).any()
        else:
            acc_end_exceeds = _sum_exceeds(offered_store.acc_addr, offered_store.rows,
                                           cfg.acc_depth, narrow=False)
        is_config = header.opcode == Opcode.CONFIG
        offered_is_config = offered.opcode == Opcode.CONFIG
        offered_is_store = offered.opcode == Opcode.STORE
        store_cause = Signal(ErrorCause)
        with m.If(offered.pop_next | offered.push_next | ~(offered_is_store | offered_is_config)):
            m.d.comb += store_cause.eq(ErrorCause.MALFORMED)
        with m.Elif(offered_store.rows == 0):
            m.d.comb += store_cause.eq(ErrorCause.MALFORMED)
        with m.Elif(offered_store.to_sp & (offered_store.mode != PostMode.REQUANT)):
            m.d.comb += store_cause.eq(ErrorCause.MALFORMED)
        with m.Elif(acc_end_exceeds):
            m.d.comb += store_cause.eq(ErrorCause.ACC_RANGE)
        with m.Elif(offered_store.to_sp & _sum_exceeds(offered_store.dest, offered_store.rows,
                                                       cfg.sp_depth, narrow=slow)):
            m.d.comb += store_cause.eq(ErrorCause.SP_RANGE)
        with m.Elif(~offered_store.to_sp & (misaligned(offered_store.dest)
                                            | misaligned(offered_store.dram_stride))):
            m.d.comb += store_cause.eq(ErrorCause.DMA_ALIGN)
        config_cause = Signal(ErrorCause)
        with m.If(offered.pop_next | offered.push_next):
            m.d.comb += config_cause.eq(ErrorCause.MALFORMED)
        with m.Elif(misaligned(offered_config.dram_addr)):
            m.d.comb += config_cause.eq(ErrorCause.DMA_ALIGN)
        if not slow:
            decoded_store, decoded_config = Signal(ErrorCause), Signal(ErrorCause)
            with m.If(ctl.insn.valid & ctl.insn.ready):
                m.d.sync += [decoded_store.eq(store_cause), decoded_config.eq(config_cause)]
            store_cause, config_cause = decoded_store, decoded_config
        # The reserved mode 3 runs as ACC_BIAS (PostProcess treats it so; this keeps out_rows
        # mode a defined value).
        mode = Signal(PostMode)
        m.d.comb += mode.eq(Mux(store.mode == 3, PostMode.ACC_BIAS, store.mode))

        # --- Accumulator reads: one per cycle for the instruction being issued. ---
        rd_active = Signal()
        rd_addr = Signal(range(cfg.acc_depth))
        rd_fire = self.acc_read.valid & self.acc_read.ready
        rd_next = rd_addr + 1
        if slow:
            # The end address (acc_addr + rows, modulo the depth) instead of a row count.
            rd_end = Signal(range(cfg.acc_depth))
            rd_last = rd_next[:len(rd_end)] == rd_end
        else:
            rd_left = Signal(range(cfg.acc_depth + 1))
            rd_last = rd_left == 1
            with m.If(rd_fire):
                m.d.sync += rd_left.eq(rd_left - 1)
        m.d.comb += self.acc_read.payload.eq(rd_addr)
        if slow:
            # Whether each read not yet answered is the last of its STORE, for the feed: one
            # entry more than the accumulator's read buffer (its read_buffer_depth) has
            # reads unanswered, so that a full queue (no write, also while read) never
            # holds off a read the accumulator would take.
            answers = -(-(Accumulator.READ_LATENCY + 1) // self.row_cycles)
            m.submodules.read_marks = read_marks = small_fifo(cfg, width=1, depth=answers + 1)
            m.d.comb += [
                self.acc_read.valid.eq(rd_active & read_marks.w_rdy),
                read_marks.w_en.eq(rd_fire),
                read_marks.w_data.eq(rd_last),
                read_marks.r_en.eq(self.acc_read_data.valid & self.acc_read_data.ready),
            ]
        else:
            m.d.comb += self.acc_read.valid.eq(rd_active)
        with m.If(rd_fire):
            m.d.sync += rd_addr.eq(rd_next)
            with m.If(rd_last):
                m.d.sync += rd_active.eq(0)
        reader_free = ~rd_active | (rd_fire & rd_last)

        # --- DMA command registers. ---
        wcmd_valid, rcmd_valid = Signal(), Signal()
        # The write command's registers: addr, stride, rows (at most acc_depth), int8 or int32.
        wcmd = Signal(data.StructLayout({"addr": 32, "stride": 32, "rows": range(cfg.acc_depth + 1),
                                         "int32": 1}))
        rcmd = Signal(dma_command_layout(cfg))  # only addr is a register: one row, no stride
        if slow:
            # The fields come from the STORE itself: it stays on ctl.insn (the dispatcher's
            # queue head, which holds it until taken, also after an error drops its valid)
            # until its command was accepted.
            m.d.comb += [
                self.dma_write_cmd.payload.addr.eq(store.dest),
                self.dma_write_cmd.payload.stride.eq(store.dram_stride),
                self.dma_write_cmd.payload.rows.eq(store.rows),  # <= acc_depth: fits
                self.dma_write_cmd.payload.row_beats.eq(
                    Mux(mode != PostMode.REQUANT, int32_beats, int8_beats)),
            ]
        else:
            m.d.comb += [
                self.dma_write_cmd.payload.addr.eq(wcmd.addr),
                self.dma_write_cmd.payload.stride.eq(wcmd.stride),
                self.dma_write_cmd.payload.rows.eq(wcmd.rows),
                self.dma_write_cmd.payload.row_beats.eq(
                    Mux(wcmd.int32, int32_beats, int8_beats)),
            ]
        m.d.comb += [
            self.dma_write_cmd.valid.eq(wcmd_valid),
            self.dma_read_cmd.payload.addr.eq(config_insn.dram_addr if slow else rcmd.addr),
            self.dma_read_cmd.payload.rows.eq(1),
            self.dma_read_cmd.payload.row_beats.eq(block_beats),
            self.dma_read_cmd.payload.stride.eq(0),
            self.dma_write_status.error_clear.eq(0),
        ]
        with m.If(self.dma_write_cmd.ready):
            m.d.sync += wcmd_valid.eq(0)
        if slow:
            cmd_sent = Signal()  # the waiting CONFIG's read command was accepted
            m.d.sync += cmd_sent.eq(self.dma_read_cmd.valid & self.dma_read_cmd.ready)
        else:
            m.d.comb += self.dma_read_cmd.valid.eq(rcmd_valid)
            with m.If(self.dma_read_cmd.ready):
                m.d.sync += rcmd_valid.eq(0)

        # --- Parameter beats to the post-processing (CONFIG). ---
        # By word (tiny): each beat of the block is one, passed on as it is: no register.
        by_word = params_by_word(cfg)
        if by_word:
            param_valid = Const(0, 1)
            param_free = pp.params.ready
        else:
            param_valid = Signal()
            param = Signal.like(pp.params.payload)
            m.d.comb += [pp.params.valid.eq(param_valid), pp.params.payload.eq(param)]
            with m.If(pp.params.ready):
                m.d.sync += param_valid.eq(0)
            param_free = ~param_valid | pp.params.ready

        # Parsing the parameter block: records of 4 words (bias, multiplier, shift, 0 for each
        # column; then zero_point, act_min, act_max, 0), each one or more whole beats. Each
        # word goes straight into its field of the parameter register (a beat is only used
        # while that register is free) and is range-checked as it arrives; a column's record
        # end sends its beat. The last column's beat goes twice: once as the others, and again
        # with ``last`` and the tile's fields once the whole block checked out.
        words_per_beat = beat_bits // 32
        beats_per_record = 4 // words_per_beat
        beat_index = Signal(range(block_beats))
        record = beat_index // beats_per_record
        position = beat_index % beats_per_record  # which beat of its record
        in_tile = record >= dim
        bad_values = Signal()
        read_error = Signal()
        # Each parameter beat is registered before the checks: the DMA read buffer's block RAM
        # output then ends in a flip-flop instead of feeding the 32-bit range comparisons (the
        # critical path of small on ECP5). A beat takes 2 cycles; CONFIG is rare and short.
        # Slow clocks: no such register; the beat is used straight from ``dma_read_data``.
        if slow:
            beat, staged = self.dma_read_data.payload, self.dma_read_data.valid
        else:
            beat = Signal(read_beat_layout(cfg))
            staged = Signal()
        words = [beat.data[32 * j:32 * (j + 1)].as_signed() for j in range(words_per_beat)]
        if by_word:  # only the tile's act_min is kept, for the act_max word's check
            act_min = Signal(signed(8))
            tile_fields = [None, act_min, None]
        else:
            column_fields = [param.bias, param.multiplier, param.shift]
            tile_fields = [param.zero_point, param.act_min, param.act_max]

        def int8_bad(v):
            return _outside(v, INT8_MIN, INT8_MAX, narrow=slow)
        bad_terms = []
        for f in range(3):
            p, j = divmod(f, words_per_beat)
            column_bad = _outside(words[j], SHIFT_MIN, SHIFT_MAX, narrow=slow) if f == 2 else 0
            bad_terms.append((position == p) & Mux(in_tile, int8_bad(words[j]), column_bad))
        last_p = beats_per_record - 1
        if by_word:  # act_max's word is checked against act_min's as it arrives
            bad_terms.append(in_tile & (position == 2) & (act_min > words[0][:8].as_signed()))
            inverted = Const(0, 1)
        else:
            # The tile's bounds in the block's last beat: those of earlier beats are in `param`.
            bound = [words[f % words_per_beat][:8].as_signed() if f // words_per_beat == last_p
                     else tile_fields[f] for f in (1, 2)]
            inverted = bound[0] > bound[1]
        bad_now = Cat(bad_terms).any()  # a word of this beat is out of its range

        # --- The issue stage. ---
        # Slow clocks: a dummy row is queued or in the post-processing (at most one: a CONFIG
        # that needs one waits for the previous one to leave).
        dummy_out = Signal()
        pending_swap = Signal()  # a completed parameter set waits for its swap
        pending_cause = Signal(ErrorCause)
        take = Signal()
        feed_in = Signal(feed_layout)
        sink_in = Signal(sink_layout)
        m.d.comb += [feed_queue.w_data.eq(feed_in), sink_queue.w_data.eq(sink_in)]
        all_retired = (sink_queue.level == 0) & (retire_queue.level == 0)
        read_fire = staged & param_free  # the staged beat is checked and used
        if not slow:
            with m.If(self.dma_read_data.valid & self.dma_read_data.ready):
                m.d.sync += [beat.eq(self.dma_read_data.payload), staged.eq(1)]
            with m.Elif(read_fire):
                m.d.sync += staged.eq(0)

        # An instruction on ctl.insn still to be issued (slow clocks: not the DMA STORE that
        # waits there for its command to be accepted; and only from the cycle after it was
        # first offered: its checks' causes are registered, so that no path runs from its
        # fields through the checks into the queues and the dispatcher).
        if slow:
            seen = Signal()
            seen_store, seen_config = Signal(ErrorCause), Signal(ErrorCause)
            m.d.sync += [seen.eq(insn_valid & ~ctl.insn.ready),
                         seen_store.eq(store_cause), seen_config.eq(config_cause)]
            store_cause, config_cause = seen_store, seen_config
            waiting = insn_valid & seen & ~wcmd_valid
        else:
            waiting = insn_valid
        if slow:
            with m.If(wcmd_valid & self.dma_write_cmd.ready):
                m.d.comb += take.eq(1)
        with m.FSM(name="issue") as fsm:
            with m.State("IDLE"):
                with m.If(failed):
                    m.next = "STOP"
                with m.Elif(waiting & is_store):
                    with m.If(store_cause != ErrorCause.NONE):
                        m.d.comb += take.eq(1)
                        m.d.sync += pending_cause.eq(store_cause)
                        m.next = "ERROR"
                    with m.Elif(reader_free & feed_queue.w_rdy & sink_queue.w_rdy
                                & (store.to_sp | ~wcmd_valid)):
                        m.d.comb += [
                            # Slow clocks: a DMA STORE is taken with its command (below).
                            take.eq(store.to_sp if slow else 1),
                            *([] if slow else [feed_in.last_row.eq(store.rows - 1)]),
                            feed_in.mode.eq(mode),
                            feed_in.swap.eq(pending_swap),
                            feed_queue.w_en.eq(1),
                            *([] if _tags_last(cfg) else [sink_in.last_row.eq(store.rows - 1)]),
                            sink_in.dest.eq(store.dest),
                            sink_in.kind.eq(Mux(store.to_sp, _Sink.SP, _Sink.DRAM)),
                            sink_queue.w_en.eq(1),
                        ]
                        m.d.sync += [
                            pending_swap.eq(0),
                            rd_active.eq(1),
                            rd_addr.eq(store.acc_addr),
                            rd_end.eq(acc_end) if slow else rd_left.eq(store.rows),
                        ]
                        with m.If(~store.to_sp):
                            m.d.sync += wcmd_valid.eq(1)
                            if not slow:
                                m.d.sync += [
                                    wcmd.addr.eq(store.dest),
                                    wcmd.rows.eq(store.rows),
                                    wcmd.stride.eq(store.dram_stride),
                                    wcmd.int32.eq(mode != PostMode.REQUANT),
                                ]
                with m.Elif(waiting):  # CONFIG, or an opcode that is not this unit's
                    with m.If(~is_config | (config_cause != ErrorCause.NONE)):
                        m.d.comb += take.eq(1)
                        m.d.sync += pending_cause.eq(Mux(is_config, config_cause,
                                                         ErrorCause.MALFORMED))
                        m.next = "ERROR"
                    with m.Elif(~pending_swap | (feed_queue.w_rdy & ~dummy_out if slow
                                                 else feed_queue.w_rdy)):
                        # Slow clocks: the read command comes straight from the waiting
                        # CONFIG, which is taken in the cycle after the command was accepted
                        # (`cmd_sent`: not in that cycle, so that the reader's `ready` has
                        # no path into ctl.insn.ready).
                        if slow:
                            m.d.comb += self.dma_read_cmd.valid.eq(~cmd_sent)
                        with m.If(cmd_sent) if slow else nullcontext():
                            m.d.comb += [
                                take.eq(1),
                                *([] if slow else [feed_in.last_row.eq(0)]),
                                feed_in.mode.eq(PostMode.ACC),
                                feed_in.swap.eq(1),
                                feed_in.dummy.eq(1),
                                feed_queue.w_en.eq(pending_swap),
                            ]
                            m.d.sync += pending_swap.eq(0)
                            if not slow:
                                m.d.sync += [rcmd_valid.eq(1),
                                             rcmd.addr.eq(config_insn.dram_addr)]
                            m.d.sync += [beat_index.eq(0), bad_values.eq(0),
                                         read_error.eq(0)]
                            m.next = "CONFIG"

            with m.State("CONFIG"):
                m.d.comb += self.dma_read_data.ready.eq(param_free if slow else ~staged)
                error = read_error | beat.error
                if by_word:  # the set completes with the block's last word, if it checked
                    m.d.comb += [
                        pp.params.valid.eq(staged),
                        pp.params.payload.index.eq(beat_index),
                        pp.params.payload.value.eq(words[0]),
                        pp.params.payload.last.eq((beat_index == block_beats - 1) & ~failed
                                                  & ~(error | bad_values | bad_now)),
                    ]
                with m.If(read_fire):
                    m.d.sync += beat_index.eq(beat_index + 1)
                    m.d.sync += read_error.eq(error)
                    if by_word:
                        with m.If(in_tile & (position == 1)):
                            m.d.sync += act_min.eq(words[0][:8])
                    else:
                        for f in range(3):
                            p, j = divmod(f, words_per_beat)
                            with m.If(position == p):
                                with m.If(in_tile):
                                    m.d.sync += tile_fields[f].eq(words[j])
                                with m.Else():
                                    m.d.sync += column_fields[f].eq(words[j])
                    with m.If(bad_now):
                        m.d.sync += bad_values.eq(1)
                    if not by_word:
                        with m.If((position == last_p) & ~in_tile & ~error):
                            m.d.sync += [param_valid.eq(1), param.column.eq(record),
                                         param.last.eq(0)]
                    with m.If(beat_index == block_beats - 1):
                        with m.If(failed):
                            m.next = "STOP"
                        with m.Elif(error):
                            m.d.sync += pending_cause.eq(ErrorCause.DMA_READ)
                            m.next = "ERROR"
                        with m.Elif(bad_values | bad_now | inverted):
                            m.d.sync += pending_cause.eq(ErrorCause.MALFORMED)
                            m.next = "ERROR"
                        with m.Else():
                            if not by_word:
                                # The column is still dim - 1, its fields still that column's.
                                m.d.sync += [param_valid.eq(1), param.last.eq(1)]
                            m.next = "CONFIG_END"

            with m.State("CONFIG_END"):
                # Retires in order once the set is complete (its last beat accepted).
                with m.If(failed):
                    with m.If(~param_valid):
                        m.next = "STOP"
                with m.Elif(~param_valid & sink_queue.w_rdy):
                    m.d.comb += [sink_in.kind.eq(_Sink.CONFIG), sink_queue.w_en.eq(1)]
                    m.d.sync += pending_swap.eq(1)
                    m.next = "IDLE"

            with m.State("ERROR"):
                # The error is reported once every earlier instruction retired.
                with m.If(failed):
                    m.next = "STOP"
                with m.Elif(all_retired):
                    m.d.sync += ctl.error.eq(pending_cause)
                    m.next = "STOP"

            with m.State("STOP"):
                pass

        if slow:
            m.d.comb += ctl.insn.ready.eq(take)
        else:
            with m.If(take):
                m.d.sync += insn_valid.eq(0)
            with m.If(failed):
                m.d.sync += insn_valid.eq(0)
            stopping = fsm.ongoing("ERROR") | fsm.ongoing("STOP")
            m.d.comb += ctl.insn.ready.eq(~insn_valid & ~failed & ~stopping)

        # --- Feed: accumulator answers (or a dummy row) into the post-processing. ---
        feed = feed_layout(feed_queue.r_data)
        rows = pp.acc_rows
        if slow:  # the row answers the last read of its STORE, or is a dummy row
            last_read = read_marks.r_data[0]
            feed_last = feed.dummy | last_read
            feed_first = Signal(init=1)
            with m.If(rows.valid & rows.ready):
                m.d.sync += feed_first.eq(feed_last)
        else:
            feed_count = Signal(range(cfg.acc_depth))
            feed_last = feed_count == feed.last_row
            feed_first = feed_count == 0
        tags_last = _tags_last(cfg)
        m.d.comb += [
            rows.valid.eq(feed_queue.r_rdy & (feed.dummy | self.acc_read_data.valid)),
            rows.payload.row.eq(self.acc_read_data.payload.row),
            rows.payload.mode.eq(feed.mode),
            rows.payload.swap.eq(feed.swap & feed_first),
            # (Slow clocks: a dummy row's last bit is any, its output is dropped.)
            rows.payload.tag.eq(Cat(feed.dummy, last_read) if tags_last else feed.dummy),
            self.acc_read_data.ready.eq(feed_queue.r_rdy & ~feed.dummy & rows.ready),
        ]
        rows_fire = rows.valid & rows.ready
        if slow:
            with m.If(rows_fire & feed_last):
                m.d.comb += feed_queue.r_en.eq(1)
        else:
            with m.If(rows_fire):
                with m.If(feed_last):
                    m.d.sync += feed_count.eq(0)
                    m.d.comb += feed_queue.r_en.eq(1)
                with m.Else():
                    m.d.sync += feed_count.eq(feed_count + 1)

        # --- Sink: output rows to the scratchpad or as beats to the DMA. ---
        # Fast clocks: through a ping-pong buffer, so that the output control below (beat
        # count, sink count, the row's mode) starts from flip-flops, not from the
        # post-processing's slot multiplexer, and its `ready` (which waits on the sink's
        # state and the scratchpad's) neither reaches back into the post-processing nor
        # enables the row registers (a skid buffer's would: 776 flip-flops on large).
        if slow:
            out = pp.out_rows
        else:
            # (Only the dummy bit of the tag: the last-row bit is a slow-clock one.)
            fields = out_row_layout(cfg).members
            out_layout = data.StructLayout({"row": fields["row"], "mode": fields["mode"],
                                            "tag": _DUMMY_TAG_BIT + 1})
            m.submodules.out_buffer = out_buffer = PingPongBuffer(out_layout)
            m.d.comb += [
                out_buffer.i.valid.eq(pp.out_rows.valid),
                out_buffer.i.payload.row.eq(pp.out_rows.payload.row),
                out_buffer.i.payload.mode.eq(pp.out_rows.payload.mode),
                out_buffer.i.payload.tag.eq(pp.out_rows.payload.tag),
                pp.out_rows.ready.eq(out_buffer.i.ready),
            ]
            out = out_buffer.o
        head = sink_layout(sink_queue.r_data)
        sink_count = Signal(range(cfg.acc_depth))
        dummy_row = out.payload.tag[_DUMMY_TAG_BIT]
        row_valid = out.valid & ~dummy_row
        consumed = Signal()  # the head output row is used up this cycle

        beat_count = Signal(range(max(int8_beats, int32_beats)))
        requant = out.payload.mode == PostMode.REQUANT
        row_end = beat_count == Mux(requant, int8_beats - 1, int32_beats - 1)
        if self._shift_beats:  # a dummy row's beats are dropped one by one
            dummy_end = Signal()
            m.d.comb += [out.ready.eq(dummy_end | consumed),
                         pp.out_next_beat.eq(out.valid & dummy_row)]
            with m.If(out.valid & dummy_row):
                m.d.comb += dummy_end.eq(row_end)
                m.d.sync += beat_count.eq(Mux(row_end, 0, beat_count + 1))
        else:
            m.d.comb += out.ready.eq(dummy_row | consumed)
        direct = self._shift_beats  # beats straight from the output row (no register)
        beat_valid = Signal()  # a beat waits in the output register (or skid buffer)
        skid_beats = not direct and not slow
        if skid_beats:
            # Fast clocks: beats leave through a skid buffer instead of a register: its
            # input `ready` is a flip-flop, so the DMA writer's `ready` (the board memory's
            # arbitration) stops at the beat registers instead of reaching the output rows'.
            m.submodules.beat_skid = beat_skid = SkidBuffer(beat_bits)
            m.d.comb += [self.dma_write_data.valid.eq(beat_skid.o.valid),
                         self.dma_write_data.payload.data.eq(beat_skid.o.payload),
                         beat_skid.o.ready.eq(self.dma_write_data.ready)]
            beat_free = beat_skid.i.ready
            m.d.comb += beat_valid.eq(beat_skid.o.valid)
        elif not direct:
            beat_data = Signal(beat_bits)
            m.d.comb += [self.dma_write_data.valid.eq(beat_valid),
                         self.dma_write_data.payload.data.eq(beat_data)]
            with m.If(self.dma_write_data.ready):
                m.d.sync += beat_valid.eq(0)
            beat_free = ~beat_valid | self.dma_write_data.ready

        def beats_of(value, count):
            pad = count * beat_bits - len(value)
            padded = Cat(value, Const(0, pad)) if pad else value
            slices = [padded[b * beat_bits:(b + 1) * beat_bits] for b in range(count)]
            return slices[0] if count == 1 else Array(slices)[beat_count]
        int8_row, int32_row = out.payload.row.int8.as_value(), out.payload.row.int32.as_value()
        if self._shift_beats:
            # The row's next beat is in the low bits.
            beat_select = int32_row[:beat_bits]
            if len(int8_row) < beat_bits:  # an int8 row is one beat, zero padded
                beat_select = Mux(requant, Cat(int8_row, Const(0, beat_bits - len(int8_row))),
                                  beat_select)
        elif slow and len(int8_row) == int8_beats * beat_bits:
            # An int8 row fills its beats: they are the first ones of the int32 view (the
            # same bits of the union), and a REQUANT row's beat count stays below them.
            beat_select = beats_of(int32_row, int32_beats)
        else:
            beat_select = Mux(requant, beats_of(int8_row, int8_beats),
                              beats_of(int32_row, int32_beats))

        retire_push = Signal()
        retire_wait = Signal()
        m.d.comb += [retire_queue.w_en.eq(retire_push), retire_queue.w_data.eq(retire_wait)]
        row_done = Signal()  # an output row of the head instruction went out
        # Slow clocks with rows at least 2 cycles apart: the scratchpad address from a
        # register, loaded with head.dest + sink_count in every cycle, so that the write's
        # `ready` (LOAD shares the port, and its data `ready` follows) does not wait for the
        # add; a row waits while it is stale (the cycle after the count or the head changed).
        registered_addr = slow and pp.row_cycles >= 2
        if registered_addr:
            sp_addr = Signal.like(self.sp_write.payload.addr, name="sp_addr")
            addr_stale = Signal(init=1)
            m.d.sync += [sp_addr.eq(head.dest + sink_count),
                         addr_stale.eq(row_done | sink_queue.r_en | ~sink_queue.r_rdy)]
        sp_payload = [self.sp_write.payload.addr.eq(sp_addr if registered_addr
                                                     else head.dest + sink_count),
                      self.sp_write.payload.row.eq(out.payload.row.int8)]
        if slow:  # the payload is only used with valid: not gated by the head's kind
            m.d.comb += sp_payload
        if direct:
            m.d.comb += self.dma_write_data.payload.data.eq(beat_select)
        last_of_head = (out.payload.tag[_LAST_TAG_BIT] if tags_last
                        else sink_count == head.last_row)
        with m.If(sink_queue.r_rdy & retire_queue.w_rdy):
            with m.Switch(head.kind):
                with m.Case(_Sink.CONFIG):
                    m.d.comb += [sink_queue.r_en.eq(1), retire_push.eq(1)]
                with m.Case(_Sink.SP):
                    m.d.comb += self.sp_write.valid.eq(
                        row_valid & ~addr_stale if registered_addr else row_valid)
                    if not slow:
                        m.d.comb += sp_payload
                    with m.If(self.sp_write.valid & self.sp_write.ready):
                        m.d.comb += [consumed.eq(1), row_done.eq(1)]
                with m.Case(_Sink.DRAM):
                    if direct:
                        m.d.comb += self.dma_write_data.valid.eq(row_valid)
                        beat_go = row_valid & self.dma_write_data.ready
                    else:
                        beat_go = row_valid & beat_free
                    with m.If(beat_go):
                        if direct:
                            m.d.comb += pp.out_next_beat.eq(1)
                        elif skid_beats:
                            m.d.comb += [beat_skid.i.valid.eq(1),
                                         beat_skid.i.payload.eq(beat_select)]
                        else:
                            m.d.sync += [beat_valid.eq(1), beat_data.eq(beat_select)]
                        with m.If(row_end):
                            m.d.sync += beat_count.eq(0)
                            m.d.comb += [consumed.eq(1), row_done.eq(1),
                                         retire_wait.eq(1)]
                        with m.Else():
                            m.d.sync += beat_count.eq(beat_count + 1)
        with m.If(row_done):
            with m.If(last_of_head):
                m.d.sync += sink_count.eq(0)
                m.d.comb += [sink_queue.r_en.eq(1), retire_push.eq(1)]
            with m.Else():
                m.d.sync += sink_count.eq(sink_count + 1)

        # --- Retire: done in order; a DMA STORE waits for its command's status.done. ---
        credits = Signal(range(3 * depth + 2))  # status.done pulses not yet matched
        head_waits = retire_queue.r_data[0]
        retire = retire_queue.r_rdy & (~head_waits | (credits != 0))
        m.d.comb += [retire_queue.r_en.eq(retire), ctl.done.eq(retire & ~failed)]
        m.d.sync += credits.eq(credits + self.dma_write_status.done - (retire & head_waits))

        with m.If(self.dma_write_status.error & ~failed):
            m.d.sync += ctl.error.eq(ErrorCause.DMA_WRITE)

        # Rows inside the post-processing (for busy).
        # Slow clocks: those of a STORE while its sink queue entry is there; a dummy row.
        if slow:
            with m.If(feed_queue.w_en & feed_in.dummy):
                m.d.sync += dummy_out.eq(1)
            with m.If(out.valid & out.ready & dummy_row):
                m.d.sync += dummy_out.eq(0)
            rows_inside = dummy_out
        else:
            in_flight = Signal(range(pp.latency + pp.buffer_depth + 4))  # (+ the ping-pong buffer)
            m.d.sync += in_flight.eq(in_flight + rows_fire - (out.valid & out.ready))
            rows_inside = in_flight != 0

        m.d.comb += ctl.busy.eq(
            (0 if slow else insn_valid) | ~(fsm.ongoing("IDLE") | fsm.ongoing("STOP")) | rd_active
            | feed_queue.r_rdy | sink_queue.r_rdy | retire_queue.r_rdy | rows_inside
            | wcmd_valid | rcmd_valid | beat_valid | param_valid)
        return m

"""Dispatcher: the instruction queue, per-unit queues and the dependency tokens."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .isa import (
    INSN_WIDTH,
    ErrorCause,
    Opcode,
    Unit,
    config_layout,
    exec_layout,
    header_layout,
    load_layout,
    store_layout,
    unit_signature,
)

__all__ = ["Dispatcher"]

_UNITS = ("load", "exec", "store")
#: Each unit's neighbours: (previous, next) along LOAD -> EXEC -> STORE.
_NEIGHBOURS = {"load": (None, "exec"), "exec": ("load", "store"), "store": ("exec", None)}


def _fields_width(*layouts):
    """Bits of an instruction below its ``reserved`` padding: all its unit reads."""
    return max(layout["reserved"].offset for layout in layouts)


#: Width of each unit queue: the low bits of an instruction that hold its unit's fields.
_UNIT_WIDTHS = {"load": _fields_width(load_layout()), "exec": _fields_width(exec_layout()),
                "store": _fields_width(store_layout(), config_layout())}


class Dispatcher(wiring.Component):
    """Takes 32-bit instruction words from the host, queues whole instructions, hands them to
    the LOAD, EXEC and STORE units in program order and keeps the tokens between them.

    - ``words``: four words (least significant first) make an instruction, queued in an
      instruction queue of ``queue_depth`` instructions. It holds them as 32-bit words
      (``4 * queue_depth`` entries, block RAM on an FPGA: a 128-bit-wide queue would take
      eight iCE40 EBR whatever its depth) and gathers the head instruction's four words
      again before decoding it. A word pushed while the queue is full is dropped and latches
      ``QUEUE_FULL`` (the host reads ``free`` before pushing).
    - While ``run`` is high (and no error is latched) the head instruction is decoded:
      an undefined opcode latches ``UNDEFINED_OPCODE``, a dependency flag its unit cannot
      have ``MALFORMED``; LOAD, EXEC, STORE and CONFIG move to their unit's queue
      (``unit_queue_depth`` entries, each only as wide as the fields of its unit's opcodes:
      the reserved bits above them read as 0 at the unit); END waits until every unit has
      finished everything, then pulses ``done``. Lowering ``run`` pauses after the
      instructions already moved.
    - A unit's head instruction is handed over once its ``pop_prev``/``pop_next`` tokens are
      there (they are taken at the handover); its ``push_prev``/``push_next`` tokens are
      given when the unit reports it done. Token counters are 16 bits.
    - At END, a unit whose head waits for a token that its neighbour can no longer give (the
      neighbour idle, its queue empty) latches ``TOKEN_UNDERFLOW``.
    - ``error`` is the first cause, from here or a unit. On an error the dispatcher stops
      handing out instructions; the units finish what is on a bus.
      Only reset clears the error.

    Timing: one instruction every four cycles from the instruction queue into the unit
    queues (as fast as the host can push words), and one per cycle per unit out of them; a
    token given in one cycle lets a waiting instruction go in the next.

    Members
    -------
    words : In(stream.Signature(32))
    free : Out(range(queue_depth + 1))
        Instructions the queue can still take.
    run : In(1)
    busy : Out(1)
        An instruction is executing, or queued and not stopped by an error (after an error,
        ``busy`` falls once the units have drained).
    done : Out(1)
        Pulses when END completes.
    error : Out(hdl.isa.ErrorCause)
    error_unit : Out(2)
        The :class:`hdl.isa.Unit` value of where the error arose (``DISPATCH`` for the
        dispatcher's own).
    load, exec, store : In(hdl.isa.unit_signature())
    waiting : Out(3)
        Per unit (load, exec, store): its head instruction waits for a token this cycle.
    """

    def __init__(self, *, queue_depth=64, unit_queue_depth=4):
        for name, value in (("queue_depth", queue_depth), ("unit_queue_depth", unit_queue_depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self._MustUse__silence = True  # never built: no "created but never used"
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.queue_depth, self.unit_queue_depth = queue_depth, unit_queue_depth
        super().__init__({
            "words": In(stream.Signature(32)),
            "free": Out(range(queue_depth + 1)),
            "run": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(ErrorCause),
            "error_unit": Out(2),
            "load": In(unit_signature()),
            "exec": In(unit_signature()),
            "store": In(unit_signature()),
            "waiting": Out(3),
        })

    def elaborate(self, platform):
        m = Module()
        error = Signal(ErrorCause)
        error_unit = Signal(2)
        raise_error = []  # (condition, cause, unit), in priority order

        # --- Words into the instruction queue, gathered into the head instruction. ---
        words_per_insn = INSN_WIDTH // 32
        m.submodules.queue = queue = SyncFIFOBuffered(width=32,
                                                      depth=words_per_insn * self.queue_depth)
        word_index = Signal(2)
        # Instructions complete in the queue or at its head. A word is pushed only while
        # fewer than queue_depth are, so the words never overflow the queue.
        count = Signal(range(self.queue_depth + 1))
        m.d.comb += [
            self.words.ready.eq(1),
            queue.w_data.eq(self.words.payload),
        ]
        full = count == self.queue_depth
        completes = Signal()  # the word that completes an instruction is pushed
        with m.If(self.words.valid & ~full):
            m.d.comb += [queue.w_en.eq(1), completes.eq(word_index == words_per_insn - 1)]
            m.d.sync += word_index.eq(word_index + 1)
        raise_error.append((self.words.valid & full, ErrorCause.QUEUE_FULL, Unit.DISPATCH))
        m.d.comb += self.free.eq(self.queue_depth - count)

        # The head gathers words (each shifted in from the top) until it holds four.
        insn = Signal(INSN_WIDTH)
        gathered = Signal(range(words_per_insn + 1))
        insn_valid = gathered == words_per_insn
        leaves = Signal()  # the head instruction moves to its unit queue, or END finishes
        take = queue.r_rdy & (~insn_valid | leaves)
        m.d.comb += queue.r_en.eq(take)
        with m.If(take):
            m.d.sync += insn.eq(Cat(insn[32:], queue.r_data))
        with m.If(leaves):
            m.d.sync += gathered.eq(take)
        with m.Elif(take):
            m.d.sync += gathered.eq(gathered + 1)

        # --- Decode the head instruction into a unit queue. ---
        header = header_layout()(insn[:header_layout().size])
        unit_queues = {}
        for name in _UNITS:
            width = _UNIT_WIDTHS[name]
            unit_queues[name] = fifo = SyncFIFOBuffered(width=width, depth=self.unit_queue_depth)
            m.submodules[f"{name}_queue"] = fifo
            m.d.comb += fifo.w_data.eq(insn[:width])
        opcode = header.opcode
        target = {
            "load": opcode == Opcode.LOAD,
            "exec": opcode == Opcode.EXEC,
            "store": (opcode == Opcode.STORE) | (opcode == Opcode.CONFIG),
        }
        is_end = opcode == Opcode.END
        undefined = ~(target["load"] | target["exec"] | target["store"] | is_end)
        bad_flags = ((target["load"] | is_end) & (header.pop_prev | header.push_prev)) | (
            (target["store"] | is_end) & (header.pop_next | header.push_next))

        go = self.run & (error == ErrorCause.NONE) & insn_valid
        raise_error.append((go & undefined, ErrorCause.UNDEFINED_OPCODE, Unit.DISPATCH))
        raise_error.append((go & ~undefined & bad_flags, ErrorCause.MALFORMED, Unit.DISPATCH))
        ok = go & ~undefined & ~bad_flags
        moved = Signal()
        for name in _UNITS:
            with m.If(ok & target[name] & unit_queues[name].w_rdy):
                m.d.comb += [unit_queues[name].w_en.eq(1), moved.eq(1)]

        # --- Tokens, and handing instructions to the units. ---
        tokens = {}  # (giver, taker) -> counter
        for name in _UNITS:
            prev, nxt = _NEIGHBOURS[name]
            for other in (prev, nxt):
                if other is not None:
                    tokens[(other, name)] = Signal(16, name=f"tokens_{other}_to_{name}")
        gives = {key: [] for key in tokens}
        takes = {key: [] for key in tokens}
        idle, waits, missing = {}, {}, {}
        for i, name in enumerate(_UNITS):
            unit, fifo = getattr(self, name), unit_queues[name]
            prev, nxt = _NEIGHBOURS[name]
            head = header_layout()(fifo.r_data[:header_layout().size])
            have_prev = 1 if prev is None else (tokens[(prev, name)] != 0) | ~head.pop_prev
            have_next = 1 if nxt is None else (tokens[(nxt, name)] != 0) | ~head.pop_next
            may_go = (error == ErrorCause.NONE) & have_prev & have_next
            waits[name] = fifo.r_rdy & ~(have_prev & have_next)
            if prev is not None:
                missing[(prev, name)] = fifo.r_rdy & head.pop_prev & (tokens[(prev, name)] == 0)
            if nxt is not None:
                missing[(nxt, name)] = fifo.r_rdy & head.pop_next & (tokens[(nxt, name)] == 0)
            # Push flags of the instructions a unit has taken and not finished.
            flags = data.StructLayout({"push_prev": 1, "push_next": 1})
            m.submodules[f"{name}_flags"] = pushes = SyncFIFOBuffered(width=2, depth=8)
            m.d.comb += [
                unit.insn.valid.eq(fifo.r_rdy & may_go & pushes.w_rdy),
                unit.insn.payload.eq(fifo.r_data),  # zero-extended
                fifo.r_en.eq(unit.insn.valid & unit.insn.ready),
                pushes.w_en.eq(fifo.r_en),
                pushes.w_data.eq(Cat(head.push_prev, head.push_next)),
                pushes.r_en.eq(unit.done),
                self.waiting[i].eq(waits[name]),
            ]
            finished = flags(pushes.r_data)
            if prev is not None:
                takes[(prev, name)].append(fifo.r_en & head.pop_prev)
                gives[(name, prev)].append(unit.done & finished.push_prev)
            if nxt is not None:
                takes[(nxt, name)].append(fifo.r_en & head.pop_next)
                gives[(name, nxt)].append(unit.done & finished.push_next)
            # Instructions handed over and not done (a counter: the flags FIFO shows a new
            # entry only cycles later). After an error, instructions still queued or never
            # done no longer count.
            outstanding = Signal(range(9), name=f"{name}_outstanding")
            with m.If(fifo.r_en & ~unit.done):
                m.d.sync += outstanding.eq(outstanding + 1)
            with m.Elif(unit.done & ~fifo.r_en):
                m.d.sync += outstanding.eq(outstanding - 1)
            idle[name] = ~unit.busy & ((~fifo.r_rdy & (outstanding == 0))
                                       | (error != ErrorCause.NONE))
            raise_error.append((unit.error != ErrorCause.NONE, unit.error, Unit(i)))
        for key, counter in tokens.items():
            give, take = Cat(gives[key]).any(), Cat(takes[key]).any()
            with m.If(give & ~take):
                m.d.sync += counter.eq(counter + 1)
            with m.Elif(take & ~give):
                m.d.sync += counter.eq(counter - 1)

        # --- END: wait until every unit is idle; a wait that cannot end is an error. ---
        all_idle = idle["load"] & idle["exec"] & idle["store"]
        m.d.comb += self.busy.eq(((count != 0) & (error == ErrorCause.NONE)) | ~all_idle)
        at_end = go & ~undefined & is_end
        underflow = Cat(waiting & idle[giver] for (giver, _), waiting in missing.items()).any()
        raise_error.append((at_end & underflow, ErrorCause.TOKEN_UNDERFLOW, Unit.DISPATCH))
        finish = at_end & all_idle & ~bad_flags
        m.d.comb += leaves.eq(moved | finish)
        m.d.sync += self.done.eq(finish)

        # Instructions counted from the word that completes one to the one leaving.
        with m.If(completes & ~leaves):
            m.d.sync += count.eq(count + 1)
        with m.Elif(leaves & ~completes):
            m.d.sync += count.eq(count - 1)

        # --- The first error wins. ---
        with m.If(error == ErrorCause.NONE):
            for condition, cause, unit in reversed(raise_error):
                with m.If(condition):
                    m.d.sync += [error.eq(cause), error_unit.eq(unit.value)]
        m.d.comb += [self.error.eq(error), self.error_unit.eq(error_unit)]
        return m

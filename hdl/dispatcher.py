"""Dispatcher: the instruction queue, per-unit queues and the dependency tokens."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .isa import INSN_WIDTH, ErrorCause, Opcode, Unit, header_layout, unit_signature

__all__ = ["Dispatcher"]

_UNITS = ("load", "exec", "store")
#: Each unit's neighbours: (previous, next) along LOAD -> EXEC -> STORE.
_NEIGHBOURS = {"load": (None, "exec"), "exec": ("load", "store"), "store": ("exec", None)}


class Dispatcher(wiring.Component):
    """Takes 32-bit instruction words from the host, queues whole instructions, hands them to
    the LOAD, EXEC and STORE units in program order and keeps the tokens between them.

    - ``words``: four words (least significant first) make an instruction, queued in an
      instruction queue of ``queue_depth`` entries. A word pushed while the queue is full is
      dropped and latches ``QUEUE_FULL`` (the host reads ``free`` before pushing).
    - While ``run`` is high (and no error is latched) the head instruction is decoded:
      an undefined opcode latches ``UNDEFINED_OPCODE``, a dependency flag its unit cannot
      have ``MALFORMED``; LOAD, EXEC, STORE and CONFIG move to their unit's queue
      (``unit_queue_depth`` entries); END waits until every unit has finished everything,
      then pulses ``done``. Lowering ``run`` pauses after the instructions already moved.
    - A unit's head instruction is handed over once its ``pop_prev``/``pop_next`` tokens are
      there (they are taken at the handover); its ``push_prev``/``push_next`` tokens are
      given when the unit reports it done. Token counters are 16 bits.
    - At END, a unit whose head waits for a token that its neighbour can no longer give (the
      neighbour idle, its queue empty) latches ``TOKEN_UNDERFLOW``.
    - ``error`` is the first cause, from here or a unit. On an error the dispatcher stops
      handing out instructions; the units finish what is on a bus.
      Only reset clears the error.

    Timing: one instruction per cycle from the instruction queue into the unit queues, and
    one per cycle per unit out of them; a token given in one cycle lets a waiting
    instruction go in the next.

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

        # --- Words into instructions into the instruction queue. ---
        m.submodules.queue = queue = SyncFIFOBuffered(width=INSN_WIDTH,
                                                      depth=self.queue_depth)
        partial = Signal(INSN_WIDTH - 32)
        word_index = Signal(2)
        count = Signal(range(self.queue_depth + 1))  # instructions queued (or in its output)
        m.d.comb += [
            self.words.ready.eq(1),
            queue.w_data.eq(Cat(partial, self.words.payload)),
        ]
        full = count == self.queue_depth
        with m.If(self.words.valid & ~full):
            m.d.sync += word_index.eq(word_index + 1)
            with m.If(word_index == 3):
                m.d.comb += queue.w_en.eq(1)
            with m.Else():
                m.d.sync += partial.word_select(word_index, 32).eq(self.words.payload)
        raise_error.append((self.words.valid & full, ErrorCause.QUEUE_FULL, Unit.DISPATCH))
        m.d.comb += self.free.eq(self.queue_depth - count)

        # --- Decode the head instruction into a unit queue. ---
        header = header_layout()(queue.r_data[:header_layout().size])
        unit_queues = {}
        for name in _UNITS:
            unit_queues[name] = fifo = SyncFIFOBuffered(width=INSN_WIDTH,
                                                        depth=self.unit_queue_depth)
            m.submodules[f"{name}_queue"] = fifo
            m.d.comb += fifo.w_data.eq(queue.r_data)
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

        go = self.run & (error == ErrorCause.NONE) & queue.r_rdy
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
                unit.insn.payload.eq(fifo.r_data),
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
        m.d.comb += self.busy.eq((queue.r_rdy & (error == ErrorCause.NONE)) | ~all_idle)
        at_end = go & ~undefined & is_end
        underflow = Cat(waiting & idle[giver] for (giver, _), waiting in missing.items()).any()
        raise_error.append((at_end & underflow, ErrorCause.TOKEN_UNDERFLOW, Unit.DISPATCH))
        finish = at_end & all_idle & ~bad_flags
        m.d.comb += queue.r_en.eq(moved | finish)
        m.d.sync += self.done.eq(finish)

        # Instructions counted from the word that completes one to the one leaving.
        with m.If(queue.w_en & ~queue.r_en):
            m.d.sync += count.eq(count + 1)
        with m.Elif(queue.r_en & ~queue.w_en):
            m.d.sync += count.eq(count - 1)

        # --- The first error wins. ---
        with m.If(error == ErrorCause.NONE):
            for condition, cause, unit in reversed(raise_error):
                with m.If(condition):
                    m.d.sync += [error.eq(cause), error_unit.eq(unit.value)]
        m.d.comb += [self.error.eq(error), self.error_unit.eq(error_unit)]
        return m

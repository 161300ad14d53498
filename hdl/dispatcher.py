"""Dispatcher: the instruction queue, per-unit queues and the dependency tokens."""

from types import SimpleNamespace

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .isa import (
    ADDR_BITS,
    DRAM_ADDR_BITS,
    INSN_WIDTH,
    MAX_TOKENS,
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
from .skid_buffer import SkidBuffer
from .sram import SRAM1R1W, has_ice40_ebr

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
#: Each unit's instruction layouts (STORE's and CONFIG's fields overlap).
_LAYOUTS = {"load": (load_layout,), "exec": (exec_layout,),
            "store": (store_layout, config_layout)}
#: Each unit's opcodes.
_OPCODES = {"load": (Opcode.LOAD,), "exec": (Opcode.EXEC,), "store": (Opcode.STORE, Opcode.CONFIG)}
#: Instructions a unit may have taken and not finished (their push flags are kept), unless
#: the owner gives its own cap.
_OUTSTANDING = 8


def _segments(name, row_bits, dram_bits=DRAM_ADDR_BITS):
    """How a unit queue stage holds the low ``_UNIT_WIDTHS[name]`` bits of an instruction:
    ``(start, stop, kind)`` ranges of instruction bits, in stage order, each kept as is
    (``kind="bits"``) or folded into one bit, their OR (``kind="any"``), which all of them
    read as at the unit.

    A row field (``ADDR_BITS`` wide) may fold the bits above its low ``row_bits``, a
    system-memory address or stride (``DRAM_ADDR_BITS``) those above its low ``dram_bits``:
    a field then keeps its low bits, and its high bits are zero exactly when they were. A run
    of bits folds only where, in every layout of the unit, it lies within the high bits of
    one such field, or in that layout's ``reserved`` bits (STORE's ``rows`` overlap CONFIG's
    ``dram_addr``)."""
    width, layouts = _UNIT_WIDTHS[name], [layout() for layout in _LAYOUTS[name]]
    keep = {ADDR_BITS: row_bits, DRAM_ADDR_BITS: dram_bits}

    def label(layout, bit):  # the field whose high bits hold `bit`, "free", or None (kept)
        for field_name, field in layout:
            if field_name == "reserved" and bit >= field.offset:
                return "free"
            low = keep.get(field.width) if field_name != "header" else None
            if low is not None and field.offset + low <= bit < field.offset + field.width:
                return field_name
        return None

    keys = [tuple(label(layout, bit) for layout in layouts) for bit in range(width)]
    keys = [None if None in key else key for key in keys]
    segments, start = [], 0
    for bit in range(1, width + 1):
        if bit == width or keys[bit] != keys[start]:
            segments.append((start, bit, "bits" if keys[start] is None else "any"))
            start = bit
    return segments


def _up_down(m, counter, up, down):
    """Count ``up`` and ``down`` events (both in one cycle cancel) with one adder: adding
    1 or all ones (-1), rather than an incrementer, a decrementer and a multiplexer."""
    with m.If(up ^ down):
        m.d.sync += counter.eq(counter + Cat(C(1, 1), down.replicate(len(counter) - 1)))


def _unit_payload(name, stored, head):
    """The instruction a unit queue stage holds, as the unit sees it: opcode bits that all the
    unit's opcodes share and flags the unit cannot have are constants (not stored), and so is
    the header's ``reserved`` bit (0)."""
    opcodes = [op.value for op in _OPCODES[name]]
    opcode = Cat(stored[b] if len({op >> b & 1 for op in opcodes}) > 1
                 else C(opcodes[0] >> b & 1, 1) for b in range(3))
    prev, nxt = _NEIGHBOURS[name]
    zero = C(0, 1)
    flags = Cat(head.pop_prev if prev else zero, head.pop_next if nxt else zero,
                head.push_prev if prev else zero, head.push_next if nxt else zero, zero)
    return Cat(opcode, flags, stored[header_layout().size:])


class _WordQueue(wiring.Component):
    """The instruction queue's words: a first-word-fall-through FIFO of ``depth`` 32-bit
    words in one memory (block RAM). Without ``output_register`` the memory's registered read
    port is the head word; with it, the head is a flip-flop register the read port fills
    (a block RAM's clock-to-out is long on ECP5: 4.3 ns). The owner never writes while
    ``depth`` words are in it.

    Timing: a word written in cycle 0 is at the head (``r_rdy``) from cycle 2 on (3 with
    ``output_register``), when the queue was empty; a word read makes way for the next in the
    following cycle: one word a cycle. ``r_en`` is only taken while ``r_rdy``.
    """

    w_en: In(1)
    w_data: In(32)
    r_en: In(1)
    r_rdy: Out(1)
    r_data: Out(32)

    def __init__(self, depth, *, output_register=False):
        self.depth, self.output_register = depth, output_register
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        # A row is never read in the cycle it is written (`stored` counts it from the next
        # cycle on): on an iCE40, raw SB_RAM40_4K tiles, whose same-row read is undefined (an
        # inline memory costs 32 flip-flops and a multiplexer of transparency logic there).
        if has_ice40_ebr(platform):
            m.submodules.memory = sram = SRAM1R1W(self.depth, 32, collision="any")
            write = SimpleNamespace(addr=sram.w_addr, data=sram.w_data, en=sram.w_en)
            read = SimpleNamespace(addr=sram.r_addr, data=sram.r_data, en=sram.r_en)
        else:
            m.submodules.memory = memory = Memory(shape=32, depth=self.depth, init=[])
            write = memory.write_port()
            read = memory.read_port(transparent_for=(write,))

        def advance(pointer):
            if self.depth & (self.depth - 1) == 0:
                return pointer + 1
            return Mux(pointer == self.depth - 1, 0, pointer + 1)

        w_ptr, r_ptr = Signal(range(self.depth)), Signal(range(self.depth))
        stored = Signal(range(self.depth + 1))  # in the memory, not yet at the read port
        # The read port's word (`port_rdy`) and where it goes: the head itself, or the
        # head register, which takes it when empty or read.
        port_rdy = Signal()
        if self.output_register:
            # The head is a skid buffer's output: the read port's word moves in while its
            # second register is empty, decided from registers alone, so ``r_en`` (the
            # decoder's decision) reaches only the buffer, never the memory's pointers (on
            # the 85F that route made the decoder the critical path).
            m.submodules.head = head = SkidBuffer(32)
            port_taken = port_rdy & head.i.ready
            m.d.comb += [head.i.valid.eq(port_rdy), head.i.payload.eq(read.data),
                         self.r_rdy.eq(head.o.valid), self.r_data.eq(head.o.payload),
                         head.o.ready.eq(self.r_en)]
        else:
            port_taken = self.r_en
            m.d.comb += [self.r_data.eq(read.data), self.r_rdy.eq(port_rdy)]
        fetch = (~port_rdy | port_taken) & (stored != 0)
        m.d.comb += [
            write.addr.eq(w_ptr), write.data.eq(self.w_data), write.en.eq(self.w_en),
            read.addr.eq(r_ptr), read.en.eq(fetch),
        ]
        with m.If(self.w_en):
            m.d.sync += w_ptr.eq(advance(w_ptr))
        with m.If(fetch):
            m.d.sync += r_ptr.eq(advance(r_ptr))
        _up_down(m, stored, self.w_en, fetch)
        with m.If(fetch):
            m.d.sync += port_rdy.eq(1)
        with m.Elif(port_taken):
            m.d.sync += port_rdy.eq(0)
        return m


class Dispatcher(wiring.Component):
    """Takes 32-bit instruction words from the host, queues whole instructions, hands them to
    the LOAD, EXEC and STORE units in program order and keeps the tokens between them.

    - ``words``: four words (least significant first) make an instruction, queued in an
      instruction queue of ``queue_depth`` instructions. It holds them as 32-bit words
      (``4 * queue_depth`` entries, block RAM on an FPGA: a 128-bit-wide queue would take
      eight iCE40 EBR whatever its depth). With ``registered_head`` the word at its head is
      in a flip-flop register (a shorter path from it for fast clocks); without, it is the
      block RAM's read port (32 flip-flops fewer). A word pushed while the queue is full is dropped
      and latches ``QUEUE_FULL`` (the host reads ``free`` before pushing).
    - While ``run`` is high (and no error is latched) the first word of the next instruction
      is decoded: an undefined opcode latches ``UNDEFINED_OPCODE``, a dependency flag its
      unit cannot have ``MALFORMED``. LOAD, EXEC and STORE/CONFIG wait for the tail of
      their unit's queue to be free, then their four words move into it one per cycle;
      END's words are dropped, its last one once every unit has finished everything, which
      pulses ``done``. Lowering ``run`` pauses after the instructions already moving.
    - A unit queue is ``unit_queue_depth`` stages of flip-flops (the tail is filled, and an
      instruction moves on towards the head when the stage ahead of it is empty), each only
      as wide as what its unit's opcodes use: the reserved bits above their fields, the
      header's ``reserved`` bit and the flags the unit cannot have read as 0 at the unit.
    - ``row_bits``: in a unit queue, a LOAD's or EXEC's on-chip row fields (scratchpad and
      accumulator rows, row counts: ``ADDR_BITS`` wide) keep their low ``row_bits`` bits and
      one bit for "any higher bit set", which all their higher bits read as at the unit. With
      ``2 ** row_bits`` above every memory's depth, a field with a higher bit set fails its
      unit's range check either way, with the same cause (and an instruction that fails a
      check has no effect).
    - A unit's head instruction is handed over once its ``pop_prev``/``pop_next`` tokens are
      there (they are taken at the handover); its ``push_prev``/``push_next`` tokens are
      given when the unit reports it done (at most ``outstanding[unit]`` instructions a unit
      has taken may be unfinished: 8 unless given; a unit that can have no more never waits
      for that). A token counter holds :data:`hdl.isa.MAX_TOKENS` (8 bits): a token given
      beyond latches ``TOKEN_OVERFLOW``. With ``unit_queue_depth`` 1 a token taken is
      counted in the cycle after (the taker cannot take another before; a token given in
      that cycle is not checked against the limit, as the two cancel).
    - At END, a unit whose head waits for a token that its neighbour can no longer give (the
      neighbour idle, its queue empty) latches ``TOKEN_UNDERFLOW``.
    - ``error`` is the first cause, from here or a unit. On an error the dispatcher stops
      handing out instructions; the units finish what is on a bus.
      Only reset clears the error.

    Timing: one instruction every four cycles from the instruction queue into the unit
    queues (as fast as the host can push words, while the unit queue has room). An
    instruction reaches the head of an empty unit queue ``unit_queue_depth`` cycles after its
    last word was read, and a unit can take one every two cycles from a full queue (with a
    depth of 1, once the next one's four words are in). A token given in one cycle lets a
    waiting instruction go in the next.

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

    def __init__(self, *, queue_depth=64, unit_queue_depth=4, row_bits=ADDR_BITS,
                 dram_bits=DRAM_ADDR_BITS, registered_head=True, outstanding=None):
        for name, value in (("queue_depth", queue_depth), ("unit_queue_depth", unit_queue_depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self._MustUse__silence = True  # never built: no "created but never used"
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.queue_depth, self.unit_queue_depth = queue_depth, unit_queue_depth
        self.row_bits, self.registered_head = row_bits, registered_head
        self.dram_bits = dram_bits
        self.outstanding = {name: _OUTSTANDING for name in _UNITS} | (outstanding or {})
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

        # --- Words into the instruction queue. ---
        words_per_insn = INSN_WIDTH // 32
        words = words_per_insn * self.queue_depth
        m.submodules.queue = queue = _WordQueue(words, output_register=self.registered_head)
        push_word = Signal(2)  # which word of its instruction the next pushed word is
        # Instructions complete in the queue and not yet read out. A word is pushed only
        # while fewer than queue_depth are, so the words never overflow the queue.
        count = Signal(range(self.queue_depth + 1))
        m.d.comb += [
            self.words.ready.eq(1),
            queue.w_data.eq(self.words.payload),
        ]
        full = count == self.queue_depth
        completes = Signal()  # the word that completes an instruction is pushed
        with m.If(self.words.valid & ~full):
            m.d.comb += [queue.w_en.eq(1), completes.eq(push_word == words_per_insn - 1)]
            m.d.sync += push_word.eq(push_word + 1)
        raise_error.append((self.words.valid & full, ErrorCause.QUEUE_FULL, Unit.DISPATCH))
        m.d.comb += self.free.eq(self.queue_depth - count)

        # --- Words out of the queue, straight into the tail of their unit's queue. ---
        # The first word holds the header: it is decoded, and reserves the tail of its
        # unit's queue; the other three follow it there. `target` remembers the unit
        # (DISPATCH for END, whose other words are dropped).
        read_word = Signal(2)  # which word of its instruction the queue's head word is
        target_unit = Signal(2)
        word = queue.r_data
        first = queue.r_rdy & (read_word == 0)
        last = queue.r_rdy & (read_word == words_per_insn - 1)
        take = Signal()  # the head word is read
        leaves = Signal()  # an instruction's last word is read
        m.d.comb += [queue.r_en.eq(take), leaves.eq(take & (read_word == words_per_insn - 1))]
        with m.If(take):
            m.d.sync += read_word.eq(read_word + 1)

        header = header_layout()(word[:header_layout().size])
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

        go = self.run & (error == ErrorCause.NONE) & first
        raise_error.append((go & undefined, ErrorCause.UNDEFINED_OPCODE, Unit.DISPATCH))
        raise_error.append((go & ~undefined & bad_flags, ErrorCause.MALFORMED, Unit.DISPATCH))
        ok = go & ~undefined & ~bad_flags
        with m.If(ok & is_end):
            m.d.comb += take.eq(1)
            m.d.sync += target_unit.eq(Unit.DISPATCH.value)
        with m.If(queue.r_rdy & (read_word != 0) & (read_word != words_per_insn - 1)):
            m.d.comb += take.eq(1)

        # --- Unit queues: `unit_queue_depth` stages of flip-flops, filled at the tail word
        # by word, each moving on towards the head when the one ahead is empty. A stage holds
        # only what its unit's opcodes use (the flags it can have, the fields below
        # `reserved`); the other bits read as 0 at the unit. ---
        depth = self.unit_queue_depth
        heads, head_valid, stage_valid, pops = {}, {}, {}, {}
        for i, name in enumerate(_UNITS):
            segments = _segments(name, self.row_bits, self.dram_bits)
            width = sum(stop - start if kind == "bits" else 1 for start, stop, kind in segments)
            stages = [Signal(width, name=f"{name}_stage{k}") for k in range(depth)]
            valid = [Signal(name=f"{name}_stage{k}_valid") for k in range(depth)]
            pops[name] = pop = Signal(name=f"{name}_pop")
            tail, tail_valid = stages[-1], valid[-1]
            # The tail takes a new instruction when empty or moving on in this cycle.
            tail_free = ~tail_valid if depth == 1 else ~tail_valid | ~valid[-2]
            with m.If(ok & target[name] & tail_free):
                m.d.comb += take.eq(1)
                m.d.sync += target_unit.eq(i)
            for k in range(words_per_insn):
                ours = target[name] if k == 0 else target_unit == i
                with m.If(take & (read_word == k) & ours):
                    at = 0  # where a segment starts in the stage
                    for start, stop, kind in segments:
                        lo, hi = max(start, 32 * k), min(stop, 32 * (k + 1))
                        part = word[lo - 32 * k:hi - 32 * k]
                        if lo < hi and kind == "bits":
                            m.d.sync += tail[at + lo - start:at + hi - start].eq(part)
                        elif lo < hi:  # the OR of the bits in this word and earlier ones
                            m.d.sync += tail[at].eq(
                                part.any() | (tail[at] if lo > start else 0))
                        at += stop - start if kind == "bits" else 1
            with m.If(last & (target_unit == i)):
                m.d.comb += take.eq(1)
                m.d.sync += tail_valid.eq(1)
            for k in range(depth - 1):
                with m.If(valid[k + 1] & ~valid[k]):
                    m.d.sync += [stages[k].eq(stages[k + 1]), valid[k].eq(1)]
                    m.d.sync += valid[k + 1].eq(0)
            with m.If(pop):
                m.d.sync += valid[0].eq(0)
            # The head as the instruction's low bits (an OR bit stands for all its bits).
            head_bits, at = [], 0
            for start, stop, kind in segments:
                if kind == "bits":
                    head_bits.append(stages[0][at:at + stop - start])
                    at += stop - start
                else:
                    head_bits.append(stages[0][at].replicate(stop - start))
                    at += 1
            heads[name], head_valid[name], stage_valid[name] = Cat(head_bits), valid[0], valid

        # --- Tokens, and handing instructions to the units. ---
        tokens = {}  # (giver, taker) -> counter
        nonzero = {}  # (giver, taker) -> a register: the counter is not zero
        for name in _UNITS:
            prev, nxt = _NEIGHBOURS[name]
            for other in (prev, nxt):
                if other is not None:
                    tokens[(other, name)] = Signal(range(MAX_TOKENS + 1),
                                                   name=f"tokens_{other}_to_{name}")
                    nonzero[(other, name)] = Signal(name=f"tokens_{other}_to_{name}_nonzero")
        gives = {key: [] for key in tokens}
        takes = {key: [] for key in tokens}
        idle, waits, missing = {}, {}, {}
        for i, name in enumerate(_UNITS):
            unit, pop, queued = getattr(self, name), pops[name], Cat(stage_valid[name]).any()
            prev, nxt = _NEIGHBOURS[name]
            stored = heads[name]
            head = header_layout()(stored[:header_layout().size])
            ready = head_valid[name]
            have_prev = 1 if prev is None else nonzero[(prev, name)] | ~head.pop_prev
            have_next = 1 if nxt is None else nonzero[(nxt, name)] | ~head.pop_next
            may_go = (error == ErrorCause.NONE) & have_prev & have_next
            waits[name] = ready & ~(have_prev & have_next)
            if prev is not None:
                missing[(prev, name)] = ready & head.pop_prev & ~nonzero[(prev, name)]
            if nxt is not None:
                missing[(nxt, name)] = ready & head.pop_next & ~nonzero[(nxt, name)]
            # Instructions handed over and not done, and the push flags of each, oldest first.
            cap = self.outstanding[name]
            outstanding = Signal(range(cap + 1), name=f"{name}_outstanding")
            push_flags = Cat(head.push_prev if prev is not None else C(0, 1),
                             head.push_next if nxt is not None else C(0, 1))
            pending = [Signal(2, name=f"{name}_pushes{k}") for k in range(cap)]
            m.d.comb += [
                unit.insn.valid.eq(ready & may_go & (outstanding != cap)),
                unit.insn.payload.eq(_unit_payload(name, stored, head)),  # zero-extended
                pop.eq(unit.insn.valid & unit.insn.ready),
                self.waiting[i].eq(waits[name]),
            ]
            with m.If(unit.done):
                m.d.sync += [pending[k].eq(pending[k + 1]) for k in range(cap - 1)]
            with m.If(pop):
                m.d.sync += Array(pending)[
                    (outstanding - unit.done)[:(cap - 1).bit_length()]].eq(push_flags)
            finished = pending[0]
            if prev is not None:
                takes[(prev, name)].append(pop & head.pop_prev)
                gives[(name, prev)].append(unit.done & finished[0])
            if nxt is not None:
                takes[(nxt, name)].append(pop & head.pop_next)
                gives[(name, nxt)].append(unit.done & finished[1])
            # After an error, instructions still queued or never done no longer count.
            _up_down(m, outstanding, pop, unit.done)
            idle[name] = ~unit.busy & ((~queued & (outstanding == 0))
                                       | (error != ErrorCause.NONE))
            raise_error.append((unit.error != ErrorCause.NONE, unit.error, Unit(i)))
        overflows = []
        for (giver, taker), counter in tokens.items():
            give, take_token = Cat(gives[(giver, taker)]).any(), Cat(takes[(giver, taker)]).any()
            if depth == 1:
                # Counted a cycle late (from a register, not from the unit's combinational
                # take): the taker's queue is refilled word by word, so it cannot take again
                # before the counter is up to date.
                taken = Signal(name=f"tokens_{giver}_to_{taker}_taken")
                m.d.sync += taken.eq(take_token)
                take_token = taken
            _up_down(m, counter, give, take_token)
            overflows.append(give & ~take_token & (counter == MAX_TOKENS))
            # The units' `valid` reads a flag, not a 16-input comparison.
            with m.If(give & ~take_token):
                m.d.sync += nonzero[(giver, taker)].eq(1)
            with m.Elif(take_token & ~give):
                m.d.sync += nonzero[(giver, taker)].eq(counter != 1)

        # --- END (its last word): wait until every unit is idle; a wait that cannot end is
        # an error. ---
        all_idle = idle["load"] & idle["exec"] & idle["store"]
        m.d.comb += self.busy.eq(((count != 0) & (error == ErrorCause.NONE)) | ~all_idle)
        at_end = self.run & (error == ErrorCause.NONE) & last & (
            target_unit == Unit.DISPATCH.value)
        underflow = Cat(waiting & idle[giver] for (giver, _), waiting in missing.items()).any()
        raise_error.append((at_end & underflow, ErrorCause.TOKEN_UNDERFLOW, Unit.DISPATCH))
        raise_error.append((Cat(overflows).any(), ErrorCause.TOKEN_OVERFLOW, Unit.DISPATCH))
        finish = at_end & all_idle
        with m.If(finish):
            m.d.comb += take.eq(1)
        m.d.sync += self.done.eq(finish)

        # Instructions counted from the word that completes one to its last word read.
        _up_down(m, count, completes, leaves)

        # --- The first error wins. ---
        with m.If(error == ErrorCause.NONE):
            for condition, cause, unit in reversed(raise_error):
                with m.If(condition):
                    m.d.sync += [error.eq(cause), error_unit.eq(unit.value)]
        m.d.comb += [self.error.eq(error), self.error_unit.eq(error_unit)]
        return m

"""Instruction-level functional model of the accelerator: a program checked without RTL.

It runs the ISA of :mod:`hdl.isa` on the golden arithmetic of :mod:`sim.model`: the three
units take instructions from their queues in program order, each one atomically, synchronized
only by the dependency tokens. The order in which runnable units go is a parameter
(``schedule``): a correctly synchronized program gives the same memory whatever the order, so
running it under several random schedules finds a missing token (a race) that one order hides.
"""

import random

import numpy as np

from hdl.isa import (
    MAX_TOKENS,
    ErrorCause,
    Opcode,
    Unit,
    acc_row_bytes,
    param_block_bytes,
    row_bytes,
)
from hdl.postproc import PostMode

from .model import (
    INT8_MAX,
    INT8_MIN,
    SHIFT_MAX,
    SHIFT_MIN,
    RequantParams,
    postprocess_rows,
    wrap_signed,
)

__all__ = ["AcceleratorModel", "AcceleratorError", "BusError", "SystemMemory"]


class BusError(Exception):
    """An access outside system memory (the bus answers SLVERR/DECERR)."""

    def __init__(self, addr, size):
        super().__init__(f"no memory at {addr:#x} ({size} bytes)")
        self.addr = addr


class AcceleratorError(Exception):
    """The accelerator stopped with a sticky error: ``cause`` (an :class:`ErrorCause`) and the
    offending instruction (``index`` in the program)."""

    def __init__(self, cause, index, detail):
        super().__init__(f"{cause.name} at instruction {index}: {detail}")
        self.cause, self.index, self.detail = cause, index, detail


class SystemMemory:
    """``size`` bytes of system memory at byte addresses ``base`` to ``base + size - 1``."""

    def __init__(self, size, base=0):
        self.base, self.data = base, bytearray(size)

    def _offset(self, addr, size):
        offset = addr - self.base
        if offset < 0 or offset + size > len(self.data):
            raise BusError(addr, size)
        return offset

    def read(self, addr, size):
        offset = self._offset(addr, size)
        return bytes(self.data[offset:offset + size])

    def write(self, addr, payload):
        offset = self._offset(addr, len(payload))
        self.data[offset:offset + len(payload)] = payload


_PREV = {Unit.EXEC: Unit.LOAD, Unit.STORE: Unit.EXEC}
_NEXT = {Unit.LOAD: Unit.EXEC, Unit.EXEC: Unit.STORE}


class AcceleratorModel:
    """The accelerator's architectural state and the effect of each instruction.

    Parameters
    ----------
    config : TesseraConfig
    memory : SystemMemory
    schedule : "in_order" or int
        Which runnable unit goes next: the one whose instruction comes first in the program,
        or (an int) a random choice with that seed.
    queue_depth : int or None
        Entries of each unit's queue; the dispatcher waits while the next instruction's queue
        is full (``None``: unbounded). A program whose tokens come from instructions later in
        program order can deadlock on full queues; that is reported as TOKEN_UNDERFLOW.
        More than :data:`hdl.isa.MAX_TOKENS` tokens given and not taken is TOKEN_OVERFLOW:
        counted in this model's order, while the hardware's units run ahead of each other by
        up to their queues' depths (a program that comes that close to the limit may see the
        error in one and not the other).
    """

    def __init__(self, config, memory, *, schedule="in_order", queue_depth=None):
        if config.act_width != 8 or config.weight_width != 8:
            raise ValueError("the accelerator's memory layout needs 8-bit activations and "
                             f"weights, not {config.act_width} and {config.weight_width}")
        self.config, self.memory = config, memory
        self.rng = None if schedule == "in_order" else random.Random(schedule)
        self.queue_depth = queue_depth
        dim = config.dim
        self.sp = np.zeros((config.sp_depth, dim), dtype=np.uint8)
        self.acc = np.zeros((config.acc_depth, dim), dtype=np.int64)
        self.weights = np.zeros((dim, dim), dtype=np.int64)
        self.params = RequantParams.zeros(dim)
        self.macs = 0
        self.executed = 0
        self.beat = config.bus_data_width // 8

    # --- Running a program. ---

    def run(self, program):
        """Run ``program`` (a list of :class:`sw.assembler.Instruction`) up to its END.

        Raises :class:`AcceleratorError` where the hardware would stop with a sticky error.
        """
        pending = []
        for index, insn in enumerate(program):
            if insn.opcode == Opcode.END:
                break
            pending.append((index, insn))
        else:
            raise AcceleratorError(ErrorCause.MALFORMED, len(program), "no END instruction")
        pending.reverse()
        queues = {unit: [] for unit in (Unit.LOAD, Unit.EXEC, Unit.STORE)}
        tokens = {pair: 0 for pair in [(Unit.LOAD, Unit.EXEC), (Unit.EXEC, Unit.LOAD),
                                       (Unit.EXEC, Unit.STORE), (Unit.STORE, Unit.EXEC)]}

        def runnable(unit):
            if not queues[unit]:
                return False
            _, insn = queues[unit][0]
            return ((not insn.pop_prev or tokens[(_PREV[unit], unit)] > 0)
                    and (not insn.pop_next or tokens[(_NEXT[unit], unit)] > 0))

        while pending or any(queues.values()):
            # The dispatcher moves instructions in program order while their queue has room.
            while pending and (self.queue_depth is None
                               or len(queues[pending[-1][1].unit]) < self.queue_depth):
                index, insn = pending.pop()
                queues[insn.unit].append((index, insn))
            ready = [unit for unit in queues if runnable(unit)]
            if not ready:
                index, insn = min(queue[0] for queue in queues.values() if queue)
                raise AcceleratorError(ErrorCause.TOKEN_UNDERFLOW, index,
                                       f"{insn} waits for a token that never comes")
            if self.rng is None:
                unit = min(ready, key=lambda u: queues[u][0][0])
            else:
                unit = self.rng.choice(ready)
            index, insn = queues[unit].pop(0)
            if insn.pop_prev:
                tokens[(_PREV[unit], unit)] -= 1
            if insn.pop_next:
                tokens[(_NEXT[unit], unit)] -= 1
            self.execute(insn, index)
            for push, pair in [(insn.push_prev, (unit, _PREV.get(unit))),
                               (insn.push_next, (unit, _NEXT.get(unit)))]:
                if push:
                    tokens[pair] += 1
                    if tokens[pair] > MAX_TOKENS:
                        raise AcceleratorError(ErrorCause.TOKEN_OVERFLOW, index,
                                               f"{insn} gives a token beyond {MAX_TOKENS}")
        self.tokens_left = {f"{a.name}->{b.name}": n for (a, b), n in tokens.items() if n}

    def execute_program(self, program):
        """Execute ``program``'s instructions one after another, in program order (no tokens,
        no END needed), up to the first error. Returns ``(cause, completed)``: the
        :class:`ErrorCause` (``NONE`` without one) and how many instructions completed."""
        for index, insn in enumerate(program):
            try:
                self.execute(insn, index)
            except AcceleratorError as error:
                return error.cause, index
        return ErrorCause.NONE, len(program)

    def execute(self, insn, index=0):
        """The effect of one instruction (every check before any effect)."""
        handler = {Opcode.LOAD: self._load, Opcode.EXEC: self._exec,
                   Opcode.STORE: self._store, Opcode.CONFIG: self._config}[insn.opcode]
        handler(insn, index)
        self.executed += 1

    # --- Checks shared by the units. ---

    def _fail(self, cause, index, detail):
        raise AcceleratorError(cause, index, detail)

    def _rows(self, insn, index):
        if insn.rows == 0:
            self._fail(ErrorCause.MALFORMED, index, f"{insn}: zero rows")
        return insn.rows

    def _range(self, cause, depth, start, count, index, what):
        if start + count > depth:
            self._fail(cause, index, f"{what} rows {start}..{start + count - 1} beyond {depth}")

    def _aligned(self, index, *values):
        for value in values:
            if value % self.beat:
                self._fail(ErrorCause.DMA_ALIGN, index,
                           f"{value:#x} is not a multiple of the {self.beat}-byte beat")

    def _address_space(self, cause, index, addr, stride=0):
        """The DMA's ``RANGE`` refusal of a whole transfer (the unit reports ``cause``): an
        address or stride bit at or above ``bus_addr_width``; nothing changes. (A row that
        runs past ``2**bus_addr_width`` fails in :meth:`_read` / :meth:`_write`.)"""
        if (addr | stride) >> self.config.bus_addr_width:
            self._fail(cause, index, f"address {addr:#x} or stride {stride:#x} outside the "
                       f"{self.config.bus_addr_width}-bit address space")

    def _read(self, addr, size, index):
        if addr + size > 1 << self.config.bus_addr_width:
            self._fail(ErrorCause.DMA_READ, index, f"{addr:#x} runs past the address space")
        try:
            return self.memory.read(addr, size)
        except BusError as error:
            self._fail(ErrorCause.DMA_READ, index, str(error))

    def _write(self, addr, payload, index):
        if addr + len(payload) > 1 << self.config.bus_addr_width:
            self._fail(ErrorCause.DMA_WRITE, index, f"{addr:#x} runs past the address space")
        try:
            self.memory.write(addr, payload)
        except BusError as error:
            self._fail(ErrorCause.DMA_WRITE, index, str(error))

    # --- The instructions. ---

    def _load(self, insn, index):
        cfg, rows = self.config, self._rows(insn, index)
        self._range(ErrorCause.SP_RANGE, cfg.sp_depth, insn.sp_addr, rows, index, "scratchpad")
        self._aligned(index, insn.dram_addr, insn.dram_stride)
        self._address_space(ErrorCause.DMA_READ, index, insn.dram_addr, insn.dram_stride)
        size = row_bytes(cfg)
        data = [self._read(insn.dram_addr + r * insn.dram_stride, size, index)
                for r in range(rows)]
        for r, payload in enumerate(data):
            self.sp[insn.sp_addr + r] = np.frombuffer(payload[:cfg.dim], dtype=np.uint8)

    def _lanes(self, rows, is_signed):
        rows = rows.astype(np.int64)
        return np.where(rows >= 128, rows - 256, rows) if is_signed else rows

    def _exec(self, insn, index):
        cfg, dim, rows = self.config, self.config.dim, self._rows(insn, index)
        if insn.preload:
            self._range(ErrorCause.SP_RANGE, cfg.sp_depth, insn.weight_addr, dim, index,
                        "weight")
        self._range(ErrorCause.SP_RANGE, cfg.sp_depth, insn.act_addr, rows, index,
                    "activation")
        self._range(ErrorCause.ACC_RANGE, cfg.acc_depth, insn.acc_addr, rows, index,
                    "accumulator")
        if insn.preload:
            tile = self.sp[insn.weight_addr:insn.weight_addr + dim]
            self.weights = self._lanes(tile, cfg.weight_signed)
        acts = self._lanes(self.sp[insn.act_addr:insn.act_addr + rows], cfg.act_signed)
        target = slice(insn.acc_addr, insn.acc_addr + rows)
        result = acts @ self.weights + (self.acc[target] if insn.accumulate else 0)
        self.acc[target] = wrap_signed(result, cfg.acc_width)
        self.macs += rows * dim * dim

    def _store(self, insn, index):
        cfg, rows = self.config, self._rows(insn, index)
        try:
            mode = PostMode(insn.mode)
        except ValueError:
            mode = PostMode.ACC_BIAS  # the reserved encoding 3 acts as ACC_BIAS
        if insn.to_sp and mode != PostMode.REQUANT:
            self._fail(ErrorCause.MALFORMED, index, f"{insn}: to_sp needs mode REQUANT")
        self._range(ErrorCause.ACC_RANGE, cfg.acc_depth, insn.acc_addr, rows, index,
                    "accumulator")
        if insn.to_sp:
            self._range(ErrorCause.SP_RANGE, cfg.sp_depth, insn.dest, rows, index,
                        "scratchpad")
        else:
            self._aligned(index, insn.dest, insn.dram_stride)
            self._address_space(ErrorCause.DMA_WRITE, index, insn.dest, insn.dram_stride)
        acc = wrap_signed(self.acc[insn.acc_addr:insn.acc_addr + rows], 32)
        out = postprocess_rows(acc, self.params, mode.name.lower())
        if insn.to_sp:
            self.sp[insn.dest:insn.dest + rows] = (out & 0xFF).astype(np.uint8)
            return
        if mode == PostMode.REQUANT:
            size, dtype = row_bytes(cfg), "<i1"
        else:
            size, dtype = acc_row_bytes(cfg), "<i4"
        for r in range(rows):
            payload = out[r].astype(dtype).tobytes()
            self._write(insn.dest + r * insn.dram_stride,
                        payload + bytes(size - len(payload)), index)

    def _config(self, insn, index):
        dim = self.config.dim
        self._aligned(index, insn.dram_addr)
        self._address_space(ErrorCause.DMA_READ, index, insn.dram_addr)
        block = self._read(insn.dram_addr, param_block_bytes(self.config), index)
        words = np.frombuffer(block[:16 * (dim + 1)], dtype="<i4").reshape(dim + 1, 4)
        shift = words[:dim, 2]
        zero_point, act_min, act_max = (int(v) for v in words[dim, :3])
        if shift.min() < SHIFT_MIN or shift.max() > SHIFT_MAX:
            self._fail(ErrorCause.MALFORMED, index,
                       f"a shift outside [{SHIFT_MIN}, {SHIFT_MAX}]: {shift.tolist()}")
        if not all(INT8_MIN <= v <= INT8_MAX for v in (zero_point, act_min, act_max)) or (
                act_min > act_max):
            self._fail(ErrorCause.MALFORMED, index, f"zero point / activation bounds "
                       f"{zero_point}, [{act_min}, {act_max}]")
        self.params = RequantParams(words[:dim, 0].tolist(), words[:dim, 1].tolist(),
                                    shift.tolist(), zero_point, act_min, act_max)

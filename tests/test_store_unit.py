"""The STORE unit in the Amaranth simulator, against the instruction-level functional model.

The unit reads a real :class:`hdl.accumulator.Accumulator` (or, for random stalls on the
accumulator streams too, a Python responder); Python responders stand in for the DMA read and
write engines (a bytearray system memory; an address outside it answers with an error) and
collect the scratchpad writes. Memory images and scratchpad rows are compared with
:class:`sim.functional.AcceleratorModel` running the same instructions on the same state.
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hdl.accumulator import Accumulator
from hdl.config import TesseraConfig, preset
from hdl.isa import ErrorCause, Opcode, acc_row_bytes, param_block_bytes, row_bytes
from hdl.postproc import PostMode
from hdl.store_unit import StoreUnit
from sim.functional import AcceleratorModel, SystemMemory
from sim.streams import idle_cycles, stream_put
from sim.tb_postproc import random_accumulators, random_requant_params
from sw.assembler import Instruction, encode

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6
REQUANT, ACC, ACC_BIAS = (mode.value for mode in PostMode)


def store(acc_addr, rows, dest, stride=0, mode=REQUANT, to_sp=0):
    return Instruction(Opcode.STORE, dict(acc_addr=acc_addr, rows=rows, dest=dest,
                                          dram_stride=stride, mode=mode, to_sp=to_sp))


def config_insn(addr):
    return Instruction(Opcode.CONFIG, dict(dram_addr=addr))


def param_block(config, params=None, *, words=None):
    """The bytes of a CONFIG block for ``params`` (a RequantParams), or of raw ``words``."""
    dim = config.dim
    if words is None:
        words = np.zeros((dim + 1, 4), dtype=np.int64)
        words[:dim, 0], words[:dim, 1], words[:dim, 2] = (
            params.bias, params.multiplier, params.shift)
        words[dim, :3] = params.zero_point, params.act_min, params.act_max
    block = np.asarray(words, dtype=np.int64).astype("<i4").tobytes()
    return block + bytes(param_block_bytes(config) - len(block))


@dataclass
class Run:
    """What the hardware did: ``done`` pulses, the sticky ``error``, the final memory image
    and scratchpad rows, cycles of accepted instructions and of output rows/beats."""
    done: int = 0
    error: ErrorCause = ErrorCause.NONE
    hung: bool = False
    cycles: int = 0
    memory: bytearray = None
    sp: np.ndarray = None
    accepted: list = field(default_factory=list)
    sp_writes: list = field(default_factory=list)
    beats: list = field(default_factory=list)
    ready_after_error: bool = False
    done_after_error: bool = False
    swaps: int = 0


class _Stopped(Exception):
    """The run is over: a responder's loop ends."""


async def _get(ctx, stream, stop, *, idle=0):
    """Like :func:`sim.streams.stream_get`, but gives up (raises ``_Stopped``) once ``stop``
    is high, so that the responders end with the run instead of blocking forever."""
    for _ in range(idle):
        await ctx.tick()
    ctx.set(stream.ready, 1)
    payload, valid = await ctx.tick().sample(stream.payload, stream.valid).until(
        stream.valid | stop)
    ctx.set(stream.ready, 0)
    if not valid:
        raise _Stopped
    return payload


async def _put(ctx, stream, payload, stop, *, idle=0):
    """Like :func:`sim.streams.stream_put`, but gives up once ``stop`` is high."""
    for _ in range(idle):
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    ready, = await ctx.tick().sample(stream.ready).until(stream.ready | stop)
    ctx.set(stream.valid, 0)
    if not ready:
        raise _Stopped


async def _wait_for(ctx, queue, stop):
    """Ticks until ``queue`` has an entry (or the run is over)."""
    while not queue:
        if ctx.get(stop):
            raise _Stopped
        await ctx.tick()


def _until_stopped(process):
    async def run(ctx):
        try:
            await process(ctx)
        except _Stopped:
            pass
    return run


def run_store(config, program, memory, acc_init, *, seed, stall=0.0, real_acc=True,
              b_latency=(1, 4), max_cycles=20_000):
    """Run ``program`` (STORE/CONFIG instructions) on a StoreUnit.

    ``memory``: the initial system memory (addresses from 0; a transfer beyond it gets an
    error); ``acc_init``: rows preloaded into accumulator rows 0, 1, ...; ``stall``:
    probability of a stall before each transfer on every stream; ``real_acc``: a real
    Accumulator, or a Python one (with stalls on its streams too); ``b_latency``: range of
    cycles from a DMA write command's last beat to its ``status.done``. The run ends once
    every instruction is done (or the unit stopped on an error) and ``busy`` fell, plus 10
    cycles; or after ``max_cycles`` (``hung``).
    """
    unit = StoreUnit(config)
    m = Module()
    m.submodules.unit = unit
    acc = None
    if real_acc:
        m.submodules.acc = acc = Accumulator(config)
        wiring.connect(m, unit.acc_read, acc.read)
        wiring.connect(m, acc.read_data, unit.acc_read_data)
    stop = Signal()  # set by the monitor at the end: every responder returns
    rng = np.random.default_rng(seed)
    beat = config.bus_data_width // 8
    mem = bytearray(memory)
    sp = np.zeros((config.sp_depth, config.dim), dtype=np.uint8)
    result = Run(memory=mem, sp=sp)
    fed, cycle = [False], [0]
    acc_queue, write_cmds = deque(), deque()
    pulses = deque()  # (due cycle, error) of DMA write commands, in order

    def stalls():
        return idle_cycles(rng, stall)

    def in_memory(addr):
        return 0 <= addr and addr + beat <= len(mem)

    async def feeder(ctx):
        for r, row in enumerate(acc_init if real_acc else []):
            await _put(ctx, acc.write, {"addr": r, "row": [int(v) for v in row],
                                        "accumulate": 0}, stop)
            await ctx.tick()  # slow clocks: the accumulator takes the row a cycle later
        for insn in program:
            await _put(ctx, unit.ctl.insn, encode(insn), stop, idle=stalls())
        fed[0] = True

    async def acc_requests(ctx):
        while True:
            acc_queue.append(int(await _get(ctx, unit.acc_read, stop, idle=stalls())))

    async def acc_answers(ctx):
        while True:
            await _wait_for(ctx, acc_queue, stop)
            row = [int(v) for v in acc_init[acc_queue.popleft()]]
            await _put(ctx, unit.acc_read_data, {"row": row, "error": 0}, stop,
                       idle=stalls())

    async def dma_reader(ctx):
        while True:
            cmd = await _get(ctx, unit.dma_read_cmd, stop, idle=stalls())
            error = False
            rows, row_beats = int(cmd.rows), int(cmd.row_beats)
            for r in range(rows):
                for b in range(row_beats):
                    addr = int(cmd.addr) + r * int(cmd.stride) + b * beat
                    error = error or not in_memory(addr)
                    data = 0 if error else int.from_bytes(mem[addr:addr + beat], "little")
                    await _put(ctx, unit.dma_read_data, {
                        "data": data, "row_last": b == row_beats - 1,
                        "last": r == rows - 1 and b == row_beats - 1, "error": error},
                        stop, idle=stalls())

    async def dma_write_commands(ctx):
        # Commands are taken ahead of their beats, as the write engine's burst splitter does.
        while True:
            write_cmds.append(await _get(ctx, unit.dma_write_cmd, stop, idle=stalls()))

    async def dma_writer(ctx):
        while True:
            await _wait_for(ctx, write_cmds, stop)
            cmd = write_cmds.popleft()
            error = False
            for r in range(int(cmd.rows)):
                for b in range(int(cmd.row_beats)):
                    payload = await _get(ctx, unit.dma_write_data, stop, idle=stalls())
                    addr = int(cmd.addr) + r * int(cmd.stride) + b * beat
                    if in_memory(addr):
                        mem[addr:addr + beat] = int(payload.data).to_bytes(beat, "little")
                    else:
                        error = True
            due = cycle[0] + int(rng.integers(b_latency[0], b_latency[1] + 1))
            pulses.append((max(due, pulses[-1][0] + 1) if pulses else due, error))

    async def dma_status(ctx):
        # status.done one cycle per command, in order; an error rises with its done (as the
        # write engine's B response latches both) and stays (error_clear is never pulsed).
        async for _, _, stopped in ctx.tick().sample(stop):
            if stopped:
                return
            cycle[0] += 1
            ctx.set(unit.dma_write_status.done, 0)
            if pulses and pulses[0][0] <= cycle[0]:
                _, error = pulses.popleft()
                ctx.set(unit.dma_write_status.done, 1)
                if error:
                    ctx.set(unit.dma_write_status.error, 1)

    async def sp_consumer(ctx):
        while True:
            payload = await _get(ctx, unit.sp_write, stop, idle=stalls())
            sp[int(payload.addr)] = [int(v) & 0xFF for v in payload.row]

    async def monitor(ctx):
        count, settle = 0, None
        rows = unit.postproc.acc_rows
        async for _, _, done, busy, error, iv, ir, sv, sr, dv, dr, rv, rr, row in (
                ctx.tick().sample(
                    unit.ctl.done, unit.ctl.busy, unit.ctl.error, unit.ctl.insn.valid,
                    unit.ctl.insn.ready, unit.sp_write.valid, unit.sp_write.ready,
                    unit.dma_write_data.valid, unit.dma_write_data.ready, rows.valid,
                    rows.ready, rows.payload)):
            count += 1
            result.swaps += bool(rv and rr and row.swap)
            failed = ErrorCause(error) != ErrorCause.NONE
            if done:
                result.done += 1
                result.done_after_error |= failed
            if iv and ir:
                result.accepted.append(count)
                result.ready_after_error |= failed
            if sv and sr:
                result.sp_writes.append(count)
            if dv and dr:
                result.beats.append(count)
            finished = (failed or fed[0] and result.done == len(program)) and not busy
            if settle is None and finished:
                settle = count + 10  # a few more cycles: no late done, ready stays low
            if settle is not None and count >= settle:
                break
            if count >= max_cycles:
                result.hung = True
                break
        result.error = ErrorCause(ctx.get(unit.ctl.error))
        result.cycles = count
        ctx.set(stop, 1)

    sim = Simulator(m)
    sim.add_clock(CLOCK)
    benches = [feeder, dma_reader, dma_write_commands, dma_writer, dma_status, sp_consumer]
    if not real_acc:
        benches += [acc_requests, acc_answers]
    for bench in benches:
        sim.add_testbench(_until_stopped(bench))
    sim.add_testbench(monitor)
    sim.run()
    return result


def model_run(config, program, memory, acc_init):
    """The functional model on the same state: (model, error cause or NONE, instructions
    completed)."""
    model = AcceleratorModel(config, SystemMemory(len(memory)))
    model.memory.data[:] = memory
    model.acc[:len(acc_init)] = acc_init
    cause, completed = model.execute_program(program)
    return model, cause, completed


def check(config, program, memory, acc_init, *, seed, **kwargs):
    """Run the hardware and the model; compare errors, done pulses, memory and scratchpad."""
    label = f"config={config.name} seed={seed} {kwargs}"
    print(label)
    for insn in program:
        print("  ", insn)
    run = run_store(config, program, memory, acc_init, seed=seed, **kwargs)
    model, cause, completed = model_run(config, program, memory, acc_init)
    assert not run.hung, f"{label}: hung (done={run.done}, error={run.error})"
    assert run.error == cause, f"{label}: error {run.error}, model {cause}"
    assert run.done == completed, f"{label}: {run.done} done pulses, model {completed}"
    assert not run.done_after_error and not run.ready_after_error, label
    if cause == ErrorCause.NONE:
        if run.memory != model.memory.data:
            diff = next(i for i, (a, b) in enumerate(zip(run.memory, model.memory.data,
                                                                   strict=True))
                        if a != b)
            raise AssertionError(f"{label}: memory differs first at byte {diff:#x}: "
                                 f"{run.memory[diff]:#04x}, model {model.memory.data[diff]:#04x}")
        rows = np.nonzero((run.sp != model.sp).any(axis=1))[0]
        assert not len(rows), (f"{label}: scratchpad row {rows[0]}: {run.sp[rows[0]]}, "
                               f"model {model.sp[rows[0]]}")
    return run, model


class Setup:
    """A random initial state: accumulator rows, a memory with parameter blocks at the start
    and output regions after them."""

    def __init__(self, config, seed, *, acc_rows=40, n_params=3, per_channel=None,
                 memory_size=8192):
        self.config, self.rng = config, np.random.default_rng(seed)
        dim = config.dim
        self.acc = random_accumulators(self.rng, (acc_rows, dim))
        self.memory = bytearray(self.rng.integers(0, 256, memory_size, dtype=np.uint8))
        self.block = param_block_bytes(config)
        self.params = []
        for i in range(n_params):
            channel = bool(self.rng.random() < 0.5) if per_channel is None else per_channel
            params = random_requant_params(self.rng, dim, per_channel=channel)
            self.memory[i * self.block:(i + 1) * self.block] = param_block(config, params)
            self.params.append(params)
        beat = config.bus_data_width // 8
        self.out = -(-n_params * self.block // beat) * beat + 64 * beat  # an output region

    def param_addr(self, i):
        return i * self.block


# --- Against the model. ---

CONFIGS = ["tiny", "small", "large"]


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["idle", "stalls"])
def test_modes_and_configs(name, stall):
    """Every mode, before any CONFIG (reset parameters) and after CONFIGs (per-tensor and
    per-channel), to memory (with strides larger than a row) and to the scratchpad;
    several STOREs per CONFIG (the swap only once), back to back."""
    config = preset(name)
    seed = 700 + CONFIGS.index(name) * 10 + int(stall * 10)
    s = Setup(config, seed, per_channel=None)
    rb, ab = row_bytes(config), acc_row_bytes(config)
    beat = config.bus_data_width // 8
    out = s.out
    program = [
        store(0, 3, out, rb, REQUANT),                    # reset parameters: zeros
        store(3, 2, out + 4 * rb, ab, ACC),
        config_insn(s.param_addr(0)),
        store(5, 5, out + 8 * ab, 2 * rb, REQUANT),
        store(10, 3, out + 20 * ab, ab + beat, ACC_BIAS),
        store(13, 4, 7, 0, REQUANT, to_sp=1),
        config_insn(s.param_addr(1)),
        store(17, 6, 20, 0, REQUANT, to_sp=1),
        store(23, 2, out + 40 * ab, ab, 3),               # reserved mode: ACC_BIAS
        store(25, 4, out + 50 * ab, rb, REQUANT),
    ]
    run, _ = check(config, program, s.memory, s.acc, seed=seed, stall=stall)
    assert run.swaps == 2  # the first row after each CONFIG, not the STOREs after it


ODD_SHAPES = {
    # int8 rows of 2 beats, int32 rows of 8, a row every 2 cycles
    "dim8-bus32": TesseraConfig(dim=8, postproc_lanes=4, bus_data_width=32),
    # int8 rows of 3 bytes in one beat, int32 rows of 12 bytes padded to 2 beats
    "dim3-bus64": TesseraConfig(dim=3, bus_data_width=64, sp_depth=64, acc_depth=64),
}


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_odd_shapes(shape):
    """Rows of several int8 beats, and rows padded within their last beat."""
    config = ODD_SHAPES[shape]
    seed = 760 + list(ODD_SHAPES).index(shape)
    s = Setup(config, seed)
    rb, ab = row_bytes(config), acc_row_bytes(config)
    out = s.out
    program = [config_insn(s.param_addr(0)), store(0, 5, out, rb, REQUANT),
               store(5, 4, out + 8 * ab, ab, ACC_BIAS), store(9, 3, 2, 0, REQUANT, to_sp=1),
               config_insn(s.param_addr(1)), store(12, 6, out + 16 * ab, 2 * rb, REQUANT),
               store(18, 3, out + 32 * ab, ab, ACC)]
    check(config, program, s.memory, s.acc, seed=seed, stall=0.3)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_requant_granularity(per_channel):
    config = preset("small")
    seed = 810 + per_channel
    s = Setup(config, seed, per_channel=per_channel)
    program = [config_insn(s.param_addr(0)), store(0, 16, s.out, row_bytes(config)),
               config_insn(s.param_addr(1)), store(16, 16, 0, 0, REQUANT, to_sp=1)]
    check(config, program, s.memory, s.acc, seed=seed)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_config_back_to_back(name):
    """CONFIG, CONFIG, CONFIG without a STORE between them: the completed sets are swapped
    in by dummy rows and only the last one is used; the STOREs before them use the old set."""
    config = preset(name)
    seed = 820 + CONFIGS.index(name)
    s = Setup(config, seed)
    rb = row_bytes(config)
    program = [config_insn(s.param_addr(0)), store(0, 4, s.out, rb),
               config_insn(s.param_addr(1)), config_insn(s.param_addr(2)),
               config_insn(s.param_addr(0)), store(4, 4, s.out + 4 * rb, rb),
               config_insn(s.param_addr(1)), config_insn(s.param_addr(2)),
               store(8, 1, 3, 0, REQUANT, to_sp=1), store(9, 3, s.out + 8 * rb, rb)]
    run, _ = check(config, program, s.memory, s.acc, seed=seed, stall=0.2)
    assert run.swaps == 6  # 3 STOREs after a CONFIG, 3 dummy rows before a second CONFIG


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_accumulator_stalls(name):
    """A Python accumulator with random stalls on its request and answer streams."""
    config = preset(name)
    seed = 830 + CONFIGS.index(name)
    s = Setup(config, seed)
    rb, ab = row_bytes(config), acc_row_bytes(config)
    program = [config_insn(s.param_addr(0)), store(0, 7, s.out, rb),
               store(7, 5, 40, 0, REQUANT, to_sp=1), store(12, 6, s.out + 8 * rb, ab, ACC),
               config_insn(s.param_addr(1)), store(18, 9, s.out + 8 * rb + 6 * ab, ab,
                                                   ACC_BIAS)]
    check(config, program, s.memory, s.acc, seed=seed, stall=0.4, real_acc=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seed", range(3))
def test_random_programs(name, seed):
    """Random STORE/CONFIG programs under random stalls."""
    config = preset(name)
    seed = 900 + 10 * CONFIGS.index(name) + seed
    s = Setup(config, seed, acc_rows=64, n_params=3, memory_size=1 << 15)
    rng = np.random.default_rng(seed)
    rb, ab = row_bytes(config), acc_row_bytes(config)
    program, out = [], s.out
    for _ in range(16):
        if rng.random() < 0.25:
            program.append(config_insn(s.param_addr(int(rng.integers(0, 3)))))
            continue
        rows = int(rng.integers(1, 12))
        acc_addr = int(rng.integers(0, 64 - rows + 1))
        mode = int(rng.integers(0, 4))
        if mode == REQUANT and rng.random() < 0.3:
            program.append(store(acc_addr, rows, int(rng.integers(0, 64)), 0, mode, to_sp=1))
            continue
        size = rb if mode == REQUANT else ab
        stride = size * int(rng.integers(1, 3))
        program.append(store(acc_addr, rows, out, stride, mode))
        out += stride * rows
    check(config, program, s.memory, s.acc, seed=seed, stall=float(rng.choice([0.0, 0.3])),
          real_acc=bool(rng.random() < 0.5), max_cycles=60_000)


# --- Errors: the unit stops, no done, never hangs. ---

def _error_program(config, s, case):
    """A good STORE, then the failing instruction of ``case``, then a good STORE."""
    rb, dim = row_bytes(config), config.dim
    beat = config.bus_data_width // 8
    words = np.zeros((dim + 1, 4), dtype=np.int64)
    words[:dim, 1] = 1 << 30
    words[dim, :3] = 0, -128, 127
    bad = {
        "shift_high": (dim - 1, 2, 31), "shift_low": (0, 2, -32),
        "zero_point": (dim, 0, 128), "act_min": (dim, 1, -129), "bounds": (dim, 1, 5),
    }
    failing = {
        "rows_zero": store(0, 0, s.out),
        "to_sp_mode": store(0, 2, 0, 0, ACC, to_sp=1),
        "acc_range": store(config.acc_depth - 2, 3, s.out),
        "sp_range": store(0, 3, config.sp_depth - 2, 0, REQUANT, to_sp=1),
        "dest_align": store(0, 2, s.out + beat // 2 if beat > 1 else s.out, rb),
        "stride_align": store(0, 2, s.out, rb + 4),
        "config_align": config_insn(4),
        "config_read": config_insn(len(s.memory) - beat),   # runs past the memory's end
        "store_write": store(0, 4, len(s.memory) - 2 * rb, rb),  # rows 2, 3 beyond it
    }
    if case in bad:
        row, column, value = bad[case]
        words[row, column] = value
        if case == "bounds":
            words[dim, 2] = 4  # act_min 5 > act_max 4
        s.memory[:s.block] = param_block(config, words=words)
        insn = config_insn(0)
    else:
        insn = failing[case]
    return [store(0, 2, s.out + 64 * rb, rb), insn, store(2, 2, s.out + 80 * rb, rb)]


ERROR_CASES = ["rows_zero", "to_sp_mode", "acc_range", "sp_range", "dest_align",
               "stride_align", "config_align", "config_read", "store_write", "shift_high",
               "shift_low", "zero_point", "act_min", "bounds"]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors(case):
    config = preset("tiny") if case in ("store_write", "shift_low") else preset("small")
    seed = 1000 + ERROR_CASES.index(case)
    s = Setup(config, seed, n_params=1, memory_size=4096)
    program = _error_program(config, s, case)
    check(config, program, s.memory, s.acc, seed=seed, stall=0.2)


BLOCK_CASES = ["config_read", "shift_high", "shift_low", "zero_point", "act_min", "bounds"]


@pytest.mark.parametrize("case", BLOCK_CASES)
def test_block_errors_by_word(case):
    """tiny's CONFIG passes its block on word by word as it arrives (the post-processing takes
    its parameters by word): a bad word or a bus error still completes no set and stops the
    unit with the model's cause."""
    config = preset("tiny")
    seed = 1100 + BLOCK_CASES.index(case)
    s = Setup(config, seed, n_params=1, memory_size=4096)
    program = _error_program(config, s, case)
    check(config, program, s.memory, s.acc, seed=seed, stall=0.2)


def test_error_in_program_order():
    """A STORE that fails on the bus (DMA_WRITE, seen late), then one that fails a check at
    once (MALFORMED): the first instruction's cause is reported, as in the model."""
    config = preset("small")
    seed = 1100
    s = Setup(config, seed, n_params=1, memory_size=4096)
    rb = row_bytes(config)
    program = [store(0, 8, len(s.memory) - rb, rb), store(0, 0, s.out)]
    run, _ = check(config, program, s.memory, s.acc, seed=seed, b_latency=(20, 20))
    assert run.error == ErrorCause.DMA_WRITE


def test_flags_of_no_unit_are_malformed():
    """push_next on a STORE (which the assembler refuses to build) is MALFORMED."""
    config = preset("tiny")
    unit = StoreUnit(config)
    insn = encode(store(0, 1, 0)) | (1 << 6)  # header.push_next
    result = {}

    async def bench(ctx):
        await stream_put(ctx, unit.ctl.insn, insn)
        for _ in range(20):
            await ctx.tick()
        result["error"] = ErrorCause(ctx.get(unit.ctl.error))
        result["busy"] = ctx.get(unit.ctl.busy)
        result["ready"] = ctx.get(unit.ctl.insn.ready)

    sim = Simulator(unit)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    assert result == {"error": ErrorCause.MALFORMED, "busy": 0, "ready": 0}


# --- Timing. ---

@pytest.mark.parametrize("name, to_sp, mode, rows_per_store", [
    ("small", 1, REQUANT, 8), ("small", 0, REQUANT, 8), ("small", 0, ACC, 8),
    ("tiny", 1, REQUANT, 8), ("tiny", 0, REQUANT, 8), ("tiny", 0, ACC, 8),
    ("large", 0, ACC_BIAS, 8),
    # One tile (dim rows) per STORE, as a GEMM stores, through tiny's 2-deep queues.
    ("tiny", 1, REQUANT, 4), ("tiny", 0, REQUANT, 4)])
def test_throughput(name, to_sp, mode, rows_per_store):
    """Back-to-back STOREs with a memory that keeps up: one row per row_cycles (or one beat
    per cycle when a row has more beats; a row's beats back to back, on tiny an int32 row's
    a lane group apart: each leaves as it lands) from the first output to the last, across
    the instruction boundaries; the first output ``5 + postproc latency`` cycles after the
    first instruction was accepted (through the output skid buffer; 6 with large's
    registered accumulator, 3 at slow clocks;
    plus the beat register on the DMA path,
    none on tiny's, where an int32 row's first beat leaves as its first group lands)."""
    config = preset(name)
    seed = 1200
    s = Setup(config, seed, n_params=1, memory_size=1 << 14)
    unit = StoreUnit(config)
    Fragment.get(unit, None)
    stores = 40 // rows_per_store
    size = row_bytes(config) if mode == REQUANT else acc_row_bytes(config)
    program = [store(r, rows_per_store, (r if to_sp else s.out + r * size), size, mode, to_sp)
               for r in range(0, rows_per_store * stores, rows_per_store)]
    run, _ = check(config, program, s.memory, s.acc, seed=seed, b_latency=(3, 3))
    outputs = run.sp_writes if to_sp else run.beats
    beats = size // (config.bus_data_width // 8) if not to_sp else 1
    rows = rows_per_store * stores
    assert len(outputs) == rows * beats
    # A row's beats go out back to back (tiny's int32 rows: as each group lands), one row
    # per max(row_cycles, beats) cycles.
    by_group = not to_sp and unit.beat_delay == 0 and mode != REQUANT
    spacing = unit.postproc.multiply_cycles if by_group else 1
    assert outputs[-1] - outputs[0] == ((rows - 1) * max(unit.row_cycles, beats)
                                        + (beats - 1) * spacing), outputs
    # Through the decode register 2 cycles to the first read, 1 at slow clocks (none); there
    # a STORE to memory is taken a cycle after it issued, with its command.
    # The serial post-processing starts a row only at its digit 0: the first row may wait
    # up to multiply_cycles - 1 cycles for it.
    taken_late = not to_sp and not config.fast_clock
    first_early = (beats - 1) * spacing if by_group else 0
    phase_wait = outputs[0] - run.accepted[0] + taken_late - unit.latency - (
        0 if to_sp else unit.beat_delay) + first_early
    assert 0 <= phase_wait < unit.postproc.multiply_cycles, phase_wait
    assert unit.latency == ((5 + 2 * config.acc_registered if config.fast_clock else 3)
                            + unit.postproc.latency)


def test_params_by_word_need_a_32_bit_beat():
    """tiny's post-processing takes the CONFIG block by word, one a beat: a wider bus is
    refused at elaboration, naming the parameter."""
    with pytest.raises(ValueError, match=r"needs a 32-bit beat: bus_data_width must be 32, "
                                         r"not 64$"):
        StoreUnit(preset("tiny").replace(bus_data_width=64))

"""The EXEC unit with a real scratchpad and accumulator, against the functional model."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hdl.accumulator import Accumulator
from hdl.config import TesseraConfig, preset
from hdl.exec_unit import ExecUnit
from hdl.isa import ErrorCause, Opcode
from hdl.scratchpad import Scratchpad
from sim.functional import AcceleratorModel, SystemMemory
from sim.streams import idle_cycles, stream_get, stream_put
from sw.assembler import Instruction, encode

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6


class ExecHarness(wiring.Component):
    """The EXEC unit between a scratchpad (written by the test) and an accumulator (read by
    the test)."""

    def __init__(self, config, *, mirrored=None, registered=False):
        self.config = config
        self.unit = ExecUnit(config)
        self.scratchpad = Scratchpad(config)
        self.accumulator = Accumulator(config, mirrored=mirrored, registered=registered)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        m.submodules.scratchpad = sp = self.scratchpad
        m.submodules.accumulator = acc = self.accumulator
        wiring.connect(m, unit.sp_read, sp.read)
        wiring.connect(m, sp.read_data, unit.sp_read_data)
        wiring.connect(m, unit.sp_weight_read, sp.read_b)
        wiring.connect(m, sp.read_b_data, unit.sp_weight_read_data)
        wiring.connect(m, unit.acc_write, acc.write)
        return m


def execute(insn):
    return Instruction(Opcode.EXEC, insn)


def exec_insn(weight_addr, act_addr, acc_addr, rows, preload=1, accumulate=0):
    return execute(dict(weight_addr=weight_addr, act_addr=act_addr, acc_addr=acc_addr,
                        rows=rows, preload=preload, accumulate=accumulate))


def run_exec(config, sp_rows, program, *, seed, stall=0.0, cycles=None, mirrored=None,
             registered=False):
    """Fill the scratchpad with ``sp_rows``, run ``program``, read the whole accumulator.
    Returns (accumulator rows, done pulses, final error cause, cycles with an activation
    row entering the array)."""
    harness = ExecHarness(config, mirrored=mirrored, registered=registered)
    unit, sp, acc = harness.unit, harness.scratchpad, harness.accumulator
    rng = np.random.default_rng(seed)
    state = {"done": 0, "error": ErrorCause.NONE, "computing": 0, "span": [], "cycle": 0,
             "acc_error": 0}
    rows_out = {}
    expected_done = len(program)

    async def bench(ctx):
        for addr, row in enumerate(sp_rows):
            await stream_put(ctx, sp.write, {"addr": addr, "row": [int(v) for v in row]})
        for insn in program:
            ctx.set(unit.ctl.insn.valid, 1)
            ctx.set(unit.ctl.insn.payload, encode(insn))
            for _ in range(2000):
                *_, ready, error = await ctx.tick().sample(unit.ctl.insn.ready,
                                                           unit.ctl.error)
                if ready or error != ErrorCause.NONE:
                    break
            ctx.set(unit.ctl.insn.valid, 0)
            if not ready:
                break
            for _ in range(idle_cycles(rng, stall)):
                await ctx.tick()
        for _ in range(20_000):
            if state["done"] == expected_done or state["error"] != ErrorCause.NONE:
                break
            await ctx.tick()
        for _ in range(50):  # let the last writes settle, then read everything back
            await ctx.tick()
        for addr in range(config.acc_depth):
            await stream_put(ctx, acc.read, addr)
            answer = await stream_get(ctx, acc.read_data)
            rows_out[addr] = [int(v) for v in answer.row]

    async def monitor(ctx):
        async for _, _, done, error, computing, acc_error in ctx.tick().sample(
                unit.ctl.done, unit.ctl.error, unit.computing, acc.error):
            state["acc_error"] |= acc_error
            state["done"] += done
            state["error"] = error
            state["computing"] += computing
            if computing:
                state["span"] = [*state["span"][:1], state["cycle"]]
            state["cycle"] += 1

    sim = Simulator(harness)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    # Never a row out of range nor (30 MHz) one row twice in a row into the accumulator.
    assert not state["acc_error"]
    acc_rows = np.array([rows_out[a] for a in range(config.acc_depth)], dtype=np.int64)
    return acc_rows, state["done"], state["error"], state["computing"], state["span"]


def model_exec(config, sp_rows, program):
    model = AcceleratorModel(config, SystemMemory(16))
    model.sp[:len(sp_rows)] = np.asarray(sp_rows, dtype=np.int64) & 0xFF
    cause, _ = model.execute_program(program)
    return model, cause


def random_sp(config, rng):
    rows = rng.integers(-128, 128, size=(config.sp_depth, config.dim))
    edges = rng.random(rows.shape) < 0.1
    rows[edges] = rng.choice([-128, 127, 0, -1], size=int(edges.sum()))
    return rows


def random_execs(config, rng, count):
    program = []
    for i in range(count):
        rows = int(rng.choice([1, config.dim - 1 or 1, config.dim, int(rng.integers(1, 30))]))
        program.append(exec_insn(
            weight_addr=int(rng.integers(0, config.sp_depth - config.dim + 1)),
            act_addr=int(rng.integers(0, config.sp_depth - rows + 1)),
            acc_addr=int(rng.integers(0, config.acc_depth - rows + 1)),
            rows=rows, preload=int(i == 0 or rng.random() < 0.7),
            accumulate=int(rng.random() < 0.5)))
    return program


@pytest.mark.parametrize("config", [
    # Results counted, not tagged (30 MHz): one tag bit is enough.
    TesseraConfig(name="dim2", dim=2, sp_depth=64, acc_depth=32, tag_width=1),
    preset("tiny").replace(sp_depth=64, acc_depth=32),
    # Fast clock: buffered scratchpad answers, tagged results.
    TesseraConfig(name="dim3-2stages", dim=3, product_stages=2, sp_depth=64, acc_depth=32,
                  target_mhz=80.0),
], ids=lambda c: c.name)
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_execs_match_model(config, stall):
    seed = 70 + config.dim + int(10 * stall)
    print(f"seed={seed} config={config.name} stall={stall}")
    rng = np.random.default_rng(seed)
    sp_rows = random_sp(config, rng)
    program = random_execs(config, rng, 14)
    acc, done, cause, _, _ = run_exec(config, sp_rows, program, seed=seed, stall=stall)
    model, model_cause = model_exec(config, sp_rows, program)
    assert (cause, model_cause) == (ErrorCause.NONE, ErrorCause.NONE)
    assert done == len(program)
    bad = np.argwhere(acc != model.acc)
    assert not bad.size, f"seed={seed}: accumulator row {bad[0][0]} lane {bad[0][1]}"


@pytest.mark.parametrize("kind", ["mirrored", "registered"])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_execs_match_model_other_accumulators(kind, stall):
    """tiny's EXEC unit into the accumulator it has on the iCEBreaker (mirrored); a fast
    clock's into the ECP5-85F's (registered bank outputs)."""
    config = preset("tiny").replace(sp_depth=64, acc_depth=32)
    if kind == "registered":
        config = config.replace(name="dim3-2stages", dim=3, product_stages=2, target_mhz=80.0)
    seed = 90 + int(10 * stall) + (kind == "registered")
    print(f"seed={seed} config={config.name} kind={kind} stall={stall}")
    rng = np.random.default_rng(seed)
    sp_rows = random_sp(config, rng)
    program = random_execs(config, rng, 14)
    acc, done, cause, _, _ = run_exec(config, sp_rows, program, seed=seed, stall=stall,
                                      **{kind: True})
    model, model_cause = model_exec(config, sp_rows, program)
    assert (cause, model_cause, done) == (ErrorCause.NONE, ErrorCause.NONE, len(program))
    assert np.array_equal(acc, model.acc), f"seed={seed}"


@pytest.mark.parametrize("mhz", [30.0, 80.0], ids=["held", "buffered"])
@pytest.mark.parametrize("weights_bank", [1, 0], ids=["other-bank", "same-bank"])
def test_full_rate_back_to_back(weights_bank, mhz):
    """EXECs back to back, the second with a new weight tile: its weights are read while
    the first tile's 16 activation rows stream, so the 48 rows enter the array in 48
    consecutive cycles, unless the weights sit in the bank the activations are read from
    (then the activation reader goes first and the swap waits ``dim`` cycles, one more
    when the scratchpad holds answers in its banks: the swap row, displaced by the weight
    reads, is read again)."""
    config = preset("tiny").replace(sp_depth=64, acc_depth=32, target_mhz=mhz)
    bubble = 0 if weights_bank else config.dim + Scratchpad.holds_answers_for(config)
    rng = np.random.default_rng(9)
    sp_rows = random_sp(config, rng)
    second = 32 * weights_bank + 4
    program = [exec_insn(0, 8, 0, 16), exec_insn(second, 24, 16, 16, accumulate=1),
               exec_insn(0, 8, 0, 16, preload=0, accumulate=1)]
    acc, done, cause, computing, (first, last) = run_exec(config, sp_rows, program, seed=9)
    model, _ = model_exec(config, sp_rows, program)
    assert np.array_equal(acc, model.acc) and done == 3 and computing == 48
    assert last - first + 1 == 48 + bubble, (first, last)


@pytest.mark.parametrize("insn, cause", [
    (exec_insn(0, 0, 0, 0), ErrorCause.MALFORMED),
    (exec_insn(61, 0, 0, 1), ErrorCause.SP_RANGE),
    (exec_insn(0, 60, 0, 5), ErrorCause.SP_RANGE),
    (exec_insn(0, 0, 30, 3), ErrorCause.ACC_RANGE),
])
def test_checks_stop_the_unit(insn, cause):
    config = preset("tiny").replace(sp_depth=64, acc_depth=32)
    sp_rows = random_sp(config, np.random.default_rng(4))
    program = [insn, exec_insn(0, 0, 0, 4)]
    acc, done, got, computing, _ = run_exec(config, sp_rows, program, seed=4)
    _, model_cause = model_exec(config, sp_rows, program)
    assert got == model_cause == cause
    assert done == 0 and computing == 0 and not acc.any()


def test_tag_too_narrow():
    """Only a tagged unit (``config.fast_clock``) needs the tag to fit."""
    with pytest.raises(ValueError, match=r"^tag_width must be at least 9 for acc_depth 256, "
                                         r"not 8$"):
        ExecUnit(preset("tiny").replace(tag_width=8, target_mhz=80.0))
    unit = ExecUnit(preset("tiny").replace(tag_width=1))
    unit._MustUse__silence = True  # only its property is looked at
    assert not unit.tagged


@pytest.mark.parametrize("mhz, registered", [(30.0, False), (80.0, False), (80.0, True)],
                         ids=["row-follows", "forwarded", "registered"])
def test_next_instruction_into_the_last_row(mhz, registered):
    """EXECs whose first accumulator row is the last row of the EXEC before them: at 30 MHz
    (the accumulator takes each row a cycle after its address) such a first activation row
    enters the array at least a cycle after the row before it (the accumulator's error flag
    tells, and so the run ends no sooner); at 80 MHz the accumulator forwards."""
    config = preset("tiny").replace(sp_depth=64, acc_depth=32, target_mhz=mhz)
    rng = np.random.default_rng(5)
    sp_rows = random_sp(config, rng)
    spans = []
    for acc_addrs in ([4, 4, 4, 7, 12], [4, 6, 8, 13, 19]):   # 3 such pairs, then none
        program = [exec_insn(0, 8, acc_addrs[0], 1),
                   *(exec_insn(0, act, acc, rows, preload=0, accumulate=1)
                     for act, acc, rows in zip([9, 10, 14, 20], acc_addrs[1:], [1, 4, 5, 2],
                                               strict=True))]
        acc, done, cause, computing, (first, last) = run_exec(config, sp_rows, program, seed=5,
                                                              registered=registered)
        model, _ = model_exec(config, sp_rows, program)
        assert np.array_equal(acc, model.acc) and cause == ErrorCause.NONE
        assert done == 5 and computing == 13
        spans.append(last - first + 1)
    assert spans[0] - spans[1] in (range(4) if mhz < 50 else [0]), spans

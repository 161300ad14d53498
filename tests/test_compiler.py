"""The GEMM compiler and driver on the functional model, and the model's error causes."""

import json
from dataclasses import replace

import numpy as np
import pytest

from hdl.config import TesseraConfig, preset
from hdl.isa import MAX_TOKENS, ErrorCause, Opcode
from sim.functional import AcceleratorError, AcceleratorModel, SystemMemory
from sw.assembler import Instruction
from sw.cli import main
from sw.compiler import compile_gemm, plan_gemm
from sw.driver import (
    Driver,
    ModelBackend,
    golden_gemm,
    random_gemm,
    random_requant_params,
    run,
)

#: Shapes: 1x1x1, primes, batch 1, M < dim, smaller and larger than dim and the scratchpad.
SHAPES = [(1, 1, 1), (2, 3, 5), (7, 11, 13), (1, 64, 33), (3, 4, 4), (4, 4, 4), (17, 33, 9),
          (300, 5, 3), (1, 1, 40), (64, 64, 64)]


def gemm_on_model(config, shape, seed, *, requant, **backend):
    rng = np.random.default_rng(seed)
    m, k, n = shape
    a, w = random_gemm(rng, m, k, n)
    params = random_requant_params(rng, n, k) if requant else None
    device = ModelBackend(config, **backend)
    result = run(Driver(device).gemm(a, w, params))
    return result, golden_gemm(config, a, w, params), device


def assert_same(got, want, context):
    bad = np.argwhere(got != want)
    assert not bad.size, (f"{context}: first mismatch at {tuple(bad[0])}: got "
                          f"{got[tuple(bad[0])]}, want {want[tuple(bad[0])]}")


@pytest.mark.parametrize("config", ["micro", "tiny", "small", "large"])
@pytest.mark.parametrize("requant", [False, True], ids=["int32", "requant"])
def test_gemm_shapes_match_golden(config, requant):
    config = preset(config)
    for i, shape in enumerate(SHAPES):
        if config.name == "micro" and shape[0] * shape[1] * shape[2] > 20_000:
            continue  # micro's 8-row memories make thousands of tiny instructions
        seed = 100 + i
        result, want, device = gemm_on_model(config, shape, seed, requant=requant)
        context = f"config={config.name} shape={shape} seed={seed} requant={requant}"
        assert_same(result.output, want, context)
        assert result.macs == shape[0] * shape[1] * shape[2]
        assert device.last_model.tokens_left == {}, context


def test_requant_outputs_spread():
    """The random parameters give a spread of int8 outputs, not only saturated ones (with a
    ReLU about half sit at the lower bound)."""
    result, want, _ = gemm_on_model(preset("tiny"), (64, 64, 64), 5, requant=True)
    assert_same(result.output, want, "seed=5")
    inside = (want > want.min()) & (want < want.max())
    assert len(np.unique(want)) > 50 and inside.mean() > 0.3


@pytest.mark.parametrize("schedule", range(6))
def test_any_schedule_and_one_entry_queues(schedule):
    """Random unit orders and queues of one instruction: same result, no deadlock."""
    config = preset("tiny")
    for shape in [(9, 13, 10), (150, 8, 6)]:
        result, want, _ = gemm_on_model(config, shape, schedule, requant=True,
                                        schedule=schedule, queue_depth=1)
        assert_same(result.output, want, f"schedule={schedule} shape={shape}")


def _program_without(program, index, flag):
    insn = program[index]
    return program[:index] + [replace(insn, **{flag: False})] + program[index + 1:]


def test_a_missing_token_is_a_race_random_schedules_find():
    """Dropping the 'buffer free' wait of a LOAD lets it overwrite a scratchpad half before
    the EXEC that reads it: some schedule gets a wrong answer."""
    config = preset("tiny")
    rng = np.random.default_rng(3)
    a, w = random_gemm(rng, 9, 20, 5)
    plan = plan_gemm(config, 9, 20, 5)
    program = compile_gemm(plan)
    victim = next(i for i, insn in enumerate(program) if insn.pop_next)
    broken = _program_without(program, victim, "pop_next")
    wrong = 0
    for schedule in range(20):
        memory = SystemMemory(1 << 16)
        memory.write(plan.a_addr, plan.pack_a(a))
        memory.write(plan.w_addr, plan.pack_w(w))
        model = AcceleratorModel(config, memory, schedule=schedule)
        model.run(broken)
        got = plan.unpack_output(memory.read(plan.c_addr, plan.m * plan.c_stride))
        wrong += not np.array_equal(got, golden_gemm(config, a, w))
    assert wrong, "no schedule exposed the race"


def test_plan_layout():
    plan = plan_gemm(preset("small"), 10, 17, 9, requant=True, base=0x100)
    # small: 8 lanes in a 64-bit beat; K = 17 -> 3 tiles, N = 9 -> 2 tiles.
    assert (plan.k_tiles, plan.n_tiles, plan.a_stride, plan.w_stride) == (3, 2, 24, 16)
    assert plan.a_addr == 0x100
    assert plan.w_addr == 0x100 + 10 * 24
    assert plan.c_addr == plan.w_addr + 24 * 16
    assert plan.params_addr == plan.c_addr + 10 * 16
    assert plan.end_addr == plan.params_addr + 2 * 144


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(m=0, k=1, n=1), ValueError, r"^m must be a positive integer, not 0$"),
    (dict(m=1, k=1.5, n=1), TypeError, r"^k must be an integer, not 1\.5$"),
    (dict(m=1, k=1, n=1, base=2), ValueError,
     r"^base must be aligned to the 4-byte beat, not 0x2$"),
])
def test_plan_rejects(kwargs, error, message):
    with pytest.raises(error, match=message):
        plan_gemm(preset("tiny"), **kwargs)


def test_plan_fits_the_dma_address_space():
    """tiny's DMA reaches 64 KiB (bus_addr_width 16): a plan ending there is taken, one byte
    further is refused with the sizes named."""
    tiny = preset("tiny")
    plan = plan_gemm(tiny, 128, 128, 128, requant=True)
    base = (1 << 16) - plan.end_addr
    assert plan_gemm(tiny, 128, 128, 128, requant=True, base=base).end_addr == 1 << 16
    with pytest.raises(ValueError, match=r"^a 128x128x128 GEMM at base 0x[0-9a-f]+ needs system "
                                         r"memory up to 0x10004; the tiny config's DMA reaches "
                                         r"0x10000 \(bus_addr_width=16\)$"):
        plan_gemm(tiny, 128, 128, 128, requant=True, base=base + 4)
    assert plan_gemm(preset("small"), 256, 256, 256).end_addr > 1 << 16


# --- The functional model's error causes: one program each. ---

def load(sp_addr=0, rows=1, dram_addr=0, dram_stride=4, **flags):
    return Instruction(Opcode.LOAD, dict(sp_addr=sp_addr, rows=rows, dram_addr=dram_addr,
                                         dram_stride=dram_stride), **flags)


def exec_(weight_addr=0, act_addr=0, acc_addr=0, rows=1, preload=1, accumulate=0, **flags):
    return Instruction(Opcode.EXEC, dict(weight_addr=weight_addr, act_addr=act_addr,
                                         acc_addr=acc_addr, rows=rows, preload=preload,
                                         accumulate=accumulate), **flags)


def store(acc_addr=0, rows=1, dest=0, dram_stride=16, mode=1, to_sp=0, **flags):
    return Instruction(Opcode.STORE, dict(acc_addr=acc_addr, rows=rows, dest=dest,
                                          dram_stride=dram_stride, mode=mode, to_sp=to_sp),
                       **flags)


END = Instruction(Opcode.END)


@pytest.mark.parametrize("program, cause, index", [
    ([load(rows=0), END], ErrorCause.MALFORMED, 0),
    ([load(sp_addr=510, rows=3), END], ErrorCause.SP_RANGE, 0),
    ([load(dram_addr=2), END], ErrorCause.DMA_ALIGN, 0),
    ([load(dram_stride=6, rows=2), END], ErrorCause.DMA_ALIGN, 0),
    ([load(dram_addr=0x10000 - 4, rows=2), END], ErrorCause.DMA_READ, 0),
    ([exec_(weight_addr=509), END], ErrorCause.SP_RANGE, 0),
    ([exec_(act_addr=512), END], ErrorCause.SP_RANGE, 0),
    ([exec_(acc_addr=256), END], ErrorCause.ACC_RANGE, 0),
    ([store(acc_addr=255, rows=2), END], ErrorCause.ACC_RANGE, 0),
    ([store(to_sp=1, mode=1), END], ErrorCause.MALFORMED, 0),
    ([store(to_sp=1, mode=0, dest=512), END], ErrorCause.SP_RANGE, 0),
    ([store(dest=0x10000), END], ErrorCause.DMA_WRITE, 0),
    ([Instruction(Opcode.CONFIG, dict(dram_addr=0x20)), END], ErrorCause.MALFORMED, 0),
    ([exec_(pop_prev=True), END], ErrorCause.TOKEN_UNDERFLOW, 0),
    ([load(), exec_(pop_prev=True), END], ErrorCause.TOKEN_UNDERFLOW, 1),
    ([load()], ErrorCause.MALFORMED, 1),
    ([load(push_next=True)] * (MAX_TOKENS + 1) + [END], ErrorCause.TOKEN_OVERFLOW, MAX_TOKENS),
])
def test_model_error_causes(program, cause, index):
    memory = SystemMemory(1 << 16)
    # A parameter block with shift 31 (out of range) at 0x20 for the CONFIG case.
    memory.write(0x20 + 8, (31).to_bytes(4, "little", signed=True))
    with pytest.raises(AcceleratorError) as error:
        AcceleratorModel(preset("tiny"), memory).run(program)
    assert (error.value.cause, error.value.index) == (cause, index), str(error.value)


def test_model_takes_max_tokens():
    """MAX_TOKENS tokens given and then taken: no error."""
    program = [load(push_next=True)] * MAX_TOKENS + [exec_(pop_prev=True)] * MAX_TOKENS + [END]
    AcceleratorModel(preset("tiny"), SystemMemory(1 << 16)).run(program)


def test_model_needs_int8():
    with pytest.raises(ValueError, match=r"needs 8-bit activations and weights, not 4 and 8"):
        AcceleratorModel(TesseraConfig(act_width=4), SystemMemory(16))


def test_store_to_scratchpad_feeds_the_next_layer():
    """Two chained layers on chip: STORE to_sp writes requantized rows that a second EXEC
    uses as activations; equals two golden GEMMs."""
    config = preset("tiny")
    rng = np.random.default_rng(11)
    a, w1 = random_gemm(rng, 4, 4, 4)
    _, w2 = random_gemm(rng, 4, 4, 4)
    params = random_requant_params(rng, 4, 4)
    plan = plan_gemm(config, 4, 4, 4, requant=True)
    memory = SystemMemory(1 << 16)
    memory.write(plan.a_addr, plan.pack_a(a))
    memory.write(plan.w_addr, plan.pack_w(w1))
    memory.write(plan.params_addr, plan.pack_params(params))
    w2_addr = plan.end_addr
    memory.write(w2_addr, plan.pack_w(w2))
    program = [
        load(sp_addr=0, rows=4, dram_addr=plan.w_addr), load(sp_addr=4, rows=4),
        Instruction(Opcode.CONFIG, dict(dram_addr=plan.params_addr)),
        exec_(weight_addr=0, act_addr=4, rows=4),
        store(rows=4, dest=8, mode=0, to_sp=1),
        load(sp_addr=12, rows=4, dram_addr=w2_addr),
        exec_(weight_addr=12, act_addr=8, acc_addr=4, rows=4),
        store(acc_addr=4, rows=4, dest=plan.c_addr, dram_stride=16, mode=1),
        END,
    ]
    AcceleratorModel(config, memory).run(program)
    hidden = golden_gemm(config, a, w1, params)
    want = golden_gemm(config, hidden, w2)
    got = np.frombuffer(memory.read(plan.c_addr, 64), dtype="<i4").reshape(4, 4)
    assert_same(got, want, "seed=11")


# --- tessera gemm (the CLI contract) on the model backend. ---

def test_cli_gemm_json(capsys):
    assert main(["gemm", "--m", "5", "--k", "7", "--n", "3", "--seed", "4", "--requant",
                 "--backend", "model", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["match"] is True and report["macs"] == 105
    assert report["cycles"] is None and report["utilization"] is None
    assert (report["backend"], report["config"], report["seed"]) == ("model", "tiny", 4)


def test_cli_gemm_mismatch_exits_nonzero(capsys, monkeypatch):
    import sw.driver

    def off_by_one(config, a, w, params=None):
        want = golden_gemm(config, a, w, params)
        want[1, 2] += 1
        return want

    monkeypatch.setattr(sw.driver, "golden_gemm", off_by_one)
    assert main(["gemm", "--m", "3", "--k", "3", "--n", "3", "--json"]) == 1
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["match"] is False
    mismatch = report["first_mismatch"]
    assert (mismatch["row"], mismatch["column"]) == (1, 2)
    assert mismatch["expected"] == mismatch["got"] + 1


def test_both_schedules_are_covered():
    """The shapes above run both schedules on tiny: A resident (loaded once, only weight
    tiles move) and A streamed with the weights; resident moves fewer bytes."""
    config = preset("tiny")
    modes = {plan_gemm(config, *shape).a_resident for shape in SHAPES}
    assert modes == {True, False}
    resident = compile_gemm(plan_gemm(config, 16, 64, 64))
    assert plan_gemm(config, 16, 64, 64).a_resident
    loads = [insn for insn in resident if insn.opcode == Opcode.LOAD]
    # 16 A loads once, then one weight tile per (depth tile, column tile) group.
    assert len(loads) == 16 + 16 * 16

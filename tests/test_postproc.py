"""Amaranth-simulator tests of the post-processing block, and of its golden model."""

import math

import numpy as np
import pytest
from amaranth.hdl import Fragment, ResetInserter, Signal
from amaranth.sim import Simulator

from hdl.config import TesseraConfig, preset
from hdl.postproc import PostMode, PostProcess
from sim.model import (
    INT32_MAX,
    INT32_MIN,
    SHIFT_MAX,
    SHIFT_MIN,
    PostProcessModel,
    RequantParams,
    activation_range,
    multiply_by_quantized_multiplier,
    postprocess_rows,
    quantize_multiplier,
    requantize,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from sim.streams import idle_cycles, stream_get, stream_put
from sim.tb_postproc import (
    PostProcWorkload,
    check_outputs,
    make_postproc_workload,
    port_beats,
    random_accumulators,
)

CLOCK = 1e-6


def run_postproc(config, workload, *, seed, stall_in=0.0, stall_out=0.0, hold_outputs=0,
                 max_cycles=None, dut=None):
    """Stream ``workload`` through ``dut`` (by default a new PostProcess); returns (dut,
    outputs, accept cycles, cycle of the first output, cycles with ``params.ready`` high)."""
    dut = dut or PostProcess(config)
    rng = np.random.default_rng(seed)
    outputs, accepted, params_ready, first_output, cycle = [], [], [], [], [0]

    async def params(ctx):
        for beat in workload.param_beats:
            await stream_put(ctx, dut.params, beat, idle=idle_cycles(rng, stall_in))

    async def rows(ctx):
        for row, mode, swap, tag in workload.rows:
            await stream_put(ctx, dut.acc_rows,
                             {"row": row, "mode": PostMode[mode.upper()], "swap": swap,
                              "tag": tag}, idle=idle_cycles(rng, stall_in))

    async def consumer(ctx):
        for _ in range(hold_outputs):
            await ctx.tick()
        for _ in workload.expected:
            payload = await stream_get(ctx, dut.out_rows, idle=idle_cycles(rng, stall_out))
            lanes = payload.row.int8 if payload.mode == PostMode.REQUANT else payload.row.int32
            outputs.append(([int(v) for v in lanes], payload.mode.name.lower(),
                            int(payload.tag)))

    async def monitor(ctx):
        async for _, _, valid, ready, p_ready, o_valid in ctx.tick().sample(
                dut.acc_rows.valid, dut.acc_rows.ready, dut.params.ready, dut.out_rows.valid):
            if valid and ready:
                accepted.append(cycle[0])
            if p_ready:
                params_ready.append(cycle[0])
            if o_valid and not first_output:
                first_output.append(cycle[0])
            cycle[0] += 1

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(params)
    sim.add_testbench(rows)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    if max_cycles is None:
        max_cycles = (hold_outputs + max(8, 2 * config.postproc_row_cycles) * len(workload.rows)
                      + 8 * len(workload.param_beats) + 200)
    sim.run_until(CLOCK * max_cycles)
    return dut, outputs, accepted, (first_output or [None])[0], params_ready


# --- The block against the golden model. ---

#: (dim, postproc_lanes, postproc_multiply_cycles): one row per cycle, lane groups taking 2,
#: 3 or 4 cycles a row, and serial multiplies of 16-, 8- and 1-bit digits.
SHAPES = [(1, None, 1), (2, None, 1), (3, None, 1), (4, None, 1), (4, 1, 1), (4, 2, 1),
          (3, 1, 1), (6, 2, 1), (2, None, 2), (4, 1, 4), (3, 1, 32)]


def _shape_id(dim, lanes, multiply_cycles):
    serial = f"-serial{multiply_cycles}" if multiply_cycles > 1 else ""
    return f"dim{dim}-lanes{lanes or dim}{serial}"


@pytest.mark.parametrize("dim, lanes, multiply_cycles", SHAPES,
                         ids=[_shape_id(*shape) for shape in SHAPES])
@pytest.mark.parametrize("stalls", [0.0, 0.3], ids=["idle", "stalls"])
def test_postproc_matches_model(dim, lanes, multiply_cycles, stalls):
    seed = 3000 + 10 * dim + (lanes or 0) + 100 * int(stalls * 10) + 1000 * (multiply_cycles > 1)
    config = TesseraConfig(dim=dim, postproc_lanes=lanes,
                           postproc_multiply_cycles=multiply_cycles)
    print(f"seed={seed} dim={dim} postproc_lanes={lanes} "
          f"postproc_multiply_cycles={multiply_cycles} stalls={stalls}")
    rng = np.random.default_rng(seed)
    workload = make_postproc_workload(config, rng, n_tiles=14, leading_rows=2)
    _, outputs, _, _, _ = run_postproc(config, workload, seed=seed, stall_in=stalls,
                                       stall_out=stalls)
    check_outputs(outputs, workload, f"seed={seed} dim={dim} lanes={lanes} "
                                     f"multiply_cycles={multiply_cycles} stalls={stalls}")


@pytest.mark.parametrize("multiply_cycles", [4, 8])
def test_tile_per_row_with_slow_output(multiply_cycles):
    """A parameter set (zero point, activation bounds) per row while the consumer is slow:
    results waiting for the output row keep their own set's bounds when the next set is
    swapped in (serial multiply, parameters in block RAM)."""
    seed = 77 + multiply_cycles
    config = TesseraConfig(dim=4, postproc_lanes=1, postproc_multiply_cycles=multiply_cycles)
    print(f"seed={seed} postproc_multiply_cycles={multiply_cycles}")
    rng = np.random.default_rng(seed)
    workload = make_postproc_workload(config, rng, n_tiles=24, rows_per_tile=1)
    _, outputs, _, _, _ = run_postproc(config, workload, seed=seed, stall_in=0.1,
                                       stall_out=0.7)
    check_outputs(outputs, workload, f"seed={seed} multiply_cycles={multiply_cycles}")


@pytest.mark.parametrize("variant", [
    dict(acc_width=16),  # narrower accumulators are sign-extended
    dict(multiplier="lut"),  # shift-and-add partial products instead of `*`
    dict(multiplier="dsp", max_dsp=3),
    dict(acc_width=16, postproc_multiply_cycles=4),
    dict(multiplier="lut", postproc_multiply_cycles=8),  # shift-and-add digit products
], ids=["acc16", "lut", "dsp", "acc16-serial4", "lut-serial8"])
def test_postproc_variants(variant):
    seed = 88
    config = TesseraConfig(dim=3, **variant)
    print(f"seed={seed} config={config}")
    rng = np.random.default_rng(seed)
    workload = make_postproc_workload(config, rng, n_tiles=10)
    _, outputs, _, _, _ = run_postproc(config, workload, seed=seed, stall_in=0.2,
                                       stall_out=0.2)
    check_outputs(outputs, workload, f"seed={seed} {variant}")


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_postproc_requant_only(per_channel):
    """Every row requantized, one quantization granularity, full rate."""
    seed = 4100 + per_channel
    config = TesseraConfig(dim=4)
    print(f"seed={seed} per_channel={per_channel}")
    rng = np.random.default_rng(seed)
    workload = make_postproc_workload(config, rng, n_tiles=12, modes=("requant",),
                                      per_channel=per_channel)
    _, outputs, _, _, _ = run_postproc(config, workload, seed=seed)
    check_outputs(outputs, workload, f"seed={seed} per_channel={per_channel}")


def _edge_workload(config):
    """Every corner combination the datapath has, in per-channel tiles: each column of a tile
    has its own (multiplier, shift) pair, and every corner accumulator meets every column."""
    dim = config.dim
    model = PostProcessModel(config)
    accs = [INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -3, -2, -1, 0, 1, 2, 3, (1 << 30) + 1,
            INT32_MAX - 1, INT32_MAX]
    pairs = [(m, s) for m in [INT32_MIN, 0, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX]
             for s in [SHIFT_MIN, SHIFT_MIN + 1, -2, -1, 0, 1, 2, SHIFT_MAX - 1, SHIFT_MAX]]
    pairs += pairs[:-len(pairs) % dim]  # whole tiles
    biases = [INT32_MIN, 0, INT32_MAX, -1]
    outputs = [(-128, -128, 127), (127, -128, 127), (0, 0, 6), (5, 5, 127)]  # zp, act bounds
    beats, rows, expected = [], [], []
    for group in range(0, len(pairs), dim):
        columns = pairs[group:group + dim]
        first = group // dim % len(outputs)
        for zp, lo, hi in (outputs * 2)[first:first + 2]:
            params = RequantParams([biases[(group + n) % len(biases)] for n in range(dim)],
                                   [m for m, _ in columns], [s for _, s in columns], zp, lo, hi)
            for beat in model.param_beats(params):
                model.load_param(**beat)
            beats += port_beats(config, model.param_beats(params))
            for i in range(len(accs)):
                acc = [accs[(i + n) % len(accs)] for n in range(dim)]
                rows.append((acc, "requant", i == 0, group))
                expected.append(model.row(acc, "requant", swap=i == 0, tag=group))
    return PostProcWorkload(beats, rows, expected)


@pytest.mark.parametrize("lanes, multiply_cycles", [(None, 1), (1, 4), (None, 2), (None, 8)],
                         ids=["pipelined", "serial4-lanes1", "serial2", "serial8"])
def test_postproc_edge_values(lanes, multiply_cycles):
    """INT32_MIN/MAX accumulators and biases, multipliers at 0, 2**30 and 2**31 - 1 (and
    INT32_MIN, the high multiply's one saturating case), shifts at both ends, zero points
    and activation bounds at the int8 ends; with the pipelined and serial multiplies."""
    config = TesseraConfig(dim=4, postproc_lanes=lanes, postproc_multiply_cycles=multiply_cycles)
    workload = _edge_workload(config)
    print(f"{len(workload.rows)} edge rows, postproc_lanes={lanes} "
          f"postproc_multiply_cycles={multiply_cycles}")
    _, outputs, _, _, _ = run_postproc(config, workload, seed=0)
    check_outputs(outputs, workload, f"edge values, multiply_cycles={multiply_cycles}")


# --- Timing and flow control. ---

def _latency_base(multiply_cycles, row_slots=False):
    """Documented latency less ``row_cycles``: pipelined (one more with row slots: more than
    one lane group), serial, serial with the parameters in block RAM (3+ cycles)."""
    return 10 + row_slots if multiply_cycles == 1 else 6 if multiply_cycles < 3 else 5


@pytest.mark.parametrize("dim, lanes, multiply_cycles, row_cycles", [
    (1, None, 1, 1), (2, None, 1, 1), (4, None, 1, 1), (4, 1, 1, 4), (4, 2, 1, 2), (6, 2, 1, 3),
    (2, None, 2, 2), (4, 1, 4, 16), (3, 1, 8, 24)])
def test_full_rate_and_latency(dim, lanes, multiply_cycles, row_cycles):
    """Parameter sets switched every min_tile_rows rows: one row every ``row_cycles`` cycles
    (``dim / postproc_lanes * postproc_multiply_cycles``), no bubble, and the first output
    appears exactly ``latency`` = 10 + ``row_cycles`` cycles after the first row (11 + with
    row slots: more than one lane group; 6 +
    ``row_cycles`` with a serial multiply, 5 with its parameters in block RAM)."""
    seed = 5000 + 10 * dim + (lanes or 0) + 100 * (multiply_cycles - 1)
    print(f"seed={seed} dim={dim} postproc_lanes={lanes} "
          f"postproc_multiply_cycles={multiply_cycles}")
    config = TesseraConfig(dim=dim, postproc_lanes=lanes,
                           postproc_multiply_cycles=multiply_cycles)
    rng = np.random.default_rng(seed)
    dut = PostProcess(config)
    assert dut.row_cycles == row_cycles
    workload = make_postproc_workload(config, rng, n_tiles=6, rows_per_tile=dut.min_tile_rows)
    _, outputs, accepted, first_output, _ = run_postproc(config, workload, seed=seed, dut=dut)
    check_outputs(outputs, workload, f"seed={seed} dim={dim} lanes={lanes}")
    first = accepted[0]
    assert accepted == list(range(first, first + row_cycles * len(workload.rows), row_cycles)), (
        f"bubbles in the row stream: accepted at {accepted}")
    start = first - dut.accept_delay
    slots = row_cycles > multiply_cycles
    assert first_output - start == dut.latency == (_latency_base(multiply_cycles, slots)
                                                   + row_cycles)


@pytest.mark.parametrize("lanes, multiply_cycles", [(None, 1), (1, 1), (1, 4)])
def test_back_pressure_loses_nothing(lanes, multiply_cycles):
    """Outputs held off for a long time: the block stops taking rows, then drains in order."""
    seed = 41
    config = TesseraConfig(dim=2, postproc_lanes=lanes, postproc_multiply_cycles=multiply_cycles)
    rng = np.random.default_rng(seed)
    workload = make_postproc_workload(config, rng, n_tiles=8, rows_per_tile=6)
    dut, outputs, accepted, _, _ = run_postproc(config, workload, seed=seed, hold_outputs=100)
    check_outputs(outputs, workload, f"seed={seed}")
    accepted_while_held = len([c for c in accepted if c < 100])
    assert accepted_while_held == dut.buffer_depth, f"accepted {accepted_while_held} rows"


@pytest.mark.parametrize("multiply_cycles, tile_word", [(1, False), (4, False), (4, True)],
                         ids=["beats", "words", "words-tile"])
def test_params_wait_for_swap_and_pipeline(multiply_cycles, tile_word):
    """A completed set holds ``params.ready`` low until its swap row, and for param_hold
    cycles after it (the beat presented right after the swap is accepted param_hold cycles
    after it; by word 1, a word of the tile's record tile_hold cycles after it); a swap row
    waits for a completed set."""
    config = TesseraConfig(dim=2, postproc_multiply_cycles=multiply_cycles)
    dut = PostProcess(config)
    log = []

    async def bench(ctx):
        ctx.set(dut.out_rows.ready, 1)
        # A swap row before any set is complete waits.
        ctx.set(dut.acc_rows.payload, {"row": [1, 2], "mode": PostMode.ACC, "swap": 1,
                                       "tag": 7})
        ctx.set(dut.acc_rows.valid, 1)
        for _ in range(5):
            await ctx.tick()
            assert not ctx.get(dut.acc_rows.ready)
        ctx.set(dut.acc_rows.valid, 0)
        for beat in port_beats(config, [{"column": column, "bias": 0, "multiplier": 0,
                                         "shift": 0, "last": column == 1}
                                        for column in range(2)]):
            await stream_put(ctx, dut.params, beat)
        for _ in range(3):
            assert not ctx.get(dut.params.ready)
            await ctx.tick()
        await stream_put(ctx, dut.acc_rows, {"row": [1, 2], "mode": PostMode.ACC, "swap": 1,
                                             "tag": 7})
        beat = port_beats(config, [{"column": 0, "bias": 0, "multiplier": 0, "shift": 0,
                                    "last": 0}])[0]
        ctx.set(dut.params.payload, dict(index=4 * 2, value=0, last=0) if tile_word else beat)
        ctx.set(dut.params.valid, 1)
        for _ in range(dut.tile_hold + 3):
            log.append(ctx.get(dut.params.ready))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run_until(CLOCK * 100)
    # The swap row started accept_delay cycles before stream_put saw it accepted.
    if multiply_cycles >= 4:
        assert dut.param_hold == 1
    hold = (dut.tile_hold if tile_word else dut.param_hold) - 1 - dut.accept_delay
    # Then one beat (or word) a cycle.
    assert log == [0] * hold + [1] * (len(log) - hold), log


@pytest.mark.parametrize("multiply_cycles", [1, 4])
def test_reset_parameters_give_zero(multiply_cycles):
    """Rows before the first swap use the all-zero reset parameters: int8 zero, int32 raw."""
    config = TesseraConfig(dim=3, postproc_multiply_cycles=multiply_cycles)
    rows = [([INT32_MAX, -5, 12345], "requant"), ([INT32_MIN, 7, 0], "acc"),
            ([9, -9, 1], "acc_bias")]
    workload = PostProcWorkload(
        [], [(r, mode, False, i) for i, (r, mode) in enumerate(rows)],
        [([0, 0, 0], "requant", 0), ([INT32_MIN, 7, 0], "acc", 1), ([9, -9, 1], "acc_bias", 2)])
    _, outputs, _, _, _ = run_postproc(config, workload, seed=0)
    check_outputs(outputs, workload, "reset")


def test_param_ram_contents_not_relied_on(monkeypatch):
    """With the parameters in block RAM, rows before the first swap give the all-zero reset
    parameters whatever the RAM holds at start (Icarus and an ASIC start it as X; here every
    bit is set)."""
    import hdl.postproc as postproc
    real = postproc.Memory

    def filled(*, shape, depth, init, **kwargs):
        return real(shape=shape, depth=depth, init=[(1 << shape.width) - 1] * depth, **kwargs)

    monkeypatch.setattr(postproc, "Memory", filled)
    config = TesseraConfig(dim=4, postproc_lanes=1, postproc_multiply_cycles=4)
    rows = [([INT32_MAX, -5, 12345, 3], "requant"), ([INT32_MIN, 7, 0, -1], "acc"),
            ([9, -9, 1, 2], "acc_bias")]
    workload = PostProcWorkload(
        [], [(r, mode, False, i) for i, (r, mode) in enumerate(rows)],
        [([0] * 4, "requant", 0), ([INT32_MIN, 7, 0, -1], "acc", 1),
         ([9, -9, 1, 2], "acc_bias", 2)])
    _, outputs, _, _, _ = run_postproc(config, workload, seed=0)
    check_outputs(outputs, workload, "RAM of ones")


@pytest.mark.parametrize("multiply_cycles", [1, 4])
def test_reset_after_use_gives_zero(multiply_cycles):
    """A reset after both parameter sets were filled and swapped in: rows before the next
    swap use all-zero parameters again (also with the parameters in block RAM, which a reset
    does not clear)."""
    config = TesseraConfig(dim=2, postproc_multiply_cycles=multiply_cycles)
    dut = PostProcess(config)
    rst = Signal()
    top = ResetInserter(rst)(dut)
    out = []

    async def bench(ctx):
        ctx.set(dut.out_rows.ready, 1)
        for tile in range(2):
            for beat in port_beats(config, [{
                    "column": column, "bias": 1000 + column, "multiplier": 1 << 30,
                    "shift": -1 - tile, "zero_point": 3, "act_min": -100, "act_max": 100,
                    "last": column == 1} for column in range(2)]):
                await stream_put(ctx, dut.params, beat)
            await stream_put(ctx, dut.acc_rows, {"row": [100, -50], "mode": PostMode.REQUANT,
                                                 "swap": 1, "tag": tile})
            out.append(await stream_get(ctx, dut.out_rows))
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        for mode in (PostMode.REQUANT, PostMode.ACC_BIAS):
            await stream_put(ctx, dut.acc_rows, {"row": [100, -50], "mode": mode, "swap": 0,
                                                 "tag": 5})
            out.append(await stream_get(ctx, dut.out_rows))

    sim = Simulator(top)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run_until(CLOCK * 400)
    assert len(out) == 4
    assert [int(v) for v in out[0].row.int8] != [0, 0]  # the sets were in use
    assert [int(v) for v in out[2].row.int8] == [0, 0]
    assert [int(v) for v in out[3].row.int32] == [100, -50]


def test_inverted_bounds_follow_tflite_order():
    """act_min > act_max (which the host check refuses) still gives TFLite's
    min(max(z, act_min), act_max): act_max, whatever z."""
    config = TesseraConfig(dim=2)
    dut = PostProcess(config)
    out = []

    async def bench(ctx):
        ctx.set(dut.out_rows.ready, 1)
        for column in range(2):
            await stream_put(ctx, dut.params, {
                "column": column, "bias": 0, "multiplier": 1 << 30, "shift": 1,
                "zero_point": 0, "act_min": 10, "act_max": -10, "last": column == 1})
        for row in ([-100, 0], [5, 100]):
            await stream_put(ctx, dut.acc_rows, {"row": row, "mode": PostMode.REQUANT,
                                                 "swap": row[0] == -100, "tag": 0})
        for _ in range(2):
            payload = await stream_get(ctx, dut.out_rows)
            out.append([int(v) for v in payload.row.int8])

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run_until(CLOCK * 100)
    assert out == [[-10, -10], [-10, -10]]


@pytest.mark.parametrize("name", ["micro", "tiny", "small", "large", "asic"])
def test_elaborates_for_presets(name):
    config = preset(name)
    dut = PostProcess(config)
    Fragment.get(dut, None)
    assert dut.row_cycles == (config.dim // (config.postproc_lanes or config.dim)
                              * config.postproc_multiply_cycles)
    slots = dut.row_cycles > config.postproc_multiply_cycles
    assert dut.latency == (_latency_base(config.postproc_multiply_cycles, slots)
                           + dut.row_cycles)
    if config.postproc_multiply_cycles == 1:
        assert dut.buffer_depth == -(-(dut.latency + 1) // dut.row_cycles)


def test_acc_width_too_wide():
    with pytest.raises(ValueError, match=r"^PostProcess needs acc_width of at most 32, not 48$"):
        PostProcess(TesseraConfig(acc_width=48))
    # The output row goes by beats of one lane group only (landing moves it alike), which
    # must hold an int8 row.
    two_lanes = preset("tiny").replace(postproc_lanes=2)
    with pytest.raises(ValueError, match=r"^out_beat_bits must be a lane group's 64 bits "
                                         r"\(32 x postproc lanes\) and hold an int8 row "
                                         r"\(32 bits\), not 32$"):
        PostProcess(two_lanes, out_beat_bits=32)
    dim8 = preset("tiny").replace(dim=8)
    with pytest.raises(ValueError, match=r"^out_beat_bits must be a lane group's 32 bits "
                                         r"\(32 x postproc lanes\) and hold an int8 row "
                                         r"\(64 bits\), not 32$"):
        PostProcess(dim8, out_beat_bits=32)
    from hdl.store_unit import StoreUnit
    for config, beat_bits in ((preset("tiny"), 32), (two_lanes, None)):  # None: a beat select
        unit = StoreUnit(config)
        unit._MustUse__silence = unit.postproc._MustUse__silence = True  # inspected, not built
        assert unit.postproc.out_beat_bits == beat_bits


# --- The golden model's arithmetic against a literal transcription of the C++. ---

def _c_div(a, b):
    """C's integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _srdhm_c(a, b):
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _c_div(ab + nudge, 1 << 31)


def _rdbpot_c(x, exponent):
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def test_model_matches_gemmlowp_transcription():
    seed = 6000
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    a = random_accumulators(rng, 20000)
    b = random_accumulators(rng, 20000)
    b[:1000] = INT32_MIN
    a[:10] = INT32_MIN
    e = rng.integers(0, 32, size=20000)
    high = saturating_rounding_doubling_high_mul(a, b)
    divided = rounding_divide_by_pot(a, e)
    for i in range(len(a)):
        assert high[i] == _srdhm_c(int(a[i]), int(b[i])), (seed, i, a[i], b[i])
        assert divided[i] == _rdbpot_c(int(a[i]), int(e[i])), (seed, i, a[i], e[i])


def test_model_ties_and_saturation():
    # High multiply: ties round up (towards +inf), also for negative products.
    assert list(saturating_rounding_doubling_high_mul([1, -1, 3, -3], 1 << 30)) == [1, 0, 2, -1]
    # Divide by a power of two: ties away from zero.
    assert list(rounding_divide_by_pot([1, -1, 3, -3, 5, -5], 1)) == [1, -1, 2, -2, 3, -3]
    # The left shift saturates where C++ would overflow.
    assert multiply_by_quantized_multiplier(1 << 20, 1 << 30, 11) == INT32_MAX // 2 + 1
    assert multiply_by_quantized_multiplier(-(1 << 20), 1 << 30, 11) == INT32_MIN // 2
    assert multiply_by_quantized_multiplier(-2, INT32_MAX, SHIFT_MAX) == INT32_MIN + 1
    # acc + bias wraps; y + zero_point does not.
    assert requantize(INT32_MAX, 1, 1 << 30, -23, 0, -128, 127) == -128
    assert requantize(INT32_MAX, 0, INT32_MAX, 0, 127, -128, 127) == 127
    # The clamp applies act_min first, then act_max (TFLite's order).
    assert postprocess_rows([[5]], RequantParams([0], [1 << 30], [1], 0, -128, 127))[0][0] == 5


@pytest.mark.parametrize("scale, expected", [
    (0.0, (0, 0)),
    (1.0, (1 << 30, 1)),
    (0.5, (1 << 30, 0)),
    (0.75, (3 << 29, 0)),
    (2.0 ** -31, (1 << 30, -30)),
    (2.0 ** -32, (1 << 30, -31)),
    (2.0 ** -33, (0, 0)),  # shift -32: flushed to zero
    (2.0 ** 29, (1 << 30, 30)),
    ((1 - 2.0 ** -40) * 2.0 ** 29, (1 << 30, 30)),  # rounds to 2**31: halved, shift + 1
    ((1 - 2.0 ** -40) * 0.5, (1 << 30, 0)),
    (math.pi / 4, (1686629713, 0)),
    (0.5 + 2.0 ** -33, (1 << 30, 0)),  # a quarter of the Q31 lsb: down
    (0.5 + 2.0 ** -32, ((1 << 30) + 1, 0)),  # a tie: away from zero
    (0.5 + 3 * 2.0 ** -32, ((1 << 30) + 2, 0)),
])
def test_quantize_multiplier(scale, expected):
    assert quantize_multiplier(scale) == expected
    multiplier, shift = expected
    if multiplier:
        assert abs(multiplier * 2.0 ** (shift - 31) / scale - 1) <= 2.0 ** -31


def test_quantize_multiplier_rejects():
    with pytest.raises(ValueError, match=r"^scale must be less than 2\*\*30 \(a shift of at "
                                         r"most 30\), not 1073741824\.0 \(shift 31\)$"):
        quantize_multiplier(2.0 ** 30)
    with pytest.raises(ValueError, match=r"^scale must be less than 2\*\*30 \(a shift of at "
                                         r"most 30\), not 1073741823\.999\d* \(shift 31\)$"):
        quantize_multiplier((1 - 2.0 ** -40) * 2.0 ** 30)  # the mantissa rounds up to 2**31
    with pytest.raises(ValueError, match=r"^scale must be a finite non-negative number, "
                                         r"not -0\.5$"):
        quantize_multiplier(-0.5)
    with pytest.raises(ValueError, match=r"^scale must be a finite non-negative number, "
                                         r"not inf$"):
        quantize_multiplier(math.inf)
    with pytest.raises(TypeError, match=r"^scale must be a real number, not '1'$"):
        quantize_multiplier("1")


def test_requant_params_reject():
    with pytest.raises(ValueError, match=r"^shift must lie in \[-31, 30\], not 31$"):
        RequantParams([0], [0], [31])
    with pytest.raises(ValueError, match=r"^shift must lie in \[-31, 30\], not -32$"):
        RequantParams([0], [0], [-32])
    with pytest.raises(ValueError, match=r"^multiplier must lie in \[-2147483648, 2147483647\], "
                                         r"not 2147483648$"):
        RequantParams([0], [1 << 31], [0])
    with pytest.raises(ValueError, match=r"^bias must lie in \[-2147483648, 2147483647\], "
                                         r"not -2147483649$"):
        RequantParams([INT32_MIN - 1], [0], [0])
    with pytest.raises(TypeError, match=r"^shift must be an integer, not 1\.0$"):
        RequantParams([0], [0], [1.0])
    with pytest.raises(ValueError, match=r"^zero_point must lie in \[-128, 127\], not 128$"):
        RequantParams([0], [0], [0], zero_point=128)
    with pytest.raises(ValueError, match=r"^act_min must not exceed act_max \(3\), not 4$"):
        RequantParams([0], [0], [0], act_min=4, act_max=3)
    with pytest.raises(TypeError, match=r"^act_max must be an integer, not 1\.5$"):
        RequantParams([0], [0], [0], act_max=1.5)
    with pytest.raises(ValueError, match=r"^bias, multiplier and shift must have one value "
                                         r"per column$"):
        RequantParams([0, 0], [0], [0])


@pytest.mark.parametrize("activation, scale, zero_point, expected", [
    ("none", 0.1, 3, (-128, 127)),
    ("relu", 0.1, 3, (3, 127)),
    ("relu", 0.1, -128, (-128, 127)),
    ("relu6", 0.1, -128, (-128, -68)),
    ("relu6", 0.05, 10, (10, 127)),
    ("relu6", 6 / 255, -128, (-128, 127)),
    ("relu6", 0.16, 0, (0, 38)),  # 6 / 0.16 is 37.5 in float32: the tie rounds up
    ("relu_n1_to_1", 1 / 64, 0, (-64, 64)),
])
def test_activation_range(activation, scale, zero_point, expected):
    assert activation_range(activation, scale, zero_point) == expected


def test_activation_range_rejects():
    with pytest.raises(ValueError, match=r"^activation must be one of none, relu, relu6, "
                                         r"relu_n1_to_1, not 'tanh'$"):
        activation_range("tanh", 0.1, 0)
    with pytest.raises(ValueError, match=r"^scale must be positive, not 0\.0$"):
        activation_range("relu", 0.0, 0)


def test_activation_range_rejects_zero_point():
    with pytest.raises(ValueError, match=r"^zero_point must lie in \[-128, 127\], not -129$"):
        activation_range("relu", 0.1, -129)


def test_model_rejects():
    model = PostProcessModel(TesseraConfig(dim=2))
    with pytest.raises(ValueError, match=r"^swap without a completed parameter set$"):
        model.row([0, 0], swap=True)
    with pytest.raises(ValueError, match=r"^column must lie in \[0, 1\], not 2$"):
        model.load_param(2, 0, 0, 0)
    with pytest.raises(ValueError, match=r"^params must have 2 columns, not 1$"):
        model.param_beats(RequantParams([0], [0], [0]))
    with pytest.raises(ValueError, match=r"^mode must be one of requant, acc, acc_bias, "
                                         r"not 'int4'$"):
        model.row([0, 0], mode="int4")

"""Amaranth-simulator tests of the processing element and the systolic array."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hdl.config import TesseraConfig
from hdl.multiplier import multiply
from hdl.pe import ProcessingElement
from hdl.systolic import SystolicArray
from sim.model import wrap_signed
from sim.streams import idle_cycles, stream_get, stream_put
from sim.workload import edge_values, make_array_workload

CLOCK = 1e-6


def run_array(config, workload, *, seed, stall_in=0.0, stall_out=0.0, hold_results=0,
              max_cycles=20_000, result_buffer=True, tags=True, broadcast=None):
    """Stream ``workload`` through an array; returns (results, accept cycles, error flag)."""
    dut = SystolicArray(config, result_buffer=result_buffer, tags=tags, broadcast=broadcast)
    rng = np.random.default_rng(seed)
    results, accepted, cycle = [], [], [0]

    async def weights(ctx):
        for row, last in workload.weight_rows:
            await stream_put(ctx, dut.weights, {"row": row, "last": last},
                             idle=idle_cycles(rng, stall_in))

    async def acts(ctx):
        for row, swap, tag in workload.act_rows:
            payload = {"row": row, "swap": swap, **({"tag": tag} if tags else {})}
            await stream_put(ctx, dut.acts, payload, idle=idle_cycles(rng, stall_in))

    def row_of(payload):
        row = [int(v) for v in payload.row]
        return (row, int(payload.tag)) if tags else row

    async def consumer(ctx):
        if not result_buffer:  # always ready: every valid cycle is a row
            async for _, _, valid, payload in ctx.tick().sample(dut.results.valid,
                                                                 dut.results.payload):
                if valid:
                    results.append(row_of(payload))
                    if len(results) == len(workload.expected):
                        return
        for _ in range(hold_results):
            await ctx.tick()
        for _ in workload.expected:
            payload = await stream_get(ctx, dut.results, idle=idle_cycles(rng, stall_out))
            results.append(row_of(payload))

    async def monitor(ctx):
        async for _, _, valid, ready in ctx.tick().sample(dut.acts.valid, dut.acts.ready):
            if valid and ready:
                accepted.append(cycle[0])
            cycle[0] += 1

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(weights)
    sim.add_testbench(acts)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    error = []

    async def error_probe(ctx):
        async for _, _, flag in ctx.tick().sample(dut.error):
            if flag:
                error.append(True)
    sim.add_testbench(error_probe, background=True)
    sim.run_until(CLOCK * max_cycles)
    return dut, results, accepted, bool(error)


def check_results(workload, results, context):
    assert len(results) == len(workload.expected), (
        f"{context}: got {len(results)} of {len(workload.expected)} result rows")
    for i, (got, want) in enumerate(zip(results, workload.expected, strict=True)):
        assert got == want, f"{context}: first mismatch at result row {i}: got {got}, want {want}"


#: Every array form at dims 1-4, and dim 8 once (30 s for all four; the Verilog of dim 8 runs
#: in tests/test_systolic_cocotb.py too).
@pytest.mark.parametrize("dim, stalls, broadcast", [
    *[(dim, stalls, broadcast) for dim in (1, 2, 3, 4) for stalls in (0.0, 0.3)
      for broadcast in (False, True)],
    (8, 0.3, False)])
def test_array_matches_model(dim, stalls, broadcast):
    seed = 1000 + dim
    print(f"seed={seed} dim={dim} stalls={stalls} broadcast={broadcast}")
    config = TesseraConfig(dim=dim)
    rng = np.random.default_rng(seed)
    workload = make_array_workload(config, rng, n_tiles=6, leading_rows=2)
    _, results, _, error = run_array(config, workload, seed=seed, stall_in=stalls,
                                     stall_out=stalls, broadcast=broadcast)
    check_results(workload, results, f"seed={seed} dim={dim}")
    assert not error


@pytest.mark.parametrize("variant", [
    dict(act_signed=False),
    dict(weight_signed=False),
    dict(act_signed=False, weight_signed=False),
    dict(acc_width=16),  # sums of four -128 * -128 products wrap
    dict(act_width=4, weight_width=6, acc_width=10),
    dict(multiplier="lut"),
    dict(multiplier="dsp", max_dsp=5),
    dict(multiplier="dsp", max_dsp=5, product_stages=2),
    dict(multiplier="dsp", dsp_products=2),
    dict(multiplier="dsp", max_dsp=3, dsp_products=2, product_stages=2),
    dict(dim=3, multiplier="dsp", dsp_products=2),
], ids=["u8xs8", "s8xu8", "u8xu8", "acc16", "s4xs6-acc10", "lut", "dsp5", "dsp5-2stages",
        "dsp-pairs", "dsp-pairs3-2stages", "dsp-pairs-odd"])
def test_array_variants(variant):
    """Operand kinds, widths and multiplier implementations (``dsp_products=2``: PEs share
    two-product DSP blocks; an odd count leaves one block half used)."""
    seed = 77
    config = TesseraConfig(**{"dim": 4, **variant})
    print(f"seed={seed} config={config}")
    rng = np.random.default_rng(seed)
    workload = make_array_workload(config, rng, n_tiles=5)
    _, results, _, _ = run_array(config, workload, seed=seed, stall_in=0.2, stall_out=0.2)
    check_results(workload, results, f"seed={seed} {variant}")


@pytest.mark.parametrize("dim, stages", [(2, 1), (3, 1), (4, 1), (3, 2)])
@pytest.mark.parametrize("broadcast", [False, True], ids=["systolic", "broadcast"])
def test_full_rate_and_latency(dim, stages, broadcast):
    """Back-to-back tiles of exactly dim rows: one row per cycle, no bubble at tile switches."""
    seed = 2000 + dim
    print(f"seed={seed} dim={dim} product_stages={stages} broadcast={broadcast}")
    config = TesseraConfig(dim=dim, product_stages=stages)
    rng = np.random.default_rng(seed)
    workload = make_array_workload(config, rng, n_tiles=8, rows_per_tile=dim)
    dut, results, accepted, _ = run_array(config, workload, seed=seed, broadcast=broadcast)
    check_results(workload, results, f"seed={seed} dim={dim}")
    first = accepted[0]
    assert accepted == list(range(first, first + len(workload.act_rows))), (
        f"bubbles in the activation stream: accepted at {accepted}")
    # The documented latencies: systolic 2 * dim + stages, broadcast dim + 1 + stages.
    assert dut.latency == (dim + 1 if broadcast else 2 * dim) + stages


@pytest.mark.parametrize("dim, stalls", [(1, 0.0), (4, 0.3)])
def test_unbuffered_array_matches_model(dim, stalls):
    """``result_buffer=False``: every row comes out once, in order, on an always-ready stream."""
    seed = 1100 + dim
    print(f"seed={seed} dim={dim} stalls={stalls}")
    config = TesseraConfig(dim=dim, multiplier="dsp", dsp_products=2)
    rng = np.random.default_rng(seed)
    workload = make_array_workload(config, rng, n_tiles=6, leading_rows=2)
    _, results, _, error = run_array(config, workload, seed=seed, stall_in=stalls,
                                     result_buffer=False)
    check_results(workload, results, f"seed={seed} dim={dim} unbuffered")
    assert not error


def test_untagged_array_results_in_order():
    """``tags=False``: no tag fields; the rows are right and in order."""
    seed = 1150
    config = TesseraConfig(dim=3)
    workload = make_array_workload(config, np.random.default_rng(seed), n_tiles=4,
                                   leading_rows=1)
    _, results, _, _ = run_array(config, workload, seed=seed, stall_in=0.3,
                                 result_buffer=False, tags=False)
    assert results == [row for row, _ in workload.expected]


@pytest.mark.parametrize("broadcast", [False, True], ids=["systolic", "broadcast"])
def test_unbuffered_array_full_rate(broadcast):
    seed = 2104
    config = TesseraConfig(dim=4)
    workload = make_array_workload(config, np.random.default_rng(seed), n_tiles=8,
                                   rows_per_tile=4)
    dut, results, accepted, _ = run_array(config, workload, seed=seed, result_buffer=False,
                                          broadcast=broadcast)
    check_results(workload, results, f"seed={seed} unbuffered")
    assert accepted == list(range(accepted[0], accepted[0] + len(workload.act_rows)))
    assert dut.latency == (4 + 1 if broadcast else 2 * 4) and dut.buffer_depth == 0


def test_result_buffer_must_be_bool():
    with pytest.raises(TypeError, match=r"^result_buffer must be a bool, not 1$"):
        SystolicArray(TesseraConfig(), result_buffer=1)
    with pytest.raises(TypeError, match=r"^tags must be a bool, not 0$"):
        SystolicArray(TesseraConfig(), tags=0)
    with pytest.raises(TypeError, match=r"^broadcast must be a bool, not 1$"):
        SystolicArray(TesseraConfig(), broadcast=1)


@pytest.mark.parametrize("mhz, broadcast", [(30.0, True), (50.0, True), (80.0, False)])
def test_broadcast_follows_the_clock(mhz, broadcast):
    """By default slow-clock arrays broadcast and fast-clock ones hop a column a cycle."""
    dut = SystolicArray(TesseraConfig(target_mhz=mhz))
    dut._MustUse__silence = True
    assert dut.broadcast is broadcast


@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("result_buffer", [True, False])
@pytest.mark.parametrize("broadcast", [False, True], ids=["systolic", "broadcast"])
def test_latency_property_is_measured(stages, result_buffer, broadcast):
    """The first result appears exactly ``latency`` cycles after its activation row."""
    config = TesseraConfig(dim=3, product_stages=stages)
    dut = SystolicArray(config, result_buffer=result_buffer, broadcast=broadcast)
    seen = []

    async def bench(ctx):
        if result_buffer:
            ctx.set(dut.results.ready, 1)
        ctx.set(dut.acts.payload, {"row": [1, 2, 3], "swap": 0, "tag": 5})
        ctx.set(dut.acts.valid, 1)
        await ctx.tick().until(dut.acts.ready)
        ctx.set(dut.acts.valid, 0)
        for cycle in range(1, 3 * dut.latency):
            _, _, valid = await ctx.tick().sample(dut.results.valid)
            if valid:
                seen.append(cycle)
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run_until(CLOCK * 10 * dut.latency)
    assert seen == [dut.latency]


def test_back_pressure_loses_nothing():
    """Results held off for a long time: the array stops taking rows, then drains in order."""
    seed = 31
    config = TesseraConfig(dim=4)
    rng = np.random.default_rng(seed)
    workload = make_array_workload(config, rng, n_tiles=10, rows_per_tile=4)
    dut, results, accepted, _ = run_array(config, workload, seed=seed, hold_results=200)
    check_results(workload, results, f"seed={seed}")
    # While results were held, exactly as many rows as the buffer holds were accepted.
    accepted_while_held = len([c for c in accepted if c < 200])
    assert accepted_while_held == dut.buffer_depth, f"accepted {accepted_while_held} rows"


def test_misplaced_last_sets_error():
    """`last` on row 1 of 3, then missing on row 2: the sticky flag rises and stays up."""
    config = TesseraConfig(dim=3)
    dut = SystolicArray(config)
    flags = []

    async def bench(ctx):
        for k, last in enumerate([False, True, False]):
            await stream_put(ctx, dut.weights, {"row": [k] * 3, "last": last})
            flags.append(ctx.get(dut.error))
        await stream_put(ctx, dut.acts, {"row": [0] * 3, "swap": 1, "tag": 0})
        for k in range(3):
            await stream_put(ctx, dut.weights, {"row": [k] * 3, "last": k == 2})
            flags.append(ctx.get(dut.error))
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run_until(CLOCK * 100)
    assert flags == [0, 1, 1, 1, 1, 1]


def test_well_formed_weights_keep_error_low():
    config = TesseraConfig(dim=3)
    rng = np.random.default_rng(3)
    workload = make_array_workload(config, rng, n_tiles=4)
    _, results, _, error = run_array(config, workload, seed=3)
    check_results(workload, results, "seed=3")
    assert not error


def test_swap_waits_for_completed_tile():
    """A swap row arriving before its tile is complete waits, and then uses that tile."""
    config = TesseraConfig(dim=2)
    dut = SystolicArray(config)
    out = []

    async def acts(ctx):
        await stream_put(ctx, dut.acts, {"row": [1, 1], "swap": 1, "tag": 1})

    async def weights(ctx):
        for _ in range(10):
            await ctx.tick()
            assert not ctx.get(dut.acts.ready)
        await stream_put(ctx, dut.weights, {"row": [2, 3], "last": 0})
        await stream_put(ctx, dut.weights, {"row": [5, 7], "last": 1})

    async def consumer(ctx):
        payload = await stream_get(ctx, dut.results)
        out.append([int(v) for v in payload.row])
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(acts)
    sim.add_testbench(weights)
    sim.add_testbench(consumer)
    sim.run_until(CLOCK * 200)
    assert out == [[7, 10]]


def test_pe_timing_and_swap():
    """PE against a cycle-level reference of its documented timing."""
    seed = 5
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    pe = ProcessingElement(act_shape=signed(8), weight_shape=signed(8),
                           psum_in_shape=signed(20), psum_out_shape=signed(20))
    stimulus = [dict(a=int(rng.choice(edge_values(8, True) + [int(rng.integers(-128, 128))])),
                     swap=int(rng.random() < 0.2), w=int(rng.integers(-128, 128)),
                     w_en=int(rng.random() < 0.3), p=int(rng.integers(-2**18, 2**18)))
                for _ in range(200)]
    got = []

    async def bench(ctx):
        for s in stimulus:
            ctx.set(pe.a_in, s["a"])
            ctx.set(pe.swap_in, s["swap"])
            ctx.set(pe.w_in, s["w"])
            ctx.set(pe.w_en, s["w_en"])
            ctx.set(pe.psum_in, s["p"])
            _, _, a_out, swap_out, psum = await ctx.tick().sample(
                pe.a_out, pe.swap_out, pe.psum_out)
            got.append((a_out, swap_out, psum))
    sim = Simulator(pe)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()

    active = shadow = product = psum = a_out = swap_out = 0
    for i, s in enumerate(stimulus):
        assert got[i] == (a_out, swap_out, psum), f"seed={seed} cycle {i}"
        a_out, swap_out = s["a"], s["swap"]
        psum = int(wrap_signed(s["p"] + product, 20))
        product = s["a"] * active
        active = shadow if s["swap"] else active
        shadow = s["w"] if s["w_en"] else shadow


def _multiplier_mismatches(a_shape, b_shape, implementation, pairs):
    """(a, b, got) for every operand pair (given as raw bits) where the product is wrong."""
    a, b = Signal(a_shape), Signal(b_shape)
    p = Signal(signed(a_shape.width + b_shape.width + 1))
    m = Module()
    m.d.comb += p.eq(multiply(a, b, implementation))
    mismatches = []

    async def bench(ctx):
        for x, y in pairs:
            ctx.set(a.as_unsigned(), x)
            ctx.set(b.as_unsigned(), y)
            av, bv = ctx.get(a), ctx.get(b)
            if ctx.get(p) != av * bv:
                mismatches.append((av, bv, ctx.get(p)))
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return mismatches


@pytest.mark.parametrize("a_signed", [True, False])
@pytest.mark.parametrize("b_signed", [True, False])
@pytest.mark.parametrize("implementation", ["lut", "behavioural"])
def test_multiplier_exhaustive(a_signed, b_signed, implementation):
    """Every 6-bit x 5-bit operand pair, and the int8 corners, against Python's product."""
    def shape(width, is_signed):
        return signed(width) if is_signed else unsigned(width)
    small = [(x, y) for x in range(1 << 6) for y in range(1 << 5)]
    bad = _multiplier_mismatches(shape(6, a_signed), shape(5, b_signed), implementation, small)
    assert not bad, f"6x5: first mismatch (a, b, got) = {bad[0]}"
    corners = edge_values(8, True) + edge_values(8, False) + [-127, 126, 2, 127]
    int8 = [(x & 0xFF, y & 0xFF) for x in corners for y in corners]
    bad = _multiplier_mismatches(shape(8, a_signed), shape(8, b_signed), implementation, int8)
    assert not bad, f"8x8: first mismatch (a, b, got) = {bad[0]}"

"""Random post-processing workloads, and the cocotb testbench for the generated Verilog.

:func:`make_postproc_workload` is shared with the Amaranth-simulator tests. The cocotb tests
run through :func:`sim.cocotb_run.run_cocotb`; parameters come in the environment:
``TESSERA_CONFIG`` (the config as JSON), ``TESSERA_SEED``, ``TESSERA_STALL`` (probability of
a stall cycle on every stream), ``TESSERA_ROWS`` (rows of the random workload), and the block's
``TESSERA_LATENCY`` and ``TESSERA_MIN_TILE_ROWS`` (its properties, checked here).
"""

import os
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from hdl.postproc import PostMode, acc_row_layout, out_row_layout, param_layout, params_by_word
from sim.cocotb_run import config_from_env
from sim.cocotb_streams import start_clock_and_reset
from sim.model import (
    ACTIVATIONS,
    INT32_MAX,
    INT32_MIN,
    POSTPROC_MODES,
    SHIFT_MAX,
    SHIFT_MIN,
    PostProcessModel,
    RequantParams,
    activation_range,
)

__all__ = ["PostProcWorkload", "check_outputs", "make_postproc_workload", "random_accumulators",
           "random_requant_params"]


def _pick(rng, edges, random, edge_fraction):
    """An edge value with probability ``edge_fraction``, else ``random()``."""
    if rng.random() < edge_fraction:
        return int(rng.choice(edges))
    return int(random())


def random_accumulators(rng, shape, edge_fraction=0.1):
    """int32 values of every magnitude (log-uniform), some of them INT32_MIN/MAX, 0, +-1."""
    bits = rng.integers(0, 32, size=shape)
    values = rng.integers(0, 1 << 31, size=shape, dtype=np.int64) >> (31 - bits)
    values = np.where(rng.random(shape) < 0.5, -values - 1, values)
    edges = np.array([INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1, 0, 1, -1])
    mask = rng.random(shape) < edge_fraction
    values[mask] = rng.choice(edges, size=int(mask.sum()))
    return values


def random_requant_params(rng, dim, *, per_channel, edge_fraction=0.2):
    """Random parameters of one tile, with their corners: multipliers near 2**30 and 2**31,
    shifts at both ends of the supported range, zero points at the int8 ends, every
    activation (and, now and then, arbitrary bounds or any int32 multiplier)."""
    def multiplier():
        if rng.random() < 0.05:  # outside QuantizeMultiplier's range, defined all the same
            return _pick(rng, [INT32_MIN, -1, 0, 1], lambda: rng.integers(INT32_MIN, 0), 0.5)
        return _pick(rng, [1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1],
                     lambda: rng.integers(1 << 30, 1 << 31), edge_fraction)

    def shift():
        return _pick(rng, [SHIFT_MIN, SHIFT_MIN + 1, -1, 0, 1, SHIFT_MAX - 1, SHIFT_MAX],
                     lambda: rng.integers(SHIFT_MIN, SHIFT_MAX + 1) if rng.random() < 0.3
                     else rng.integers(-24, 2), edge_fraction)

    if per_channel:
        multipliers = [multiplier() for _ in range(dim)]
        shifts = [shift() for _ in range(dim)]
    else:
        multipliers, shifts = [multiplier()] * dim, [shift()] * dim
    bias = [_pick(rng, [INT32_MIN, INT32_MAX, 0, 1, -1],
                  lambda: random_accumulators(rng, ()), edge_fraction) for _ in range(dim)]
    zero_point = _pick(rng, [-128, 127, 0], lambda: rng.integers(-128, 128), edge_fraction)
    activation = rng.choice([*ACTIVATIONS, "bounds"])
    if activation == "bounds":
        act_min, act_max = sorted(int(v) for v in rng.integers(-128, 128, size=2))
    else:
        scale = float(2.0 ** rng.uniform(-8, 2))
        act_min, act_max = activation_range(str(activation), scale, zero_point)
    return RequantParams(bias, multipliers, shifts, zero_point, act_min, act_max)


def port_beats(config, beats):
    """The ``params`` beats that load ``beats`` (dicts of ``column``, ``bias``,
    ``multiplier``, ``shift`` and ``last``; a ``last`` one also of the tile's ``zero_point``,
    ``act_min`` and ``act_max``, 0 if left out): the same, or with
    :func:`hdl.postproc.params_by_word` their words, as in the CONFIG block, and after a set's
    last beat its tile's words and a word that completes the set."""
    if not params_by_word(config):
        return list(beats)
    words, tile = [], 4 * config.dim
    for beat in beats:
        words += [dict(index=4 * beat["column"] + j, value=beat[field], last=0)
                  for j, field in enumerate(("bias", "multiplier", "shift"))]
        if beat["last"]:
            words += [dict(index=tile + j, value=beat.get(field, 0), last=0)
                      for j, field in enumerate(("zero_point", "act_min", "act_max"))]
            words.append(dict(index=tile + 3, value=0, last=1))
    return words


@dataclass
class PostProcWorkload:
    """Streams for :class:`hdl.postproc.PostProcess` and what must come out.

    ``param_beats``: dicts of :func:`hdl.postproc.param_layout` fields, in order (see
    :func:`port_beats`);
    ``rows``: (row, mode, swap, tag) with ``mode`` one of :data:`sim.model.POSTPROC_MODES`;
    ``expected``: (values, mode, tag), one per row.
    """
    param_beats: list
    rows: list
    expected: list


def make_postproc_workload(config, rng, n_tiles, *, rows_per_tile=None, leading_rows=0,
                           modes=POSTPROC_MODES, per_channel=None):
    """``n_tiles`` random parameter sets, each used by a run of random rows.

    ``rows_per_tile``: an int, a (lowest, highest) pair for a random run length, or None for
    1..2*dim+4. Each set's beats
    write the columns in a random order. ``per_channel``: True, False, or None for a random
    choice per tile. ``leading_rows`` rows come before the first swap and use the all-zero
    reset parameters. Mode ``"requant"`` gets most rows.
    """
    dim = config.dim
    model = PostProcessModel(config)
    param_beats, rows, expected = [], [], []
    weights = np.array([4 if mode == "requant" else 1 for mode in modes], dtype=float)
    tag_mask = (1 << config.tag_width) - 1
    acc_lo, acc_hi = -(1 << (config.acc_width - 1)), (1 << (config.acc_width - 1)) - 1

    def row(swap):
        acc = [min(max(int(v), acc_lo), acc_hi) for v in random_accumulators(rng, dim)]
        mode = str(rng.choice(modes, p=weights / weights.sum()))
        tag = int(rng.integers(0, tag_mask + 1))
        rows.append((acc, mode, swap, tag))
        expected.append(model.row(acc, mode, swap=swap, tag=tag))

    for _ in range(leading_rows):
        row(False)
    for _ in range(n_tiles):
        channel = bool(rng.random() < 0.5) if per_channel is None else per_channel
        params = random_requant_params(rng, dim, per_channel=channel)
        beats = model.param_beats(params)
        order = list(rng.permutation(dim))
        beats = [beats[c] for c in order]
        for i, beat in enumerate(beats):
            beat["last"] = i == dim - 1
            model.load_param(**beat)
        param_beats.extend(port_beats(config, beats))
        lowest, highest = ((rows_per_tile, rows_per_tile) if isinstance(rows_per_tile, int)
                           else rows_per_tile or (1, 2 * dim + 4))
        count = int(rng.integers(lowest, highest + 1))
        for i in range(count):
            row(i == 0)
    return PostProcWorkload(param_beats, rows, expected)


# --- cocotb ---

class _Packer:
    """Packs and unpacks a struct layout's fields as Python ints (faster than data.Const)."""

    def __init__(self, layout):
        self.layout = layout
        self.fields = {name: (field.offset, field.width) for name, field in layout}

    def pack(self, **values):
        bits = 0
        for name, value in values.items():
            offset, width = self.fields[name]
            bits |= (int(value) & ((1 << width) - 1)) << offset
        return bits

    def get(self, bits, name):
        offset, width = self.fields[name]
        return (bits >> offset) & ((1 << width) - 1)


def _lanes(bits, count, width):
    """``count`` signed lanes of ``width`` bits from the packed ``bits``."""
    half, mask = 1 << (width - 1), (1 << width) - 1
    return [(((bits >> (i * width)) & mask) ^ half) - half for i in range(count)]


def _pack_lanes(values, width):
    mask = (1 << width) - 1
    return sum((int(v) & mask) << (i * width) for i, v in enumerate(values))


class TB:
    """Owns the clock, the reset and the three streams; one coroutine drives them all."""

    def __init__(self, dut, config, seed, stall):
        self.dut, self.config, self.stall = dut, config, stall
        self.rng = np.random.default_rng(seed)
        self.rows = _Packer(acc_row_layout(config))
        self.params = _Packer(param_layout(config))
        self.out = _Packer(out_row_layout(config))
        self.cycle = 0
        self.accepted = []  # cycles in which a row was accepted
        self.first_output = None
        self.hold = 0
        self.refused = 0  # cycles in which a row was offered and not taken

    async def start(self):
        await start_clock_and_reset(self.dut, ("acc_rows__valid", "acc_rows__payload",
                                               "params__valid", "params__payload",
                                               "out_rows__ready"))

    def pack_workload(self, workload):
        cfg = self.config
        rows = [self.rows.pack(row=_pack_lanes(r, cfg.acc_width), mode=PostMode[m.upper()].value,
                               swap=s, tag=t) for r, m, s, t in workload.rows]
        params = [self.params.pack(**beat) for beat in workload.param_beats]
        return rows, params

    def unpack(self, bits):
        dim = self.config.dim
        mode = PostMode(self.out.get(bits, "mode"))
        row = self.out.get(bits, "row")
        values = _lanes(row, dim, 8) if mode == PostMode.REQUANT else _lanes(row, dim, 32)
        return values, mode.name.lower(), self.out.get(bits, "tag")

    def _go(self):
        """Whether a producer offers a beat this cycle."""
        return not (self.stall and self.rng.random() < self.stall)

    def _take(self):
        """Whether the consumer is ready this cycle: single-cycle stalls, and now and then a
        hold of 16 to 40 cycles, long enough to fill the output buffer and run out of
        credits."""
        if not self.stall:
            return True
        if self.hold:
            self.hold -= 1
            return False
        if self.rng.random() < self.stall / 50:
            self.hold = int(self.rng.integers(16, 41))
            return False
        return self.rng.random() >= self.stall / 2

    async def run(self, workload):
        """Stream ``workload`` through with random stalls; returns the output rows.

        One coroutine drives all three streams, two triggers per cycle: a producer offers its
        next beat (unless it stalls) and holds valid and the beat until they are taken; the
        consumer's ready is random; the handshakes are sampled in ReadOnly.
        """
        dut = self.dut
        clk = dut.clk
        row_valid_h, row_ready_h, row_data_h = (
            dut.acc_rows__valid, dut.acc_rows__ready, dut.acc_rows__payload)
        param_valid_h, param_ready_h, param_data_h = (
            dut.params__valid, dut.params__ready, dut.params__payload)
        out_valid_h, out_ready_h, out_data_h = (
            dut.out_rows__valid, dut.out_rows__ready, dut.out_rows__payload)
        rows, params = self.pack_workload(workload)
        results, expected = [], len(workload.expected)
        row_i = param_i = 0
        row_valid = param_valid = take = False  # what this cycle drives
        row_driven = param_driven = False  # what the valid signals were last set to
        while len(results) < expected:
            if not row_valid and row_i < len(rows) and self._go():
                row_valid = True
                row_data_h.value = rows[row_i]
            if not param_valid and param_i < len(params) and self._go():
                param_valid = True
                param_data_h.value = params[param_i]
            if row_valid != row_driven:
                row_driven = row_valid
                row_valid_h.value = int(row_valid)
            if param_valid != param_driven:
                param_driven = param_valid
                param_valid_h.value = int(param_valid)
            if self._take() != take:
                take = not take
                out_ready_h.value = int(take)
            await ReadOnly()
            row_ready, param_ready, out_valid = (
                row_ready_h.value, param_ready_h.value, out_valid_h.value)
            if not (row_ready.is_resolvable and param_ready.is_resolvable
                    and out_valid.is_resolvable):
                raise AssertionError(f"a ready or valid is X/Z at cycle {self.cycle}")
            if row_valid and row_ready == 1:
                self.accepted.append(self.cycle)
                row_valid, row_i = False, row_i + 1
            elif row_valid:
                self.refused += 1
            if param_valid and param_ready == 1:
                param_valid, param_i = False, param_i + 1
            if take and out_valid == 1:
                payload = out_data_h.value
                assert payload.is_resolvable, f"output payload is X/Z at cycle {self.cycle}"
                if self.first_output is None:
                    self.first_output = self.cycle
                results.append(self.unpack(payload.to_unsigned()))
            await RisingEdge(clk)
            self.cycle += 1
        row_valid_h.value = 0
        param_valid_h.value = 0
        out_ready_h.value = 0
        return results


def check_outputs(results, workload, context):
    """Raise ``AssertionError`` naming ``context`` and the first mismatching element."""
    assert len(results) == len(workload.expected), (
        f"{context}: got {len(results)} of {len(workload.expected)} output rows")
    for i, (got, want) in enumerate(zip(results, workload.expected, strict=True)):
        if got == want:
            continue
        acc, mode, swap, tag = workload.rows[i]
        lanes = [n for n, (g, w) in enumerate(zip(got[0], want[0], strict=True)) if g != w]
        where = f"lane {lanes[0]} (acc {acc[lanes[0]]})" if lanes else "mode/tag"
        raise AssertionError(
            f"{context}: first mismatch at output row {i}, {where}: got {got}, want {want}; "
            f"input row {acc} mode={mode} swap={swap} tag={tag}")


def _settings():
    config = config_from_env()
    seed = int(os.environ.get("TESSERA_SEED", "1"))
    stall = float(os.environ.get("TESSERA_STALL", "0"))
    rows = int(os.environ.get("TESSERA_ROWS", "2000"))
    return config, seed, stall, rows


@cocotb.test()
async def stream_matches_model(dut):
    """Random rows, parameter sets, modes and stalls against the golden model."""
    config, seed, stall, rows = _settings()
    dut._log.info(f"seed={seed} stall={stall} rows={rows} config={config}")
    tb = TB(dut, config, seed, stall)
    await tb.start()
    # Runs of 1 to 2 * min_tile_rows rows: short ones wait for their parameters, long ones
    # keep the pipeline full.
    longest = 2 * int(os.environ["TESSERA_MIN_TILE_ROWS"])
    workload = make_postproc_workload(config, tb.rng, max(1, 2 * rows // (longest + 1)),
                                      rows_per_tile=(1, longest), leading_rows=3)
    budget = ((40 + 4 * config.postproc_row_cycles) * len(workload.rows)
              + 20 * len(workload.param_beats) + 200)
    results = await with_timeout(tb.run(workload), budget * 10, "ns")
    check_outputs(results, workload, f"seed={seed} stall={stall}")
    dut._log.info(f"{len(results)} rows matched in {tb.cycle} cycles; a row waited for "
                  f"acc_rows.ready in {tb.refused} cycles")
    if stall:
        assert tb.refused, "the stalls never exercised back-pressure on acc_rows"


@cocotb.test()
async def full_rate_and_latency(dut):
    """No stalls, tiles of exactly ``TESSERA_MIN_TILE_ROWS`` rows: a row accepted every
    ``config.postproc_row_cycles`` cycles, and the first output ``TESSERA_LATENCY`` cycles
    after the first row started (``TESSERA_ACCEPT_DELAY`` cycles before it was accepted)."""
    config, seed, _, _ = _settings()
    seed += 1
    latency = int(os.environ["TESSERA_LATENCY"])
    rows_per_tile = int(os.environ["TESSERA_MIN_TILE_ROWS"])
    dut._log.info(f"seed={seed} config={config}")
    tb = TB(dut, config, seed, 0.0)
    await tb.start()
    workload = make_postproc_workload(config, tb.rng, 8, rows_per_tile=rows_per_tile)
    budget = (20 + config.postproc_row_cycles) * len(workload.rows) + 200
    results = await with_timeout(tb.run(workload), budget * 10, "ns")
    check_outputs(results, workload, f"seed={seed}")
    first = tb.accepted[0]
    step = config.postproc_row_cycles
    assert tb.accepted == list(range(first, first + step * len(workload.rows), step)), (
        tb.accepted)
    start = first - int(os.environ["TESSERA_ACCEPT_DELAY"])
    assert tb.first_output - start == latency, (tb.first_output, start)

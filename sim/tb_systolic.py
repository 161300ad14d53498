"""cocotb testbench for the generated Verilog of the systolic array.

Run through :func:`sim.cocotb_run.run_cocotb`; parameters come in the environment:
``TESSERA_CONFIG`` (the config as JSON), ``TESSERA_SEED``, ``TESSERA_STALL`` (probability of a
stall cycle on every stream) and ``TESSERA_TILES``.
"""

import os
from functools import partial

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from hdl.systolic import act_row_layout, result_row_layout, weight_row_layout
from sim.cocotb_run import config_from_env
from sim.cocotb_streams import receive_beats, send_beats, start_clock_and_reset
from sim.streams import idle_cycles
from sim.workload import make_array_workload


class TB:
    """Owns the clock, the reset and the three stream interfaces of the array."""

    def __init__(self, dut, config, seed, stall):
        self.dut, self.config, self.stall = dut, config, stall
        self.rng = np.random.default_rng(seed)
        self._idle = partial(idle_cycles, self.rng, stall)
        self.act_layout = act_row_layout(config)
        self.weight_layout = weight_row_layout(config)
        self.result_layout = result_row_layout(config)
        self.cycle = 0
        self.accepted = []
        self.unresolved_payload = 0

    async def start(self):
        await start_clock_and_reset(self.dut, ("acts__valid", "acts__payload", "weights__valid",
                                               "weights__payload", "results__ready"))
        cocotb.start_soon(self._count())

    async def _count(self):
        """Counts cycles, records accepted activation rows and checks outputs for X/Z."""
        dut = self.dut
        controls = ("acts__ready", "weights__ready", "results__valid", "error")
        while True:
            await ReadOnly()
            for name in controls:
                assert getattr(dut, name).value.is_resolvable, f"{name} is X/Z at {self.cycle}"
            payload = dut.results__payload.value
            self.unresolved_payload += not payload.is_resolvable
            if dut.results__valid.value == 1:
                assert payload.is_resolvable, f"results payload is X/Z at cycle {self.cycle}"
            if dut.acts__valid.value == 1 and dut.acts__ready.value == 1:
                self.accepted.append(self.cycle)
            await RisingEdge(dut.clk)
            self.cycle += 1

    async def receive(self, count):
        """Collect ``count`` result rows as (row, tag), with random stalls."""
        beats = await receive_beats(self.dut, "results", count, self._idle)
        return [([int(v) for v in beat.row], int(beat.tag))
                for beat in map(self.result_layout.from_bits, beats)]

    async def run(self, workload):
        weights = [self.weight_layout.const({"row": r, "last": last}).as_bits()
                   for r, last in workload.weight_rows]
        acts = [self.act_layout.const({"row": r, "swap": s, "tag": t}).as_bits()
                for r, s, t in workload.act_rows]
        cocotb.start_soon(send_beats(self.dut, "weights", weights, self._idle))
        cocotb.start_soon(send_beats(self.dut, "acts", acts, self._idle))
        budget = 20 * (len(acts) + len(weights)) + 100
        return await with_timeout(self.receive(len(workload.expected)), budget * 10, "ns")


def check(results, workload, context):
    assert len(results) == len(workload.expected)
    for i, (got, want) in enumerate(zip(results, workload.expected, strict=True)):
        assert got == want, f"{context}: first mismatch at result row {i}: got {got}, want {want}"


@cocotb.test()
async def stream_matches_model(dut):
    """Random tiles of random run lengths, with stalls, against the golden model."""
    config = config_from_env()
    seed = int(os.environ.get("TESSERA_SEED", "1"))
    stall = float(os.environ.get("TESSERA_STALL", "0"))
    dut._log.info(f"seed={seed} stall={stall} config={config}")
    tb = TB(dut, config, seed, stall)
    await tb.start()
    workload = make_array_workload(config, tb.rng, int(os.environ.get("TESSERA_TILES", "8")),
                                   leading_rows=1)
    results = await tb.run(workload)
    check(results, workload, f"seed={seed} stall={stall}")
    assert dut.error.value == 0
    dut._log.info(f"cycles with an unresolved results payload: {tb.unresolved_payload}")


@cocotb.test()
async def full_rate_tile_switches(dut):
    """Tiles of exactly dim rows back to back: one activation row accepted every cycle."""
    config = config_from_env()
    seed = int(os.environ.get("TESSERA_SEED", "1")) + 1
    dut._log.info(f"seed={seed} config={config}")
    tb = TB(dut, config, seed, 0.0)
    await tb.start()
    workload = make_array_workload(config, tb.rng, 6, rows_per_tile=config.dim)
    results = await tb.run(workload)
    check(results, workload, f"seed={seed}")
    first = tb.accepted[0]
    assert tb.accepted == list(range(first, first + len(workload.act_rows))), tb.accepted

"""Simulated cycles per second: the Amaranth simulator and cocotb (Verilator, Icarus)."""

import json
import shutil
import time
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from hdl.systolic import SystolicArray, act_row_layout, weight_row_layout
from sim.cocotb_run import config_to_env, run_cocotb
from sim.workload import random_operands
from sw.toolchain import use_toolchain
from sw.verilog import ARRAY_TOP, write_array_verilog

__all__ = ["amaranth_speed", "cocotb_speed", "icarus_available"]

_POOL = 256  # random rows the stimulus cycles through


def _random_rows(rng, config, layout, width, is_signed, **fields):
    """``_POOL`` packed rows of random ``width``-bit lanes with the other ``fields`` fixed."""
    return [layout.const({"row": [int(v) for v in random_operands(rng, config.dim, width,
                                                                   is_signed)],
                          **fields}).as_bits() for _ in range(_POOL)]


def amaranth_speed(config, cycles, seed=1) -> dict:
    """Cycles per second of ``amaranth.sim`` streaming at full rate for ``cycles`` cycles.

    One testbench drives both input streams (valid always high, tiles of ``dim`` rows) and
    keeps ``results.ready`` high. Payloads are pre-packed, so the time is the simulator's.
    """
    dim = config.dim
    dut = SystolicArray(config)
    rng = np.random.default_rng(seed)
    weights = _random_rows(rng, config, weight_row_layout(config), config.weight_width,
                           config.weight_signed, last=0)
    last_bit = 1 << (dim * config.weight_width)
    acts = _random_rows(rng, config, act_row_layout(config), config.act_width,
                        config.act_signed, swap=0, tag=0)
    swap_bit = 1 << (dim * config.act_width)
    counts = {"accepted": 0, "results": 0, "weight_rows": 0}
    timing = {}

    async def bench(ctx):
        w_payload, a_payload = dut.weights.payload.as_value(), dut.acts.payload.as_value()
        w_index = a_index = 0

        def put_weight():
            ctx.set(w_payload, weights[counts["weight_rows"] % _POOL]
                    | (last_bit if w_index == dim - 1 else 0))

        def put_act():
            ctx.set(a_payload, acts[a_index % _POOL] | (swap_bit if a_index % dim == 0 else 0))

        ctx.set(dut.results.ready, 1)
        ctx.set(dut.weights.valid, 1)
        ctx.set(dut.acts.valid, 1)
        put_weight()
        put_act()
        start = time.perf_counter()
        for _ in range(cycles):
            _, _, w_ready, a_ready, r_valid = await ctx.tick().sample(
                dut.weights.ready, dut.acts.ready, dut.results.valid)
            if w_ready:
                counts["weight_rows"] += 1
                w_index = (w_index + 1) % dim
                put_weight()
            if a_ready:
                counts["accepted"] += 1
                a_index += 1
                put_act()
            counts["results"] += r_valid
        timing["wall_s"] = time.perf_counter() - start

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if counts["results"] < counts["accepted"] - dut.buffer_depth or counts["results"] == 0:
        raise RuntimeError(f"Amaranth simulation streamed no results: {counts}")
    return {"cycles": cycles, **timing, **counts}


def icarus_available() -> bool:
    use_toolchain()
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def cocotb_speed(config, build_dir, tiles, simulator="verilator") -> dict:
    """Cycles per second of the cocotb testbench (``sim.tb_systolic.TB``) at full rate.

    Builds in ``build_dir`` (the build is not timed), streams ``tiles`` tiles of ``dim`` rows
    and returns the report of :mod:`bench.cocotb_speed` plus ``total_wall_s`` (build and run).
    """
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    source = write_array_verilog(config, build_dir)
    out = build_dir / "speed.json"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    run_cocotb(sources=[source], toplevel=ARRAY_TOP, test_module="bench.cocotb_speed",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env={"TESSERA_CONFIG": config_to_env(config), "TESSERA_BENCH_TILES": str(tiles),
                    "TESSERA_BENCH_OUT": str(out)},
               shared_build=False)  # total_wall_s includes a build
    report = json.loads(out.read_text())
    report["total_wall_s"] = time.perf_counter() - start
    return report

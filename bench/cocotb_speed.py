"""cocotb module: speed of the project's cocotb testbench (``sim.tb_systolic.TB``).

Run through :func:`bench.simspeed.cocotb_speed`. Streams tiles of exactly ``dim`` activation
rows at full rate (no stalls) with the testbench's own drivers, checks the results against the
golden model, and writes ``{"cycles", "wall_s", "rows", "accepted_span"}`` as JSON to the file
named by ``TESSERA_BENCH_OUT``. Parameters: ``TESSERA_CONFIG``, ``TESSERA_BENCH_TILES``.
"""

import json
import os
import time

import cocotb

from sim.cocotb_run import config_from_env
from sim.tb_systolic import TB, check
from sim.workload import make_array_workload


@cocotb.test()
async def stream_speed(dut):
    config = config_from_env()
    tb = TB(dut, config, seed=1, stall=0.0)
    workload = make_array_workload(config, tb.rng, int(os.environ["TESSERA_BENCH_TILES"]),
                                   rows_per_tile=config.dim)
    await tb.start()
    first_cycle = tb.cycle
    start = time.perf_counter()
    results = await tb.run(workload)
    wall = time.perf_counter() - start
    cycles = tb.cycle - first_cycle
    check(results, workload, "cocotb speed run")
    report = {"cycles": cycles, "wall_s": wall, "rows": len(workload.act_rows),
              "accepted_span": tb.accepted[-1] - tb.accepted[0] + 1}
    with open(os.environ["TESSERA_BENCH_OUT"], "w") as out:
        json.dump(report, out)

"""``python -m bench``: measure, print an aligned table, write ``build/bench/results.json``.

1. Sustained MACs per cycle of the array while streaming (compiled Verilator harness).
2. Simulated cycles per second of that harness (no Python in the per-cycle loop).
3. Cycles per second of the cocotb testbench on Verilator and, if installed, Icarus.
4. Cycles per second of the Amaranth simulator.
5. DMA beats per cycle against cocotbext-axi's AxiRam (long contiguous transfers, short
   strided rows; with and without memory back-pressure), and the DMA engines' LUT/FF cost
   after yosys ``synth_ecp5`` (skip with ``--no-dma``).
6. Synthesis and place-and-route wall time per board (skip with ``--no-synth``).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime

from hdl.config import PRESETS, TesseraConfig
from sw.compiler import plan_gemm

from . import BUILD, ROOT
from .accel_harness import build_accel_harness, run_accel_gemm
from .cost_bench import BLOCKS, block_cost
from .dma_bench import CONDITIONS, dma_cost, dma_throughput, lut_ff
from .gemm_bench import SHAPES, compute_phase, gemm_utilization
from .simspeed import amaranth_speed, cocotb_speed, icarus_available
from .verilator_bench import build_harness, macs_per_cycle, run_harness

#: Activation rows per Verilator harness run, runs of which the fastest gives the speed.
HARNESS_ROWS = 1_000_000
HARNESS_REPEATS = 3
#: Activation rows the cocotb testbench streams, cycles the Amaranth simulator runs.
COCOTB_ROWS = 4_000
AMARANTH_CYCLES = 4_000


def config_for(dim):
    """The preset with ``dim`` (tiny for 4, small for 8), else a default config of that size."""
    return next((c for c in PRESETS.values() if c.dim == dim), None) or TesseraConfig(dim=dim)


def label(config):
    return f"{config.name} (dim {config.dim})"


class Bench:
    """Collects table rows and raw details; a failing measurement is recorded, not fatal."""

    def __init__(self):
        self.rows, self.details, self.failures, self.elapsed = [], {}, [], {}

    def add(self, measurement, config, value, unit):
        row = {"measurement": measurement, "config": config, "value": value, "unit": unit}
        self.rows.append(row)
        print(f"  {measurement} [{config}]: {format_value(value, unit)} {unit}",
              file=sys.stderr, flush=True)

    def attempt(self, what, config, function, *args):
        print(f"[bench] {what} [{config}] ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            return function(*args)
        except Exception as error:  # report it and go on with the next measurement
            traceback.print_exc(file=sys.stderr)
            self.failures.append(f"{what} [{config}]: {error}")
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            self.add(what, config, None, f"FAILED: {first_line[:60]}")
            return None
        finally:
            self.elapsed[f"{what} [{config}]"] = round(time.monotonic() - start, 1)
            print(f"[bench] ... {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)


def verilator_harness(bench, config):
    dim = config.dim
    exe = build_harness(config, BUILD / "harness" / f"{config.name}-dim{dim}")
    tiles = HARNESS_ROWS // dim
    runs = [run_harness(exe, tiles=tiles, rows_per_tile=dim, seed=1)
            for _ in range(HARNESS_REPEATS)]
    full = min(runs, key=lambda r: r["wall_s"])
    bubble = run_harness(exe, tiles=tiles, rows_per_tile=dim, bubble=True, seed=1)
    name = label(config)
    overall, steady = macs_per_cycle(full, dim)
    bubble_overall, bubble_steady = macs_per_cycle(bubble, dim)
    bench.add("array MACs/cycle, full rate, first row to last result", name, overall, "MAC/cycle")
    bench.add("array MACs/cycle, full rate, steady state", name, steady, "MAC/cycle")
    bench.add("array MACs/cycle, 1 bubble per tile switch, first row to last result", name,
              bubble_overall, "MAC/cycle")
    bench.add("array MACs/cycle, 1 bubble per tile switch, steady state", name, bubble_steady,
              "MAC/cycle")
    bench.add("array latency, measured (last row to its result)", name,
              full["last_result"] - full["last_accept"], "cycles")
    bench.add("Verilator, compiled C++ harness (checked)", name,
              full["cycles"] / full["wall_s"], "cycles/s")
    bench.details[f"verilator_harness/{config.name}"] = {
        "full_rate_runs": runs, "one_bubble": bubble, "peak_macs_per_cycle": dim * dim}


def cocotb(bench, config, simulator):
    report = cocotb_speed(config, BUILD / "cocotb" / f"{simulator}-{config.name}-dim{config.dim}",
                          max(1, COCOTB_ROWS // config.dim), simulator)
    bench.add(f"cocotb testbench on {simulator.capitalize()}", label(config),
              report["cycles"] / report["wall_s"], "cycles/s")
    bench.details[f"cocotb_{simulator}/{config.name}"] = report


def amaranth(bench, config):
    report = amaranth_speed(config, AMARANTH_CYCLES)
    bench.add("Amaranth simulator (pysim)", label(config), report["cycles"] / report["wall_s"],
              "cycles/s")
    bench.details[f"amaranth/{config.name}"] = report


def dma(bench, config, condition, stall, latency):
    name = f"{config.name} ({config.bus_data_width}-bit bus)"
    results = dma_throughput(config, BUILD / "dma" / f"{config.name}-stall{stall}-lat{latency}",
                             stall=stall, latency=latency)
    for scenario, result in results.items():
        bench.add(f"DMA {scenario}, {condition}", name, result["beats_per_cycle"],
                  "beats/cycle")
    bench.details[f"dma/{config.name}/{condition}"] = results


def dma_resources(bench, config):
    name = f"{config.name} ({config.bus_data_width}-bit bus)"
    cost = dma_cost(config, BUILD / "dma" / f"{config.name}-synth_ecp5")
    for block, cells in cost.items():
        luts, flops, brams, lutrams = lut_ff(cells)
        bench.add(f"DMA {block}, yosys synth_ecp5", name, luts,
                  f"LUT4 ({flops} FF, {brams} DP16KD, {lutrams} DPR16X4)")
    bench.details[f"dma_cost/{config.name}"] = cost


def fits(config, shape):
    """Whether a GEMM of ``shape``'s operands fit the config's DMA address space (tiny's
    is its board's 64 KiB)."""
    try:
        plan_gemm(config, *shape)
    except ValueError:
        return False
    return True


def gemm(bench, config):
    shapes = [shape for shape in SHAPES if fits(config, shape)]
    for report in gemm_utilization(config, BUILD / "gemm" / config.name, shapes=shapes):
        shape = f"{config.name}, {report['m']}x{report['k']}x{report['n']}"
        bench.add("GEMM utilization, end to end", shape, report["utilization"], "of peak")
        bench.add("GEMM compute phase (EXEC_CYCLES / EXEC_BUSY)", shape,
                  report["exec_cycles"] / report["exec_busy"], "of cycles")
        bench.add("GEMM cocotb wall time (Verilator)", shape, report["wall_s"], "s")
        bench.details[f"gemm/{shape}"] = report
    utilization, report = compute_phase(config, BUILD / "gemm" / config.name)
    bench.add("compute phase, operands on chip (EXEC_CYCLES / EXEC_BUSY)",
              f"{config.name}, {report['tiles']} tiles x {report['rows']} rows", utilization,
              "of cycles")
    bench.details[f"compute_phase/{config.name}"] = report


def accel_harness(bench, config):
    folder = BUILD / "accel" / config.name
    exe = build_accel_harness(config, folder)
    for shape in [shape for shape in [(64, 64, 64), (256, 256, 256)] if fits(config, shape)]:
        report = run_accel_gemm(exe, config, *shape, work_dir=folder / "run")
        if not report["match"]:
            raise RuntimeError(f"the harness GEMM {shape} does not match the golden model")
        name = f"{config.name}, {'x'.join(map(str, shape))}"
        bench.add("whole accelerator, compiled Verilator harness", name,
                  report["cycles_per_s"], "cycles/s")
        bench.add("GEMM utilization in the harness", name, report["utilization"], "of peak")
        bench.details[f"accel_harness/{name}"] = report


def cost(bench, name, config, family):
    folder = BUILD / "cost" / f"{config.name}-{family}" / name.split()[0].lower()
    result = block_cost(name, config, family, folder)
    bench.add(f"{name}, yosys synth_{family}", config.name, result["LUT4"],
              f"LUT4 ({result['FF']} FF, {result['DSP']} DSP, {result['BRAM']} BRAM)")
    bench.details[f"cost/{config.name}/{family}/{name}"] = result


def synth_board(bench, board):
    from sw.synth import synth
    # Its own build folder, so that it never races a `make synth` of the same board.
    report = synth(board, None, seed=1, build_root=BUILD / "synth")
    name = f"{board} / {report['config']}"
    bench.add("synthesis + place and route, wall time", name, report["wall_s"], "s")
    met = "met" if report["timing_met"] else "MISSED"
    bench.add("fmax (nextpnr, seed 1)", name, report["fmax_mhz"],
              f"MHz (target {report['target_mhz']:g}, {met})")
    bench.add("array size", name, PRESETS[report["config"]].macs_per_cycle, "MACs per cycle, peak")
    for cell in ("ICESTORM_LC", "TRELLIS_COMB", "ICESTORM_DSP", "MULT18X18D", "ICESTORM_RAM",
                 "ICESTORM_SPRAM", "DP16KD"):
        if cell in report["resources"]:
            used, available = report["resources"][cell]
            bench.add(f"{cell} used", name, used, f"of {available}")
    bench.details[f"synth/{board}"] = report


def format_value(value, unit):
    if value is None:
        return "-"
    if unit == "cycles/s":
        return f"{value:,.0f}"
    if unit == "MAC/cycle":
        return f"{value:.5f}"
    if unit in ("beats/cycle", "of peak", "of cycles"):
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.2f}" if unit.startswith("MHz") else f"{value:.1f}"
    return str(value)


def format_table(rows):
    header = ("measurement", "config", "value", "unit")
    cells = [(r["measurement"], r["config"], format_value(r["value"], r["unit"]), r["unit"])
             for r in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]

    def line(c):
        return " | ".join([c[0].ljust(widths[0]), c[1].ljust(widths[1]),
                           c[2].rjust(widths[2]), c[3].ljust(widths[3])]).rstrip()
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def git_state():
    """The commit measured and the files under hdl/ that differ from it."""
    def git(*args):
        result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
        return result.stdout.strip() if result.returncode == 0 else None
    dirty = git("status", "--porcelain", "--", "hdl", "bench")
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted": dirty.splitlines() if dirty else []}


def parse_args(argv):
    from sw.synth import BOARDS
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Tessera benchmarks: array throughput, simulation speed, DMA throughput "
                    "and cost, FPGA build times.")
    parser.add_argument("--no-synth", action="store_true",
                        help="skip the FPGA builds (they take minutes each)")
    parser.add_argument("--boards", default=",".join(BOARDS),
                        help=f"comma-separated boards to build (default: all: {','.join(BOARDS)})")
    parser.add_argument("--dims", default="4,8",
                        help="comma-separated array sizes to simulate (default: 4,8)")
    parser.add_argument("--gemm-configs", default="small",
                        help="comma-separated presets for the GEMM utilization table "
                             "(default: small; empty skips it)")
    parser.add_argument("--no-cost", action="store_true",
                        help="skip the per-block cost (yosys synthesis of each block)")
    parser.add_argument("--no-dma", action="store_true",
                        help="skip the DMA throughput and cost measurements")
    parser.add_argument("--dma-config", default="small", choices=list(PRESETS),
                        help="preset whose bus width the DMA benchmark uses (default: small)")
    args = parser.parse_args(argv)
    args.boards = [b for b in args.boards.split(",") if b]
    unknown = [b for b in args.boards if b not in BOARDS]
    if unknown:
        parser.error(f"unknown board(s) {', '.join(unknown)}; boards are {', '.join(BOARDS)}")
    try:
        args.dims = [int(d) for d in args.dims.split(",") if d]
    except ValueError:
        parser.error(f"--dims takes integers, not {args.dims!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    bench = Bench()
    configs = [config_for(d) for d in args.dims]
    for config in configs:
        bench.attempt("Verilator harness", label(config), verilator_harness, bench, config)
    simulators = ["verilator"] + (["icarus"] if icarus_available() else [])
    for simulator in simulators:
        for config in configs:
            bench.attempt(f"cocotb testbench on {simulator.capitalize()}", label(config),
                          cocotb, bench, config, simulator)
    if "icarus" not in simulators:
        bench.add("cocotb testbench on Icarus", "-", None, "not available (no iverilog on PATH)")
    for config in configs:
        bench.attempt("Amaranth simulator (pysim)", label(config), amaranth, bench, config)
    for name in ("tiny", "small"):
        bench.attempt("whole accelerator, compiled Verilator harness", name, accel_harness,
                      bench, PRESETS[name])
    for name in [n for n in args.gemm_configs.split(",") if n]:
        bench.attempt("GEMM utilization", name, gemm, bench, PRESETS[name])
    if not args.no_cost:
        for name in BLOCKS:
            for config_name, family in [("tiny", "ice40"), ("small", "ecp5")]:
                bench.attempt(f"cost of {name}", config_name, cost, bench, name,
                              PRESETS[config_name], family)
    if not args.no_dma:
        dma_config = PRESETS[args.dma_config]
        for condition, stall, latency in CONDITIONS:
            bench.attempt(f"DMA beats/cycle, {condition}", dma_config.name, dma, bench,
                          dma_config, condition, stall, latency)
        bench.attempt("DMA cost, yosys synth_ecp5", dma_config.name, dma_resources, bench,
                      dma_config)
    if not args.no_synth:
        for board in args.boards:
            bench.attempt("synthesis + place and route", board, synth_board, bench, board)

    elapsed = time.monotonic() - start
    table = format_table(bench.rows)
    print(table)
    load = os.getloadavg()[0]
    print(f"\n{len(bench.rows)} measurements in {elapsed:.0f} s (load average {load:.1f} on "
          f"{os.cpu_count()} CPUs; other jobs slow the cycles/s figures down); JSON in "
          f"{(BUILD / 'results.json').relative_to(BUILD.parent.parent)}")
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "results.json").write_text(json.dumps({
        "started": started,
        "wall_s": round(elapsed, 1),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "git": git_state(),
        # Other jobs on the machine slow every cycles/s figure down: the load average says.
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "elapsed_s": bench.elapsed,
        "rows": bench.rows,
        "table": table.splitlines(),
        "failures": bench.failures,
        "details": bench.details,
    }, indent=2) + "\n")
    if bench.failures:
        print("\nFAILED:\n  " + "\n  ".join(bench.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

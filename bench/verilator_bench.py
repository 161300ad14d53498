"""The compiled Verilator harness (``harness/array_bench.cpp``): build, run, MACs per cycle."""

import hashlib
import json
import subprocess
from pathlib import Path

from sw.toolchain import use_toolchain
from sw.verilog import ARRAY_TOP, write_array_verilog

__all__ = ["build_harness", "macs_per_cycle", "run_harness", "verilate_harness"]

HARNESS = Path(__file__).resolve().parent / "harness" / "array_bench.cpp"


def _defines(config):
    return {"DIM": config.dim, "ACT_W": config.act_width, "ACT_S": int(config.act_signed),
            "W_W": config.weight_width, "W_S": int(config.weight_signed),
            "ACC_W": config.acc_width, "TAG_W": config.tag_width}


def verilate_harness(source, top, harness, defines, build_dir, exe_name) -> Path:
    """Verilate ``source`` (top module ``top``) with the C++ ``harness`` compiled with
    ``defines``; returns the binary. Skips the build when the Verilog, the harness and the
    flags are those of the last build."""
    use_toolchain()
    build_dir = Path(build_dir).resolve()
    obj = build_dir / "obj"
    exe = obj / exe_name
    cflags = "-O2 " + " ".join(f"-D{k}={v}" for k, v in defines.items())
    command = ["verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal", "-Wno-WIDTH",
               "--top-module", top, "--Mdir", str(obj), "-o", exe.name, "-j", "2",
               "-CFLAGS", cflags, str(harness), str(source)]
    digest = hashlib.sha256("\0".join(
        [*command, Path(source).read_text(), Path(harness).read_text()]).encode()).hexdigest()
    stamp = obj / "bench.stamp"
    if exe.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return exe
    log = build_dir / "build.log"
    with open(log, "w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=build_dir)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"Verilator build failed (log in {log}):\n{tail}")
    stamp.write_text(digest)
    return exe


def build_harness(config, build_dir) -> Path:
    """Verilate the array of ``config`` with the harness into ``build_dir``; returns the binary.

    Skips the build when the Verilog, the harness and the flags are those of the last build.
    """
    use_toolchain()
    build_dir = Path(build_dir).resolve()
    source = write_array_verilog(config, build_dir)
    return verilate_harness(source, ARRAY_TOP, HARNESS, _defines(config), build_dir,
                            "array_bench")


def run_harness(exe, *, tiles, rows_per_tile, bubble=False, seed=1) -> dict:
    """Run the harness; returns its JSON report. Raises if any result row was wrong or missing."""
    command = [str(exe), "--tiles", str(tiles), "--rows-per-tile", str(rows_per_tile),
               "--seed", str(seed)] + (["--bubble"] if bubble else [])
    result = subprocess.run(command, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{exe} printed no report (exit {result.returncode}): {result.stderr}")
    report = json.loads(lines[-1])
    expected = tiles * rows_per_tile
    if (result.returncode != 0 or report["mismatches"] or report["error"]
            or report["accepted"] != expected or report["results"] != expected
            or report["checksum"] == 0):
        raise RuntimeError(f"harness check failed (exit {result.returncode}): {report}")
    return report


def macs_per_cycle(report, dim) -> tuple[float, float]:
    """``(overall, steady)`` useful MACs per simulated cycle.

    ``overall``: from the cycle of the first accepted activation row to the cycle of the last
    result row, both included (pipeline fill and drain count). ``steady``: from the first to
    the last accepted activation row (excludes the fill and drain).
    """
    macs = report["accepted"] * dim * dim
    overall = macs / (report["last_result"] - report["first_accept"] + 1)
    steady = macs / (report["last_accept"] - report["first_accept"] + 1)
    return overall, steady

"""The whole accelerator in the compiled Verilator harness (``harness/accel_bench.cpp``):
build it, run a GEMM through it, check the result against the golden model."""

import json
import subprocess
from pathlib import Path

import numpy as np

from hdl.registers import tessera_register_map
from sw.assembler import to_words
from sw.compiler import compile_gemm, plan_gemm
from sw.driver import golden_gemm, random_gemm
from sw.gemm_sim import TOP, write_accelerator_verilog

from .verilator_bench import verilate_harness

__all__ = ["build_accel_harness", "run_accel_gemm"]

HARNESS = Path(__file__).resolve().parent / "harness" / "accel_bench.cpp"


def _defines(config):
    """Bus width, register offsets and field values, from the register map."""
    registers = {reg.name: reg for reg in tessera_register_map(config)}
    status = registers["STATUS"]
    defines = {name: registers[name].offset for name in (
        "CONTROL", "STATUS", "INSN", "INSN_FREE", "CYCLES_LO", "CYCLES_HI", "ERROR_CAUSE")}
    defines.update(
        BUS_BYTES=config.bus_data_width // 8,
        RUN=registers["CONTROL"].encode(RUN=1),
        BUSY=status.encode(BUSY=1), DONE=status.encode(DONE=1), ERROR=status.encode(ERROR=1))
    return defines


def build_accel_harness(config, build_dir):
    """Verilate the accelerator of ``config`` with the harness; returns the binary. Skips the
    build when nothing changed since the last one."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    source = write_accelerator_verilog(config, build_dir)
    return verilate_harness(source, TOP, HARNESS, _defines(config), build_dir, "accel_bench")


def run_accel_gemm(exe, config, m, k, n, *, seed=1, work_dir):
    """A random int32 GEMM through the harness; returns its report with ``match``."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    a, w = random_gemm(rng, m, k, n)
    plan = plan_gemm(config, m, k, n)
    image = bytearray(plan.end_addr)
    image[plan.a_addr:plan.a_addr + len(plan.pack_a(a))] = plan.pack_a(a)
    image[plan.w_addr:plan.w_addr + len(plan.pack_w(w))] = plan.pack_w(w)
    (work_dir / "memory.bin").write_bytes(bytes(image))
    words = [word for insn in compile_gemm(plan) for word in to_words(insn)]
    (work_dir / "program.bin").write_bytes(np.asarray(words, dtype="<u4").tobytes())
    size = plan.m * plan.c_stride
    result = subprocess.run(
        [str(exe), "--memory", "memory.bin", "--program", "program.bin", "--out", "out.bin",
         "--out-addr", str(plan.c_addr), "--out-size", str(size)],
        capture_output=True, text=True, cwd=work_dir)
    if result.returncode != 0:
        raise RuntimeError(f"harness failed ({result.returncode}): {result.stderr[-2000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    got = plan.unpack_output((work_dir / "out.bin").read_bytes())
    report.update(m=m, k=k, n=n, seed=seed, macs=m * k * n,
                  match=bool(np.array_equal(got, golden_gemm(config, a, w))))
    report["utilization"] = report["macs"] / (report["busy_cycles"] * config.dim ** 2)
    return report

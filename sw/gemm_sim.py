"""Run GEMMs end to end on the accelerator's Verilog under cocotb (Verilator or Icarus)."""

import hashlib
import json
from pathlib import Path

from hdl.top import Accelerator
from sim.cocotb_run import config_to_env, run_cocotb
from sw.verilog import write_component_verilog

__all__ = ["TOP", "run_compute_phase", "run_error_checks", "run_gemms",
           "write_accelerator_verilog"]

TOP = "tessera_top"
ROOT = Path(__file__).resolve().parent.parent


def write_accelerator_verilog(config, build_dir):
    """The accelerator's Verilog in ``build_dir``; rewritten only when it changed, so that a
    simulator build of the same design is reused."""
    fresh = write_component_verilog(Accelerator(config), TOP, build_dir / "fresh")
    path = build_dir / f"{TOP}.v"
    text = fresh.read_text()
    if not path.exists() or hashlib.sha256(path.read_bytes()).digest() != hashlib.sha256(
            text.encode()).digest():
        path.write_text(text)
    return path


def _env(config, gemms, stall, latency, report):
    return {"TESSERA_CONFIG": config_to_env(config), "TESSERA_GEMMS": json.dumps(gemms),
            "TESSERA_STALL": str(stall), "TESSERA_LATENCY": str(latency),
            "TESSERA_REPORT": str(report)}


def _build_dir(config, simulator, build_dir):
    build_dir = Path(build_dir or ROOT / "build" / "gemm" / config.name / simulator)
    build_dir.mkdir(parents=True, exist_ok=True)
    return build_dir


def run_error_checks(config, *, simulator="verilator", stall=0.0, latency=0, build_dir=None):
    """The testbench's ``errors_stop_cleanly``: every error cause, then a GEMM after
    SOFT_RESET. Raises :class:`sim.cocotb_run.CocotbFailure` on a failure."""
    build_dir = _build_dir(config, simulator, build_dir)
    source = write_accelerator_verilog(config, build_dir)
    env = _env(config, [], stall, latency, build_dir / "report.json")
    run_cocotb(sources=[source], toplevel=TOP, test_module="sim.tb_accelerator",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env=dict(env, TESSERA_ERRORS="1"), testcase="errors_stop_cleanly")


def run_compute_phase(config, tiles, rows, *, simulator="verilator", build_dir=None):
    """The testbench's ``compute_phase`` (operands on chip); returns its report."""
    build_dir = _build_dir(config, simulator, build_dir)
    source = write_accelerator_verilog(config, build_dir)
    report = build_dir / "compute.json"
    report.unlink(missing_ok=True)
    env = _env(config, [], 0.0, 0, report)
    run_cocotb(sources=[source], toplevel=TOP, test_module="sim.tb_accelerator",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env=dict(env, TESSERA_COMPUTE=f"{tiles},{rows}"), testcase="compute_phase")
    return json.loads(report.read_text())


def run_gemms(config, gemms, *, simulator="verilator", stall=0.0, latency=0, build_dir=None,
              sources=None):
    """Run ``gemms`` (dicts with m, k, n, seed, requant) one after another on one simulated
    accelerator; returns one report dict per GEMM (see :mod:`sim.tb_accelerator`).

    ``sources`` (default: the accelerator's Verilog, written here) are the Verilog files of a
    ``tessera_top`` to run instead: the foundry bundle, or its gate-level netlist with the cell
    models."""
    build_dir = _build_dir(config, simulator, build_dir)
    if sources is None:
        sources = [write_accelerator_verilog(config, build_dir)]
    report = build_dir / "report.json"
    report.unlink(missing_ok=True)
    run_cocotb(sources=sources, toplevel=TOP, test_module="sim.tb_accelerator",
               build_dir=build_dir / "sim_build", simulator=simulator,
               env=_env(config, gemms, stall, latency, report), testcase="gemms_match_golden")
    return json.loads(report.read_text())

"""Build and run cocotb testbenches on generated Verilog (Verilator by default)."""

import dataclasses
import json
import os
from pathlib import Path

from hdl.config import TesseraConfig

__all__ = ["FAST_BUILD", "CocotbFailure", "config_from_env", "config_to_env", "run_cocotb"]

ROOT = Path(__file__).resolve().parent.parent

#: Verilator options after cocotb's: only the top level's ports are reachable from Python
#: (cocotb asks for every signal, ``--public-flat-rw``, which makes the model several times
#: slower and its C++ twice as long to compile), and the C++ unoptimised (``-O0`` comes after
#: the makefile's ``-Os``). The C++ compile, not the simulation, takes most of a Verilator
#: test's time (small's accelerator: 72 s to build, 2.5 s to run its GEMMs).
FAST_BUILD = ["--no-public-flat-rw", "--public-depth", "1", "-CFLAGS", "-O0"]


class CocotbFailure(AssertionError):
    """A cocotb run reported failing tests (or none at all)."""


def config_to_env(config):
    return json.dumps(dataclasses.asdict(config))


def config_from_env():
    return TesseraConfig(**json.loads(os.environ["TESSERA_CONFIG"]))


def run_cocotb(*, sources, toplevel, test_module, build_dir, env=None, simulator="verilator",
               testcase=None, defines=None, build_args=()):
    """Compile ``sources`` (with the preprocessor ``defines``, a dict, and the simulator's
    ``build_args`` after the defaults) and run ``test_module`` against ``toplevel``.

    Each parametrized build gets its own ``build_dir``. Raises :class:`CocotbFailure` unless
    every test in the module passed; returns the number of tests run.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from sw.toolchain import use_toolchain

    use_toolchain()
    build_dir = Path(build_dir).resolve()
    runner = get_runner(simulator)
    defaults = []
    if simulator == "verilator":
        # Amaranth's Verilog trips WIDTH warnings; lint is a separate, deliberate step.
        defaults = ["-Wno-fatal", "-Wno-WIDTH", "-O2", *FAST_BUILD]
    build_args = defaults + list(build_args)
    runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                 defines=dict(defines or {}), build_dir=build_dir, build_args=build_args,
                 timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
    results = runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                          test_dir=ROOT, extra_env=dict(env or {}), testcase=testcase,
                          results_xml=str(build_dir / "results.xml"),
                          log_file=build_dir / "test.log")
    total, failed = get_results(Path(results))
    if total == 0 or failed:
        log = (build_dir / "test.log").read_text(errors="replace")[-4000:]
        raise CocotbFailure(f"{failed} of {total} cocotb tests failed in {build_dir}\n{log}")
    return total

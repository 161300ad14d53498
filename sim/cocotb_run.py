"""Build and run cocotb testbenches on generated Verilog (Verilator by default)."""

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
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


def _shared_model_dir(simulator, toplevel, sources, defines, build_args):
    """``build/cocotb/<simulator>-<toplevel>-<hash>``: one folder per distinct build (the
    sources' names and contents, the top, the defines and the options), its sources copied
    in once, so that a second build of the same design is found up to date."""
    digest = hashlib.sha256(json.dumps(
        [simulator, toplevel, sorted(defines.items()), list(build_args)]).encode())
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    folder = ROOT / "build" / "cocotb" / f"{simulator}-{toplevel}-{digest.hexdigest()[:16]}"
    (folder / "src").mkdir(parents=True, exist_ok=True)
    return folder


def run_cocotb(*, sources, toplevel, test_module, build_dir, env=None, simulator="verilator",
               testcase=None, defines=None, build_args=(), shared_build=True):
    """Compile ``sources`` (with the preprocessor ``defines``, a dict, and the simulator's
    ``build_args`` after the defaults) and run ``test_module`` against ``toplevel``.

    The results and logs go to ``build_dir``. With ``shared_build`` the simulator's model is
    built in a folder shared by every run of the same design and options
    (:func:`_shared_model_dir`): a Verilator build takes 10-70 s, so parametrized tests of one
    design build it once. A file lock lets one process at a time build (or find up to date)
    a model, across pytest-xdist workers too; runs of a built model may overlap (they write
    only into their own ``build_dir``). Without, it is built in ``build_dir``. Raises
    :class:`CocotbFailure` unless every test in the module passed; returns the number of tests
    run.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from sw.toolchain import use_toolchain

    use_toolchain()
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [Path(s).resolve() for s in sources]
    defines = dict(defines or {})
    defaults = []
    if simulator == "verilator":
        # Amaranth's Verilog trips WIDTH warnings; lint is a separate, deliberate step.
        defaults = ["-Wno-fatal", "-Wno-WIDTH", "-O2", *FAST_BUILD]
    build_args = defaults + list(build_args)
    model_dir, copies = build_dir, sources
    if shared_build:
        model_dir = _shared_model_dir(simulator, toplevel, sources, defines, build_args)
        copies = [model_dir / "src" / f"{i}_{s.name}" for i, s in enumerate(sources)]
    with open(model_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; released when the file closes
        for copy, source in zip(copies, sources, strict=True):
            if not copy.exists():  # same name and contents as any earlier copy: the digest
                shutil.copyfile(source, copy.with_suffix(".part"))
                copy.with_suffix(".part").replace(copy)
        runner = get_runner(simulator)
        runner.build(sources=[str(s) for s in copies], hdl_toplevel=toplevel, defines=defines,
                     build_dir=model_dir, build_args=build_args, timescale=("1ns", "1ps"),
                     log_file=build_dir / "build.log")
        fcntl.flock(lock, fcntl.LOCK_SH)  # runs only read the model: they may overlap
        results = runner.test(test_module=test_module, hdl_toplevel=toplevel,
                              build_dir=model_dir, test_dir=ROOT, extra_env=dict(env or {}),
                              testcase=testcase, results_xml=str(build_dir / "results.xml"),
                              log_file=build_dir / "test.log")
    total, failed = get_results(Path(results))
    if total == 0 or failed:
        log = (build_dir / "test.log").read_text(errors="replace")[-4000:]
        raise CocotbFailure(f"{failed} of {total} cocotb tests failed in {build_dir}\n{log}")
    return total

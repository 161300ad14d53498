"""Verilog generation."""

from pathlib import Path

from amaranth.back import verilog

from hdl.systolic import SystolicArray

from .toolchain import use_toolchain

__all__ = ["ARRAY_TOP", "write_array_verilog"]

#: Module name of the systolic array's generated Verilog.
ARRAY_TOP = "tessera_systolic"


def write_array_verilog(config, out_dir) -> Path:
    """Write the array of ``config`` as ``<out_dir>/tessera_systolic.v``; returns the path."""
    use_toolchain()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{ARRAY_TOP}.v"
    text = verilog.convert(SystolicArray(config), name=ARRAY_TOP, emit_src=False)
    path.write_text(text)
    return path

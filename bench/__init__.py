"""Tessera benchmarks: array throughput, simulation speed and FPGA build times.

Run with ``python -m bench`` (``make bench``); results go to ``build/bench/results.json``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "bench"

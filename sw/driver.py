"""Host driver: runs a GEMM on a Tessera device through a backend.

A backend moves bytes to and from the device's system memory and runs a program; the driver
lays out operands (:mod:`sw.compiler`), compiles, runs and unpacks. The same driver code runs
on every backend: :class:`ModelBackend` (the functional model of :mod:`sim.functional`) here,
the cocotb simulation and a board elsewhere. Backend methods are coroutines, so a cocotb
backend can await the simulated bus.
"""

import asyncio
from dataclasses import dataclass

import numpy as np

from sim.functional import AcceleratorModel, SystemMemory
from sim.model import (
    INT8_MAX,
    INT8_MIN,
    RequantParams,
    postprocess_rows,
    quantize_multiplier,
    wrap_signed,
)

from .compiler import compile_gemm, plan_gemm

__all__ = ["Driver", "GemmResult", "ModelBackend", "first_mismatch", "gemm_operands", "golden_gemm",
           "random_gemm", "random_requant_params", "run"]


@dataclass
class GemmResult:
    """What a GEMM run gives: the output matrix, the cycles from start to done (``None`` for
    the functional model) and the useful MACs (M * K * N)."""
    output: np.ndarray
    cycles: int | None
    macs: int
    instructions: int

    def utilization(self, config):
        """Useful MACs over the array's ``dim * dim`` MACs per cycle of the run (None without
        a cycle count)."""
        return None if self.cycles is None else self.macs / (self.cycles * config.dim ** 2)


class ModelBackend:
    """The functional model as a device: system memory of ``memory_size`` bytes at 0."""

    name = "model"

    def __init__(self, config, memory_size=1 << 24, *, schedule="in_order", queue_depth=None):
        self.config = config
        self.memory = SystemMemory(memory_size)
        self.schedule, self.queue_depth = schedule, queue_depth

    async def write(self, addr, payload):
        self.memory.write(addr, payload)

    async def read(self, addr, size):
        return self.memory.read(addr, size)

    async def run(self, program):
        """Run ``program``; returns the cycles it took (``None``: not modelled)."""
        model = AcceleratorModel(self.config, self.memory, schedule=self.schedule,
                                 queue_depth=self.queue_depth)
        model.run(program)
        self.last_model = model
        return None


class Driver:
    """Runs GEMMs on ``backend`` (which knows its ``config``)."""

    def __init__(self, backend, *, base=0):
        self.backend, self.config, self.base = backend, backend.config, base

    async def gemm(self, a, w, params=None):
        """``A @ W`` (int8 M x K and K x N); with ``params`` (a :class:`RequantParams` of N
        columns) requantized to int8, else the int32 accumulators."""
        a, w = np.asarray(a), np.asarray(w)
        if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
            raise ValueError(f"A and W must be M x K and K x N, not {a.shape} and {w.shape}")
        m, k = a.shape
        n = w.shape[1]
        plan = plan_gemm(self.config, m, k, n, requant=params is not None, base=self.base)
        await self.backend.write(plan.a_addr, plan.pack_a(a))
        await self.backend.write(plan.w_addr, plan.pack_w(w))
        if params is not None:
            await self.backend.write(plan.params_addr, plan.pack_params(params))
        program = compile_gemm(plan)
        cycles = await self.backend.run(program)
        image = await self.backend.read(plan.c_addr, plan.m * plan.c_stride)
        return GemmResult(plan.unpack_output(image), cycles, m * k * n, len(program))


def golden_gemm(config, a, w, params=None):
    """The golden model's answer: int32 accumulators (wrapped to ``acc_width``) or, with
    ``params``, their requantization."""
    acc = wrap_signed(np.asarray(a, dtype=np.int64) @ np.asarray(w, dtype=np.int64),
                      config.acc_width)
    if params is None:
        return acc
    return postprocess_rows(wrap_signed(acc, 32), params)


def first_mismatch(output, want):
    """``{"row", "column", "expected", "got"}`` of the first element where ``output`` differs
    from ``want`` (row-major order), or None when they are equal."""
    differ = np.argwhere(np.asarray(output) != np.asarray(want))
    if not len(differ):
        return None
    row, col = (int(v) for v in differ[0])
    return {"row": row, "column": col, "expected": int(want[row, col]),
            "got": int(output[row, col])}


def random_gemm(rng, m, k, n):
    """Random int8 operands with the edge values (-128, 127, 0, -1) in every row and column
    that has room for them."""
    a = rng.integers(INT8_MIN, INT8_MAX + 1, size=(m, k))
    w = rng.integers(INT8_MIN, INT8_MAX + 1, size=(k, n))
    for matrix in (a, w):
        edges = np.array([INT8_MIN, INT8_MAX, 0, -1])
        mask = rng.random(matrix.shape) < 0.1
        matrix[mask] = rng.choice(edges, size=int(mask.sum()))
    return a, w


def gemm_operands(gemm):
    """``(a, w, params)`` of ``gemm``, a dict with ``m``, ``k``, ``n``, ``seed`` and
    ``requant``: random operands (and post-processing parameters when ``requant``) drawn from
    the seed, the same on every backend."""
    rng = np.random.default_rng(gemm["seed"])
    a, w = random_gemm(rng, gemm["m"], gemm["k"], gemm["n"])
    params = random_requant_params(rng, gemm["n"], gemm["k"]) if gemm["requant"] else None
    return a, w, params


def random_requant_params(rng, n, k):
    """Random valid per-channel parameters scaled so that outputs of a K-deep int8 product
    spread over the int8 range (not all saturated)."""
    # |acc| is up to about 128 * 128 * sqrt(K) for random operands: scale that to ~128.
    scales = rng.uniform(0.5, 2.0, size=n) * 128 / (128 * 128 * np.sqrt(k))
    multipliers, shifts = [], []
    for scale in scales:
        multiplier, shift = quantize_multiplier(float(scale))
        multipliers.append(multiplier)
        shifts.append(shift)
    bias = rng.integers(-(1 << 12), 1 << 12, size=n).tolist()
    zero_point = int(rng.integers(-20, 21))
    act_min, act_max = (zero_point, INT8_MAX) if rng.random() < 0.5 else (INT8_MIN, INT8_MAX)
    return RequantParams(bias, multipliers, shifts, zero_point, act_min, act_max)


def run(coroutine):
    """Run a driver coroutine outside a simulator (the model backend)."""
    return asyncio.run(coroutine)

"""GEMM compiler: tiles ``C = A @ W`` of any M x K x N into a Tessera instruction stream.

Memory layout (:class:`GemmPlan`, all offsets from ``base``): A is M rows of ``Kt`` tiles of
``dim`` int8 lanes (each tile :func:`hdl.isa.row_bytes` bytes, zero padded), W is
``Kt * dim`` rows of ``Nt`` such tiles (rows beyond K are zero), C is M rows of ``Nt`` output
tiles (int8 rows, or int32 rows of :func:`hdl.isa.acc_row_bytes`), then one post-processing
parameter block per column tile. Zero padding makes every edge tile a full tile: padded lanes
add nothing, padded output lanes are dropped by :meth:`GemmPlan.unpack_output`.

Schedule: for each column tile ``j`` and block of ``mb`` rows (as many as half the
accumulator and half the scratchpad hold), for each depth tile ``i``: LOAD the weight tile
(i, j) and the ``mb`` activation rows of depth tile ``i`` into one scratchpad half, EXEC them
into one accumulator half (overwrite for ``i = 0``, accumulate after); then STORE the block
through the post-processing. Scratchpad halves and accumulator halves alternate (double
buffering), so LOAD of the next group overlaps EXEC of this one, and EXEC of the next block
overlaps STORE of this one. Dependency tokens: LOAD -> EXEC after each group's loads, EXEC ->
LOAD when a half is free again, EXEC -> STORE after a block's last EXEC, STORE -> EXEC when
its accumulator half is free again. Every token is pushed by an instruction earlier in program
order than the one that pops it, so the program cannot deadlock on full queues, and no token is
left over at the end.
"""

from dataclasses import dataclass

import numpy as np

from hdl.isa import Opcode, acc_row_bytes, param_block_bytes, row_bytes
from hdl.postproc import PostMode

from .assembler import Instruction

__all__ = ["GemmPlan", "compile_gemm", "plan_gemm"]


def _tiles(value, dim):
    return -(-value // dim)


@dataclass(frozen=True)
class GemmPlan:
    """Shapes, tiling and the system-memory layout of one GEMM."""
    config: object
    m: int
    k: int
    n: int
    requant: bool
    base: int
    block_rows: int

    @property
    def a_resident(self):
        """A stays on chip: all M rows of every depth tile fit half the scratchpad (and one
        block of the accumulator), so A is loaded once and only weight tiles move."""
        cfg = self.config
        return (self.m == self.block_rows and self.m * self.k_tiles <= cfg.sp_depth // 2
                and cfg.sp_depth // 2 >= 2 * cfg.dim)

    @property
    def k_tiles(self):
        return _tiles(self.k, self.config.dim)

    @property
    def n_tiles(self):
        return _tiles(self.n, self.config.dim)

    @property
    def a_stride(self):
        return self.k_tiles * row_bytes(self.config)

    @property
    def w_stride(self):
        return self.n_tiles * row_bytes(self.config)

    @property
    def out_tile_bytes(self):
        return row_bytes(self.config) if self.requant else acc_row_bytes(self.config)

    @property
    def c_stride(self):
        return self.n_tiles * self.out_tile_bytes

    @property
    def a_addr(self):
        return self.base

    @property
    def w_addr(self):
        return self.a_addr + self.m * self.a_stride

    @property
    def c_addr(self):
        return self.w_addr + self.k_tiles * self.config.dim * self.w_stride

    @property
    def params_addr(self):
        return self.c_addr + self.m * self.c_stride

    @property
    def end_addr(self):
        params = self.n_tiles * param_block_bytes(self.config) if self.requant else 0
        return self.params_addr + params

    # --- Packing operands into, and results out of, system-memory images. ---

    def _tiled(self, matrix, rows, cols, tile_bytes, dtype):
        """``matrix`` (rows x cols) as rows of column tiles of ``tile_bytes`` each."""
        dim = self.config.dim
        tiles = _tiles(cols, dim)
        padded = np.zeros((rows, tiles * dim), dtype=dtype)
        padded[:matrix.shape[0], :matrix.shape[1]] = matrix
        lanes = padded.reshape(rows, tiles, dim).view(np.uint8).reshape(rows, tiles, -1)
        image = np.zeros((rows, tiles, tile_bytes), dtype=np.uint8)
        image[:, :, :lanes.shape[2]] = lanes
        return image.tobytes()

    def pack_a(self, a):
        return self._tiled(np.asarray(a), self.m, self.k, row_bytes(self.config), np.int8)

    def pack_w(self, w):
        rows = self.k_tiles * self.config.dim
        return self._tiled(np.asarray(w), rows, self.n, row_bytes(self.config), np.int8)

    def pack_params(self, params):
        """One parameter block per column tile from ``params`` (a :class:`RequantParams` of
        N columns; padded columns get zeros)."""
        dim, image = self.config.dim, bytearray()
        for j in range(self.n_tiles):
            words = np.zeros((dim + 1, 4), dtype="<i4")
            cols = slice(j * dim, min((j + 1) * dim, self.n))
            count = cols.stop - cols.start
            words[:count, 0] = params.bias[cols]
            words[:count, 1] = params.multiplier[cols]
            words[:count, 2] = params.shift[cols]
            words[dim, :3] = params.zero_point, params.act_min, params.act_max
            block = words.tobytes()
            image += block + bytes(param_block_bytes(self.config) - len(block))
        return bytes(image)

    def unpack_output(self, image):
        """C (M x N) from the bytes of the output region."""
        dtype = np.int8 if self.requant else np.dtype("<i4")
        lanes = np.frombuffer(image, dtype=np.uint8).reshape(
            self.m, self.n_tiles, self.out_tile_bytes)
        width = self.config.dim * np.dtype(dtype).itemsize
        values = np.ascontiguousarray(lanes[:, :, :width]).view(dtype)
        return values.reshape(self.m, -1)[:, :self.n].astype(np.int64)


def plan_gemm(config, m, k, n, *, requant=False, base=0):
    """The :class:`GemmPlan` of an ``m`` x ``k`` x ``n`` GEMM with operands at ``base``."""
    for name, value in (("m", m), ("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if base % (config.bus_data_width // 8):
        raise ValueError(f"base must be aligned to the {config.bus_data_width // 8}-byte "
                         f"beat, not {base:#x}")
    block_rows = min(m, config.acc_depth // 2, config.sp_depth // 2 - config.dim)
    plan = GemmPlan(config, m, k, n, requant, base, block_rows)
    reach = 1 << config.bus_addr_width
    if plan.end_addr > reach:
        raise ValueError(f"a {m}x{k}x{n} GEMM at base {base:#x} needs system memory up to "
                         f"{plan.end_addr:#x}; the {config.name} config's DMA reaches {reach:#x} "
                         f"(bus_addr_width={config.bus_addr_width})")
    return plan


def compile_gemm(plan):
    """The instruction stream (ending in END) that computes ``plan``'s GEMM."""
    cfg, dim = plan.config, plan.config.dim
    sp_half, acc_half = cfg.sp_depth // 2, cfg.acc_depth // 2
    blocks = [(j, m0, min(plan.block_rows, plan.m - m0))
              for j in range(plan.n_tiles) for m0 in range(0, plan.m, plan.block_rows)]
    groups = len(blocks) * plan.k_tiles
    program, group = [], 0
    if plan.a_resident:
        # A is loaded once into the first half, row block i at i * M; only weight tiles
        # move per group, into two slots of the second half.
        for i in range(plan.k_tiles):
            program.append(Instruction(Opcode.LOAD, dict(
                sp_addr=i * plan.m, rows=plan.m, dram_addr=plan.a_addr + i * row_bytes(cfg),
                dram_stride=plan.a_stride)))
    for b, (j, m0, rows) in enumerate(blocks):
        if plan.requant and (b == 0 or blocks[b - 1][0] != j):
            program.append(Instruction(Opcode.CONFIG, dict(
                dram_addr=plan.params_addr + j * param_block_bytes(cfg))))
        acc_addr = (b % 2) * acc_half
        for i in range(plan.k_tiles):
            if plan.a_resident:
                weights, acts = sp_half + (group % 2) * dim, i * plan.m
            else:
                weights = (group % 2) * sp_half
                acts = weights + dim
            program.append(Instruction(Opcode.LOAD, dict(
                sp_addr=weights, rows=dim, dram_addr=plan.w_addr + i * dim * plan.w_stride
                + j * row_bytes(cfg), dram_stride=plan.w_stride),
                pop_next=group >= 2, push_next=plan.a_resident))
            if not plan.a_resident:
                program.append(Instruction(Opcode.LOAD, dict(
                    sp_addr=acts, rows=rows, dram_addr=plan.a_addr + m0 * plan.a_stride
                    + i * row_bytes(cfg), dram_stride=plan.a_stride), push_next=True))
            last = i == plan.k_tiles - 1
            program.append(Instruction(Opcode.EXEC, dict(
                weight_addr=weights, act_addr=acts, acc_addr=acc_addr, rows=rows, preload=1,
                accumulate=int(i > 0)),
                pop_prev=True, push_prev=group + 2 < groups,
                pop_next=i == 0 and b >= 2, push_next=last))
            group += 1
        mode = PostMode.REQUANT if plan.requant else PostMode.ACC
        program.append(Instruction(Opcode.STORE, dict(
            acc_addr=acc_addr, rows=rows, dest=plan.c_addr + m0 * plan.c_stride
            + j * plan.out_tile_bytes, dram_stride=plan.c_stride, mode=mode.value, to_sp=0),
            pop_prev=True, push_prev=b + 2 < len(blocks)))
    program.append(Instruction(Opcode.END))
    return program

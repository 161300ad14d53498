"""Random stimulus for the systolic array, with its expected results from the golden model."""

from dataclasses import dataclass

import numpy as np

from .model import SystolicModel

__all__ = ["ArrayWorkload", "edge_values", "random_operands", "make_array_workload"]


def edge_values(width, is_signed):
    """The corner values of a lane: extremes, zero, one and all-ones."""
    if is_signed:
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        return sorted({lo, hi, 0, 1, -1})
    return sorted({0, 1, (1 << width) - 1})


def random_operands(rng, shape, width, is_signed, edge_fraction=0.25):
    """Uniform random lanes, about ``edge_fraction`` of them replaced by corner values."""
    lo = -(1 << (width - 1)) if is_signed else 0
    hi = (1 << (width - 1)) - 1 if is_signed else (1 << width) - 1
    values = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    corners = np.array(edge_values(width, is_signed), dtype=np.int64)
    mask = rng.random(shape) < edge_fraction
    values[mask] = rng.choice(corners, size=int(mask.sum()))
    return values


@dataclass
class ArrayWorkload:
    """Streams for :class:`hdl.systolic.SystolicArray` and what must come out.

    ``weight_rows``: (row, last) in order; ``act_rows``: (row, swap, tag) in order;
    ``expected``: (row, tag), one per activation row.
    """
    weight_rows: list
    act_rows: list
    expected: list


def make_array_workload(config, rng, n_tiles, rows_per_tile=None, leading_rows=0):
    """``n_tiles`` random weight tiles, each used by a run of activation rows.

    ``rows_per_tile`` is an int, or None for a random run length in 1..2*dim. ``leading_rows``
    activation rows come before the first swap and use the all-zero reset tile.
    """
    dim = config.dim
    model = SystolicModel(config)
    weight_rows, act_rows, expected = [], [], []
    tag_mask = (1 << config.tag_width) - 1

    def act(swap):
        row = random_operands(rng, dim, config.act_width, config.act_signed)
        tag = int(rng.integers(0, tag_mask + 1))
        act_rows.append(([int(v) for v in row], swap, tag))
        result, tag = model.act_row(row, swap=swap, tag=tag)
        expected.append(([int(v) for v in result], tag))

    for _ in range(leading_rows):
        act(False)
    for _ in range(n_tiles):
        tile = random_operands(rng, (dim, dim), config.weight_width, config.weight_signed)
        model.load_tile(tile)
        for k in range(dim):
            weight_rows.append(([int(v) for v in tile[k]], k == dim - 1))
        count = rows_per_tile or int(rng.integers(1, 2 * dim + 1))
        for i in range(count):
            act(i == 0)
    return ArrayWorkload(weight_rows, act_rows, expected)

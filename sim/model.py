"""Bit-exact golden model of Tessera.

Everything here is plain numpy on int64 values, written from the specification and never from
the RTL. Sums wrap modulo ``2**acc_width`` exactly as the hardware accumulates.
"""

import numpy as np

__all__ = ["SystolicModel", "check_range", "matmul", "wrap_signed"]


def wrap_signed(values, width):
    """``values`` reduced to the two's-complement range of ``width`` bits."""
    values = np.asarray(values, dtype=np.int64)
    mask = (1 << width) - 1
    half = 1 << (width - 1)
    return ((values & mask) ^ half) - half


def check_range(name, values, width, is_signed):
    """Raise ``ValueError`` if any of ``values`` does not fit ``width`` bits."""
    values = np.asarray(values, dtype=np.int64)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi}]")
    return values


def matmul(acts, weights, config):
    """``acts @ weights`` as the array computes it.

    ``acts`` is R x K, ``weights`` K x N (K, N at most ``config.dim``); the result is R x N,
    wrapped to ``config.acc_width`` signed bits.
    """
    acts = check_range("acts", acts, config.act_width, config.act_signed)
    weights = check_range("weights", weights, config.weight_width, config.weight_signed)
    # Products of 8-bit operands summed over dim <= a few thousand rows fit int64 exactly.
    return wrap_signed(acts @ weights, config.acc_width)


class SystolicModel:
    """Transaction-level model of :class:`hdl.systolic.SystolicArray`.

    Weight rows fill a shadow tile; the activation row flagged ``swap`` makes the most recently
    completed shadow tile active; each activation row yields one result row with its tag.
    The active tile is all zeros after reset, as in the hardware.
    """

    def __init__(self, config):
        self.config = config
        dim = config.dim
        self.active = np.zeros((dim, dim), dtype=np.int64)
        self.shadow = np.zeros((dim, dim), dtype=np.int64)
        self.completed = None
        self._row = 0

    def load_weight_row(self, row, last):
        dim = self.config.dim
        if len(row) != dim:
            raise ValueError(f"weight row must have {dim} lanes, not {len(row)}")
        if bool(last) != (self._row == dim - 1):
            raise ValueError(f"last must be set on weight row {dim - 1} only")
        self.shadow[self._row] = row
        self._row = (self._row + 1) % dim
        if last:
            self.completed = self.shadow.copy()

    def load_tile(self, tile):
        for k, row in enumerate(tile):
            self.load_weight_row(row, last=(k == self.config.dim - 1))

    def act_row(self, row, swap=False, tag=0):
        """Returns ``(result_row, tag)``."""
        if swap:
            if self.completed is None:
                raise ValueError("swap without a completed weight tile")
            self.active, self.completed = self.completed, None
        result = matmul(np.asarray(row, dtype=np.int64)[None, :], self.active, self.config)[0]
        return result, tag

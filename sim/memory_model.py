"""Golden models of the scratchpad and the accumulator, at the level of accepted requests.

Both memories promise the same ordering: a read accepted in cycle t sees every write accepted
before cycle t and none accepted in cycle t. :func:`replay` applies that rule to a log of
accepted requests. Out-of-range addresses are refused (never wrapped): a write changes
nothing, a read answers zeros with its error flag set.
"""

import numpy as np

from .model import wrap_signed

__all__ = ["AccumulatorModel", "ScratchpadModel", "replay"]


class ScratchpadModel:
    def __init__(self, config):
        self.config = config
        self.depth = config.sp_depth
        self.rows = np.zeros((self.depth, config.dim), dtype=np.int64)
        self.error = False

    def read(self, addr):
        """``(row, error)``."""
        if addr >= self.depth:
            self.error = True
            return [0] * self.config.dim, True
        return [int(v) for v in self.rows[addr]], False

    def write(self, addr, row, accumulate=False):
        if addr >= self.depth:
            self.error = True
            return
        self.rows[addr] = row


class AccumulatorModel(ScratchpadModel):
    def __init__(self, config):
        super().__init__(config)
        self.depth = config.acc_depth
        self.rows = np.zeros((self.depth, config.dim), dtype=np.int64)

    def write(self, addr, row, accumulate=False):
        if addr >= self.depth:
            self.error = True
            return
        row = np.asarray(row, dtype=np.int64)
        if accumulate:
            row = row + self.rows[addr]
        self.rows[addr] = wrap_signed(row, self.config.acc_width)


def replay(model, log):
    """Answers to the reads in ``log``: a list of ``(cycle, kind, request)`` in cycle order,
    ``kind`` "read" (request: addr) or "write" (request: (addr, row, accumulate))."""
    answers = []
    by_cycle = {}
    for cycle, kind, request in log:
        by_cycle.setdefault(cycle, []).append((kind, request))
    for cycle in sorted(by_cycle):
        for kind, request in by_cycle[cycle]:
            if kind == "read":
                answers.append(model.read(request))
        for kind, request in by_cycle[cycle]:
            if kind == "write":
                model.write(*request)
    return answers

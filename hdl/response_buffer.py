"""Credit-based response buffer behind a fixed-latency pipeline."""

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["ResponseBuffer"]


class ResponseBuffer(wiring.Component):
    """Gives a fixed-latency pipeline (a memory read port, the systolic array) back-pressure.

    The owner accepts a request only while ``ready`` is high and pulses ``issue`` when it does;
    exactly ``latency`` cycles later it presents the answer on ``data``, which goes into a FIFO
    of :attr:`depth` entries (by default ``latency + 2``, enough for one request per cycle)
    drained by ``output``. ``ready`` counts requests
    in flight plus answers buffered, so the FIFO never overflows, the pipeline itself never
    stalls, and one request per cycle is sustained while ``output.ready`` stays high.

    Timing: an answer is on ``output`` one cycle after it was on ``data``; ``ready`` is a
    register (it does not depend on ``output.ready`` combinationally).

    Parameters
    ----------
    shape : ShapeLike or Layout
        Shape of an answer.
    latency : int
        Cycles from ``issue`` to ``data``.
    depth : int or None
        FIFO entries; an entry is free again ``latency + 2`` cycles after its request (when
        ``output`` takes the answer at once), so an owner that issues at most one request
        every ``R`` cycles needs only ``ceil((latency + 2) / R)`` for its full rate.
        ``None``: ``latency + 2``.

    Members
    -------
    issue : In(1)
    ready : Out(1)
    data : In(shape)
    output : Out(stream.Signature(shape))
    """

    def __init__(self, shape, latency, *, depth=None):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
        if depth is not None and (not isinstance(depth, int) or depth < 1):
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self.latency = latency
        self._depth = latency + 2 if depth is None else depth
        super().__init__({
            "issue": In(1),
            "ready": Out(1),
            "data": In(shape),
            "output": Out(stream.Signature(shape)),
        })

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        arrive = self.issue
        for i in range(self.latency):
            stage = Signal(name=f"arrive_d{i + 1}")
            m.d.sync += stage.eq(arrive)
            arrive = stage

        m.submodules.fifo = fifo = SyncFIFO(width=len(Value.cast(self.data)), depth=self.depth)
        m.d.comb += [
            fifo.w_en.eq(arrive),
            fifo.w_data.eq(self.data),
            self.output.valid.eq(fifo.r_rdy),
            self.output.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.output.ready),
        ]

        in_flight = Signal(range(self.depth + 1))
        popped = self.output.valid & self.output.ready
        m.d.comb += self.ready.eq(in_flight < self.depth)
        with m.If(self.issue & ~popped):
            m.d.sync += in_flight.eq(in_flight + 1)
        with m.Elif(~self.issue & popped):
            m.d.sync += in_flight.eq(in_flight - 1)
        return m

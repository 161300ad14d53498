"""Skid buffer: a register slice that cuts every combinational path through a stream."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Passes the beats of ``i`` to ``o`` in order, with ``o.valid``, ``o.payload`` and
    ``i.ready`` all flip-flops: no path from ``o.ready`` to ``i.ready`` or from ``i.valid`` to
    ``o.valid`` (for a stream between units that lie far apart on a big FPGA).

    Timing: a beat taken in cycle 0 is on ``o`` from cycle 1; one beat per cycle while ``o``
    takes them. Back-pressure: a beat taken while ``o`` stalls waits in the second ("skid")
    register, and ``i.ready`` is low until it has moved on (two beats held at most).

    Parameters
    ----------
    shape : shape-castable
        The payload's shape.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal.like(self.i.payload, reset_less=True)
        out_payload = self.o.payload
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):  # the output register is free next cycle
            with m.If(skid_valid):
                m.d.sync += [out_payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [out_payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):  # the output stalls: into the skid register
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m

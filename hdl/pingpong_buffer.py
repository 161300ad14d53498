"""Ping-pong buffer: a two-entry queue in flip-flops whose ``o.ready`` moves only pointers."""

from amaranth.hdl import Module, Mux, Signal

from .skid_buffer import SkidBuffer

__all__ = ["PingPongBuffer"]


class PingPongBuffer(SkidBuffer):
    """Passes the beats of ``i`` to ``o`` in order through two registers written and read
    in turn. Like :class:`hdl.skid_buffer.SkidBuffer` (same parameter and members),
    ``i.ready`` and ``o.valid`` are flip-flops (no path from ``o.ready`` to ``i.ready`` or
    from ``i.valid`` to ``o.valid``); unlike it, ``o.ready`` enables no payload register,
    only a read pointer and the fill flags, so a wide payload's clock enables come from
    ``i.valid`` and flip-flops alone (for a wide row whose consumer decides late).
    ``o.payload`` is a 2:1 multiplexer of the two registers by the read pointer.

    Timing: a beat taken in cycle 0 is on ``o`` from cycle 1; one beat per cycle while ``o``
    takes them. Back-pressure: two beats held at most; ``i.ready`` is low while both
    registers hold one.
    """

    def elaborate(self, platform):
        m = Module()
        entries = [Signal.like(self.i.payload, name=f"entry_{k}", reset_less=True)
                   for k in range(2)]
        write_ptr, read_ptr = Signal(), Signal()
        empty, full = Signal(init=1), Signal()
        pushed = self.i.valid & ~full
        popped = self.o.ready & ~empty
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(~empty),
                     self.o.payload.eq(Mux(read_ptr, entries[1], entries[0]))]
        for k, entry in enumerate(entries):
            with m.If(pushed & (write_ptr == k)):
                m.d.sync += entry.eq(self.i.payload)
        with m.If(pushed):
            m.d.sync += write_ptr.eq(~write_ptr)
        with m.If(popped):
            m.d.sync += read_ptr.eq(~read_ptr)
        with m.If(pushed & ~popped):
            m.d.sync += [empty.eq(0), full.eq(~empty)]
        with m.Elif(popped & ~pushed):
            m.d.sync += [full.eq(0), empty.eq(~full)]
        return m

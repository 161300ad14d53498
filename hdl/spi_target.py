"""SPI target (mode 0, MSB first) with byte streams, for the host link."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .host_link import FILL

__all__ = ["SPITarget"]


class SPITarget(wiring.Component):
    """An SPI target, mode 0 (CPOL 0, CPHA 0: MOSI sampled on SCK rising edges, MISO changes
    on falling edges), most significant bit first, clocked by the system clock.

    ``sck``, ``cs_n`` and ``mosi`` pass through two-flip-flop synchronisers, so an SCK edge
    takes effect about 3 ``clk`` cycles after it reaches the pin, and MISO changes 3 cycles
    after a falling edge. Hence:

    - f_SCK <= f_clk / 8: SCK high and low for at least 4 ``clk`` cycles each (so that MISO
      has settled before the host samples it at the next rising edge). On silicon, leave
      margin for pad delays (f_clk / 10).
    - CS_N falls at least one SCK half-period before the first rising edge, and rises at least
      one half-period after the last falling edge.

    Every 8 rising edges with CS_N low make a byte on ``rx`` (a one-entry register: a byte not
    taken before the next one completes is overwritten). At each byte boundary (the falling
    edge after the 8th rising edge) the next MISO byte is taken from ``tx``, or :data:`FILL`
    (0xFF) when ``tx`` has nothing, so that MISO is a stream of 0xFF until the link replies.
    While CS_N is high MISO is 1, the bit counter is cleared and ``tx`` is drained (no stale
    byte reaches the next transaction); the cycle after CS_N rises, ``frame_end`` pulses
    (for :attr:`hdl.host_link.HostLink.abort`: the host stopped listening).

    Members
    -------
    sck, cs_n, mosi : In(1)
        The pins (asynchronous).
    miso : Out(1)
        From a register.
    rx : Out(stream.Signature(8))
    tx : In(stream.Signature(8))
    frame_end : Out(1)
    selected : Out(1)
        CS_N is low (synchronised).
    """

    sck: In(1)
    cs_n: In(1)
    mosi: In(1)
    miso: Out(1)
    rx: Out(stream.Signature(8))
    tx: In(stream.Signature(8))
    frame_end: Out(1)
    selected: Out(1)

    def elaborate(self, platform):
        m = Module()
        sck, cs_n, mosi = Signal(), Signal(init=1), Signal()
        m.submodules.sck_sync = FFSynchronizer(self.sck, sck)
        m.submodules.cs_sync = FFSynchronizer(self.cs_n, cs_n, init=1)
        m.submodules.mosi_sync = FFSynchronizer(self.mosi, mosi)
        sck_q, cs_q = Signal(), Signal(init=1)
        m.d.sync += [sck_q.eq(sck), cs_q.eq(cs_n), self.frame_end.eq(cs_n & ~cs_q)]
        rise, fall = sck & ~sck_q, ~sck & sck_q

        bits = Signal(3)
        shift_in = Signal(8)
        shift_out = Signal(8, init=FILL)
        boundary = Signal()  # 8 bits received: load the next byte at the falling edge
        m.d.comb += [self.miso.eq(shift_out[7]), self.selected.eq(~cs_n)]

        with m.If(self.rx.ready):
            m.d.sync += self.rx.valid.eq(0)
        with m.If(cs_n):
            m.d.comb += self.tx.ready.eq(1)
            m.d.sync += [bits.eq(0), boundary.eq(0), shift_out.eq(FILL)]
        with m.Else():
            with m.If(rise):
                byte = Cat(mosi, shift_in[:7])
                m.d.sync += [shift_in.eq(byte), bits.eq(bits + 1)]
                with m.If(bits == 7):
                    m.d.sync += [self.rx.payload.eq(byte), self.rx.valid.eq(1), boundary.eq(1)]
            with m.If(fall):
                with m.If(boundary):
                    m.d.comb += self.tx.ready.eq(1)
                    m.d.sync += [shift_out.eq(Mux(self.tx.valid, self.tx.payload, FILL)),
                                 boundary.eq(0)]
                with m.Else():
                    m.d.sync += shift_out.eq(Cat(1, shift_out[:7]))
        return m

"""UART (8N1, least significant bit first) with byte streams, for the host link."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MAX_BAUD_ERROR", "MIN_DIVISOR", "UART"]

#: Largest difference between the asked baud rate and ``clk_hz / divisor``, relative.
MAX_BAUD_ERROR = 0.02
#: Fewest clock cycles per bit.
MIN_DIVISOR = 4
#: Samples of a character: start bit, 8 data bits, stop bit.
CHARACTER_BITS = 10


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {value!r}")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be positive and finite, not {value!r}")
    return value


class UART(wiring.Component):
    """A UART, 8N1, least significant bit first, clocked by the system clock.

    Each bit lasts :attr:`divisor` = ``round(clk_hz / baud)`` clock cycles (a cycle counter,
    no oversampling), so ``clk_hz / baud`` must be at least :data:`MIN_DIVISOR` (4) and
    within :data:`MAX_BAUD_ERROR` (2 %) of an integer: 12 MHz serves 3 Mbaud (4 cycles),
    115200 baud (104: 0.2 % fast) and 921600 baud (13: 0.2 % fast).

    Receiver: ``rx_pin`` passes a two-flip-flop synchroniser (2 cycles). The line falling
    low starts a character; the start bit is checked at its middle (a low pulse shorter than
    :attr:`glitch_cycles`, about half a bit, is ignored), then every bit is sampled once at
    its middle, by counting cycles from the falling edge. Only the edge's cycle is known, so
    the samples fall up to one cycle early; the bits of the sender may be longer than ours by
    up to ``k / (9 divisor)`` or shorter by ``(divisor - 1 - k) / (10 divisor)``, with
    ``k = (divisor - 1) // 2`` (:attr:`rx_tolerance`): +2.8 %/-5 % at 4 cycles per bit,
    +4.2 %/-5 % at 8, +5.1 %/-4.6 % at 13, towards +5.6 %/-5 % with many cycles per bit.
    The divider error counts against this, so with 4 to 7 cycles per bit keep it well under
    the 2 % allowed. Back-to-back characters are received (the stop bit is sampled at its
    middle, and the receiver is then ready for the next start bit).

    A byte is offered on ``rx`` 2 to 3 cycles after the middle of its stop bit and held until
    it is taken: the consumer has one character time, until the next stop bit, to take it. A
    byte completing while the previous one is still offered is dropped (overrun), and so is a
    byte whose stop bit is low (framing error; the receiver then waits for the line to go
    high, so a break is one error); either pulses ``rx_error``. Behind the host link, which
    takes no bytes while it executes a frame and replies, a dropped byte makes a bad CRC or a
    short frame, which the protocol recovers from.

    With ``compact`` the byte is offered from the shift register that received it (8
    flip-flops fewer): it is held until the next character's first data bit is sampled, at
    least 2 bit times after the middle of its stop bit. A byte not taken by then is dropped
    (overrun: ``rx_error``), and the new one is offered when it completes: the newest byte
    wins instead of the oldest.

    ``idle_gap`` pulses once when the line has been high for ``gap_bits`` bit times after
    the end of a character's stop bit (measured from the synchronised line, so the pulse
    comes 2 to 3 cycles later), if a start bit was seen since the last pulse: not when the
    line is idle from reset. It is the host link's ``frame_end``; ``gap_bits`` must exceed
    any pause the host's USB-serial bridge makes inside one write, and stay below the silence
    the host keeps before retrying a failed request (:class:`sw.link.SerialTransport`'s
    ``gap_s``).

    Transmitter: ``tx.ready`` is high while nothing is sent and in the last cycle of a stop
    bit; the start bit begins the cycle after the handshake, so while ``tx.valid`` stays
    high bytes go out back to back, one per 10 bit times.

    Parameters
    ----------
    clk_hz : int or float
        Frequency of the ``sync`` clock.
    baud : int or float
        Bit rate, both ways.
    gap_bits : int
        Idle bit times that make ``idle_gap``.
    compact : bool
        Offer received bytes from the shift register (see above).

    Members
    -------
    rx_pin : In(1)
        The receive pin (asynchronous); high when idle.
    tx_pin : Out(1)
        The transmit pin, from a register; high when idle.
    rx : Out(stream.Signature(8))
    tx : In(stream.Signature(8))
    idle_gap : Out(1)
    rx_error : Out(1)
        One-cycle pulse: a byte was dropped (framing error or overrun).

    Raises
    ------
    TypeError
        ``clk_hz`` or ``baud`` is not a number, ``gap_bits`` not an integer, ``compact`` not
        a bool.
    ValueError
        A parameter is not positive, or ``baud`` is too fast for ``clk_hz`` or too far from
        ``clk_hz`` over an integer.
    """

    rx_pin: In(1, init=1)
    tx_pin: Out(1, init=1)
    rx: Out(stream.Signature(8))
    tx: In(stream.Signature(8))
    idle_gap: Out(1)
    rx_error: Out(1)

    def __init__(self, clk_hz, baud, *, gap_bits=20, compact=False):
        try:
            self.divisor = self._divisor(clk_hz, baud)
            if not isinstance(compact, bool):
                raise TypeError(f"compact must be a bool, not {compact!r}")
            if isinstance(gap_bits, bool) or not isinstance(gap_bits, int):
                raise TypeError(f"gap_bits must be an integer, not {gap_bits!r}")
            if gap_bits < 1:
                raise ValueError(f"gap_bits must be a positive integer, not {gap_bits!r}")
        except (TypeError, ValueError):
            self._MustUse__silence = True
            raise
        self.clk_hz, self.baud, self.gap_bits, self.compact = clk_hz, baud, gap_bits, compact
        super().__init__()

    @staticmethod
    def _divisor(clk_hz, baud):
        clk_hz, baud = _number("clk_hz", clk_hz), _number("baud", baud)
        divisor = round(clk_hz / baud)
        if divisor < MIN_DIVISOR:
            raise ValueError(f"baud must be at most clk_hz / {MIN_DIVISOR} "
                             f"({clk_hz / MIN_DIVISOR:.0f}), not {baud!r}")
        error = (clk_hz / divisor - baud) / baud
        if abs(error) > MAX_BAUD_ERROR:
            raise ValueError(f"baud must be within {MAX_BAUD_ERROR:.0%} of clk_hz / an integer, "
                             f"not {baud!r} (clk_hz / {divisor} is {clk_hz / divisor:.0f}, "
                             f"{error:+.1%})")
        return divisor

    @property
    def actual_baud(self):
        """The bit rate sent and expected: ``clk_hz / divisor``."""
        return self.clk_hz / self.divisor

    @property
    def glitch_cycles(self):
        """``(divisor - 1) // 2``: cycles from the start bit's synchronised falling edge to
        its check at the middle of the bit; a shorter low pulse is ignored."""
        return (self.divisor - 1) // 2

    @property
    def rx_tolerance(self):
        """``(shorter, longer)``: how much shorter and longer the sender's bits may be than
        ours, as fractions (the received bytes are right for any phase of the line)."""
        n, k = self.divisor, self.glitch_cycles
        return (n - 1 - k) / (CHARACTER_BITS * n), k / ((CHARACTER_BITS - 1) * n)

    def elaborate(self, platform):
        m = Module()
        self._receiver(m)
        self._transmitter(m)
        return m

    def _receiver(self, m):
        n, k, rx = self.divisor, self.glitch_cycles, self.rx
        line = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx_pin, line, init=1)

        timer = Signal(range(n))
        bit = Signal(range(CHARACTER_BITS))  # 0: start, 1 to 8: data, 9: stop
        shift = Signal(8)
        # The gap counts from the cycle after the stop sample, n - k cycles before its end.
        gap_cycles = self.gap_bits * n + n - k - 1
        gap = Signal(range(gap_cycles + 1), init=gap_cycles)
        armed = Signal()  # a start bit since the last idle_gap

        with m.If(rx.ready):
            m.d.sync += rx.valid.eq(0)
        if self.compact:
            m.d.comb += rx.payload.eq(shift)
        m.d.sync += gap.eq(gap_cycles)
        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += [timer.eq(k - 1), bit.eq(0)]
                    m.next = "CHARACTER"
                with m.Elif(armed):
                    m.d.sync += gap.eq(gap - 1)
                    with m.If(gap == 0):
                        m.d.comb += self.idle_gap.eq(1)
                        m.d.sync += armed.eq(0)

            with m.State("CHARACTER"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(n - 1), bit.eq(bit + 1)]
                    if self.compact:  # data bits only: the byte stays in ``shift``
                        with m.If((bit != 0) & (bit != CHARACTER_BITS - 1)):
                            m.d.sync += shift.eq(Cat(shift[1:], line))
                        with m.If((bit == 1) & rx.valid & ~rx.ready):  # overrun
                            m.d.comb += self.rx_error.eq(1)
                            m.d.sync += rx.valid.eq(0)
                    else:
                        m.d.sync += shift.eq(Cat(shift[1:], line))
                    with m.If(bit == 0):
                        with m.If(line):  # a glitch, not a start bit
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += armed.eq(1)
                    with m.If(bit == CHARACTER_BITS - 1):
                        with m.If(~line):
                            m.d.comb += self.rx_error.eq(1)
                            m.next = "BREAK"
                        with m.Else():
                            if self.compact:
                                m.d.sync += rx.valid.eq(1)
                            else:
                                with m.If(rx.valid & ~rx.ready):
                                    m.d.comb += self.rx_error.eq(1)
                                with m.Else():
                                    m.d.sync += [rx.payload.eq(shift), rx.valid.eq(1)]
                            m.next = "IDLE"

            with m.State("BREAK"):  # framing error: wait for the line to go high
                with m.If(line):
                    m.next = "IDLE"

    def _transmitter(self, m):
        n, tx = self.divisor, self.tx
        shift = Signal(CHARACTER_BITS, init=(1 << CHARACTER_BITS) - 1)  # bit 0 is on the pin
        bits = Signal(range(CHARACTER_BITS + 1))  # left to send, the current one included
        timer = Signal(range(n))
        bit_done = timer == 0

        m.d.comb += self.tx_pin.eq(shift[0])
        with m.If(bits != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(bit_done):
                m.d.sync += [timer.eq(n - 1), bits.eq(bits - 1), shift.eq(Cat(shift[1:], 1))]
        m.d.comb += tx.ready.eq((bits == 0) | ((bits == 1) & bit_done))
        with m.If(tx.valid & tx.ready):
            m.d.sync += [shift.eq(Cat(0, tx.payload, 1)), bits.eq(CHARACTER_BITS),
                         timer.eq(n - 1)]

"""A board top: PLL, reset synchroniser, the accelerator system on a UART, status LEDs."""

from amaranth.hdl import Module, Signal
from amaranth.lib import io, wiring

from hdl.board_system import DEFAULT_BAUD, DEFAULT_RAM_BYTES, BoardSystem

from .clocking import pll_domain

__all__ = ["BoardTop"]


class BoardTop(wiring.Component):
    """:class:`hdl.board_system.BoardSystem` on a board, clocked by a PLL at
    ``config.target_mhz`` (the UART divisor uses the frequency the PLL really reaches).

    The domain is held in reset until the PLL locks (:func:`boards.clocking.pll_domain`).
    LEDs: ``ok`` is on once out of reset and blinks off while a frame is handled; ``error``
    shows that the last link reply was not OK.

    Parameters
    ----------
    config : TesseraConfig
    clock : str
        The board's oscillator resource; its frequency comes from the platform.
    pll : callable
        ``pll(port, f_in_mhz, f_out_mhz)`` returns a component with ``clk``, ``locked`` and
        ``f_out_mhz``.
    uart : callable
        ``uart(platform)`` returns the ``(rx, tx)`` pin ports of the host's serial line.
    leds : callable
        ``leds(platform)`` returns the ``(ok, error)`` LED ports.
    baud, ram_bytes : int
        As in :class:`BoardSystem`.
    """

    def __init__(self, config, *, clock, pll, uart, leds, baud=DEFAULT_BAUD,
                 ram_bytes=DEFAULT_RAM_BYTES):
        self.config = config
        self._clock, self._pll, self._uart, self._leds = clock, pll, uart, leds
        self.baud, self.ram_bytes = baud, ram_bytes
        super().__init__({})

    def _f_in_mhz(self, platform):
        return platform.lookup(self._clock).clock.frequency / 1e6

    def clock_hz(self, platform):
        """The frequency the PLL reaches on ``platform``."""
        return self._pll.search(self._f_in_mhz(platform), self.config.target_mhz).f_out_mhz * 1e6

    def system(self, platform):
        """The :class:`BoardSystem` this top wraps on ``platform`` (also what ``board-sim``
        simulates, with the PLL bypassed)."""
        return BoardSystem(self.config, clk_hz=self.clock_hz(platform), baud=self.baud,
                           ram_bytes=self.ram_bytes)

    def elaborate(self, platform):
        m = Module()
        pll = self._pll(platform.request(self._clock, dir="-"), self._f_in_mhz(platform),
                        self.config.target_mhz)
        pll_domain(m, platform, pll)
        m.submodules.system = system = self.system(platform)
        rx_port, tx_port = self._uart(platform)
        m.submodules.rx = rx = io.Buffer("i", rx_port)
        m.submodules.tx = tx = io.Buffer("o", tx_port)
        ok_port, error_port = self._leds(platform)
        m.submodules.led_ok = led_ok = io.Buffer("o", ok_port)
        m.submodules.led_error = led_error = io.Buffer("o", error_port)
        running = Signal()  # cleared by the domain's reset
        m.d.sync += running.eq(1)
        m.d.comb += [
            system.uart_rx.eq(rx.i),
            tx.o.eq(system.uart_tx),
            led_ok.o.eq(running & ~system.link_busy),
            led_error.o.eq(system.link_error),
        ]
        return m

"""A board top: PLL, reset synchroniser, the accelerator system on a UART or on USB
CDC-ACM, status LEDs."""

from types import SimpleNamespace

from amaranth.hdl import ClockDomain, ClockSignal, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

from hdl.board_system import DEFAULT_BAUD, DEFAULT_RAM_BYTES, BoardSystem
from hdl.usb_serial import USB_GAP_SECONDS, USBSerial

from .clocking import pll_domain

#: USB full speed with LUNA's gateware PHY: ``usb_io`` samples the lines, ``usb`` runs the
#: device (phase-related: both from the PLL's VCO).
USB_CLOCKS_MHZ = {"usb_io": 48.0, "usb": 12.0}

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
    uart : callable or None
        ``uart(platform)`` returns the ``(rx, tx)`` pin ports of the host's serial line.
    usb : callable or None
        Instead of ``uart``: ``usb(platform)`` returns the ``(d_p, d_n, pullup)`` pin ports
        of the USB port, which serve the host link as a USB CDC-ACM device
        (:class:`hdl.usb_serial.USBSerial`; the PLL also makes its 48 and 12 MHz clocks,
        so ``pll`` must take ``secondary_mhz``).
    leds : callable
        ``leds(platform)`` returns the ``(ok, error)`` LED ports.
    baud, ram_bytes, ram_ports : int
        As in :class:`BoardSystem` (``baud`` is the UART's; a CDC-ACM device ignores the
        rate the host sets).
    """

    def __init__(self, config, *, clock, pll, leds, uart=None, usb=None, baud=DEFAULT_BAUD,
                 ram_bytes=DEFAULT_RAM_BYTES, ram_ports=1):
        if (uart is None) == (usb is None):
            self._MustUse__silence = True
            raise ValueError("a board top takes exactly one of uart and usb")
        self.config = config
        self._clock, self._pll, self._uart, self._usb, self._leds = clock, pll, uart, usb, leds
        self.baud, self.ram_bytes, self.ram_ports = baud, ram_bytes, ram_ports
        super().__init__({})

    @property
    def serial(self):
        """The host link's line: ``"uart"`` or ``"usb"``."""
        return "uart" if self._uart is not None else "usb"

    def _f_in_mhz(self, platform):
        return platform.lookup(self._clock).clock.frequency / 1e6

    def clock_hz(self, platform):
        """The frequency the PLL reaches on ``platform``."""
        return self._pll.search(self._f_in_mhz(platform), self.config.target_mhz).f_out_mhz * 1e6

    def system(self, platform):
        """The :class:`BoardSystem` this top wraps on ``platform`` (also what ``board-sim``
        simulates, with the PLL bypassed)."""
        return BoardSystem(self.config, clk_hz=self.clock_hz(platform), baud=self.baud,
                           ram_bytes=self.ram_bytes, ram_ports=self.ram_ports,
                           serial="uart" if self.serial == "uart" else "stream")

    def elaborate(self, platform):
        m = Module()
        pad, f_in = platform.request(self._clock, dir="-"), self._f_in_mhz(platform)
        if self.serial == "uart":
            pll = self._pll(pad, f_in, self.config.target_mhz)
        else:
            pll = self._pll(pad, f_in, self.config.target_mhz,
                            secondary_mhz=tuple(USB_CLOCKS_MHZ.values()))
        pll_domain(m, platform, pll)
        m.submodules.system = system = self.system(platform)
        if self.serial == "uart":
            rx_port, tx_port = self._uart(platform)
            m.submodules.rx = rx = io.Buffer("i", rx_port)
            m.submodules.tx = tx = io.Buffer("o", tx_port)
            m.d.comb += [system.uart_rx.eq(rx.i), tx.o.eq(system.uart_tx)]
        else:
            for i, domain in enumerate(USB_CLOCKS_MHZ):
                m.domains += ClockDomain(domain)
                m.d.comb += ClockSignal(domain).eq(pll.secondary[i])
                m.submodules[f"{domain}_reset_sync"] = ResetSynchronizer(~pll.locked,
                                                                         domain=domain)
            d_p, d_n, pullup = self._usb(platform)
            m.submodules.usb_d_p = usb_d_p = io.Buffer("io", d_p)
            m.submodules.usb_d_n = usb_d_n = io.Buffer("io", d_n)
            m.submodules.usb_pullup = usb_pullup = io.Buffer("o", pullup)
            pins = SimpleNamespace(d_p=usb_d_p, d_n=usb_d_n, pullup=usb_pullup)  # LUNA's .i/.o/.oe
            gap_cycles = round(self.clock_hz(platform) * USB_GAP_SECONDS)
            m.submodules.usb = usb = USBSerial(pins, gap_cycles=gap_cycles)
            wiring.connect(m, usb.rx, system.rx)
            wiring.connect(m, system.tx, usb.tx)
            m.d.comb += system.frame_end.eq(usb.idle_gap)
        ok_port, error_port = self._leds(platform)
        m.submodules.led_ok = led_ok = io.Buffer("o", ok_port)
        m.submodules.led_error = led_error = io.Buffer("o", error_port)
        running = Signal()  # cleared by the domain's reset
        m.d.sync += running.eq(1)
        m.d.comb += [
            led_ok.o.eq(running & ~system.link_busy),
            led_error.o.eq(system.link_error),
        ]
        return m

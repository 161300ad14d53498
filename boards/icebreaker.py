"""iCEBreaker (iCE40UP5K-SG48): the default board."""

from amaranth.hdl import Module
from amaranth.lib import io, wiring
from amaranth_boards.icebreaker import ICEBreakerPlatform

from .ice40_pll import ice40_pll_settings, pll_domain
from .selftest import SelfTest

__all__ = ["ICEBreakerTop", "BOARD"]


class ICEBreakerTop(wiring.Component):
    """PLL from the 12 MHz oscillator to ``config.target_mhz``, the self-test harness, LEDs.

    Green LED: XOR of the checksum bits (flickers while the array runs); red LED: the array's
    error flag.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        clk12 = platform.request("clk12", dir="-")
        settings = ice40_pll_settings(12.0, self.config.target_mhz)
        pll_domain(m, platform, clk12, settings)
        m.submodules.selftest = selftest = SelfTest(self.config)
        m.submodules.led_g = led_g = io.Buffer("o", platform.request("led_g", dir="-"))
        m.submodules.led_r = led_r = io.Buffer("o", platform.request("led_r", dir="-"))
        m.d.comb += [
            led_g.o.eq(selftest.checksum.xor()),
            led_r.o.eq(selftest.error),
        ]
        return m


#: Build description used by :mod:`sw.synth`.
BOARD = dict(
    name="icebreaker",
    platform=ICEBreakerPlatform,
    top=ICEBreakerTop,
    default_config="tiny",
    family="ice40",
    synth_opts="-dsp",
)

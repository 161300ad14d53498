"""iCEBreaker (iCE40UP5K-SG48): the default board, with the ``tiny`` array."""

from functools import partial

from amaranth_boards.icebreaker import ICEBreakerPlatform

from .ice40_pll import ICE40PLL
from .selftest import SelfTestTop

__all__ = ["BOARD"]

#: Build description used by :mod:`sw.synth`.
BOARD = dict(
    name="icebreaker",
    platform=ICEBreakerPlatform,
    top=partial(SelfTestTop, clock="clk12", pll=ICE40PLL,
                leds=lambda platform: (platform.request("led_g", dir="-"),
                                       platform.request("led_r", dir="-"))),
    default_config="tiny",
    # Map `*` onto SB_MAC16; the config bounds how many PEs multiply with `*`.
    synth_opts="-dsp",
    bitstream_ext="bin",
)

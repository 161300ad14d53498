"""OrangeCrab r0.2 with an ECP5 LFE5U-25F, with the ``small`` array."""

from functools import partial

from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform

from .ecp5_pll import ECP5PLL
from .selftest import SelfTestTop

__all__ = ["BOARD"]


def _rgb_green_red(rgb):
    return rgb.g, rgb.r


BOARD = dict(
    name="orangecrab-25f",
    platform=OrangeCrabR0_2_25FPlatform,
    top=partial(SelfTestTop, clock="clk", pll=ECP5PLL,
                leds=lambda platform: _rgb_green_red(platform.request("rgb_led", 0, dir="-"))),
    default_config="small",
    synth_opts="",
    bitstream_ext="bit",
)

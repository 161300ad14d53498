"""ULX3S with an ECP5 LFE5U-85F, with the ``large`` array."""

from functools import partial

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .ecp5_pll import ECP5PLL
from .selftest import SelfTestTop

__all__ = ["BOARD"]

BOARD = dict(
    name="ulx3s-85f",
    platform=ULX3S_85F_Platform,
    top=partial(SelfTestTop, clock="clk25", pll=ECP5PLL,
                leds=lambda platform: (platform.request("led", 0, dir="-"),
                                       platform.request("led", 1, dir="-"))),
    default_config="large",
    synth_opts="",
    bitstream_ext="bit",
)

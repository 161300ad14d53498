"""ULX3S with an ECP5 LFE5U-85F, with the ``large`` accelerator.

Host link: the FT231X (US1 port, ``/dev/ttyUSB0`` on Linux) at 3 Mbaud. System memory:
64 KiB of block RAM, two-ported with registered writes and read words (``ram_ports=2``, 64 of
the 208 DP16KD), and ``large``'s registered accumulator: they cut the two block-RAM paths that
limited the single-ported, plain build (seed 1: 76.1 MHz now, against 75, seeds 2 and 3
71.7 and 74.5; 59.6 for that build; see README).
"""

from functools import partial

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .board_top import BoardTop
from .ecp5_pll import ECP5PLL
from .selftest import SelfTestTop

__all__ = ["BOARD"]


def _uart(platform):
    uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
    return uart.rx, uart.tx


def _leds(platform):
    return platform.request("led", 0, dir="-"), platform.request("led", 1, dir="-")


BOARD = dict(
    name="ulx3s-85f",
    platform=ULX3S_85F_Platform,
    top=partial(BoardTop, clock="clk25", pll=ECP5PLL, uart=_uart, leds=_leds, ram_ports=2),
    selftest=partial(SelfTestTop, clock="clk25", pll=ECP5PLL, leds=_leds),
    default_config="large",
    synth_opts="",
    bitstream_ext="bit",
)

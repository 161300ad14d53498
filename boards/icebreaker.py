"""iCEBreaker (iCE40UP5K-SG48): the default board, with the ``tiny`` accelerator.

Host link: the FT2232H's second channel (``/dev/ttyUSB1`` on Linux) at 3 Mbaud. System
memory: 64 KiB in two SPRAM tiles.
"""

from functools import partial

from amaranth_boards.icebreaker import ICEBreakerPlatform

from .board_top import BoardTop
from .ice40_pll import ICE40PLL
from .selftest import SelfTestTop

__all__ = ["BOARD"]


def _uart(platform):
    uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
    return uart.rx, uart.tx


def _leds(platform):
    return platform.request("led_g", dir="-"), platform.request("led_r", dir="-")


#: Build description used by :mod:`sw.synth`.
BOARD = dict(
    name="icebreaker",
    platform=ICEBreakerPlatform,
    top=partial(BoardTop, clock="clk12", pll=ICE40PLL, uart=_uart, leds=_leds),
    selftest=partial(SelfTestTop, clock="clk12", pll=ICE40PLL, leds=_leds),
    default_config="tiny",
    # No `-dsp`: tiny's PEs instantiate their SB_MAC16 (two products each), and yosys 0.70's
    # SB_MAC16 inference warned "Driver-driver conflict ... Resolved using constant" on the
    # post-processing's registered partial products (micro), which risks a wrong netlist.
    synth_opts="",
    bitstream_ext="bin",
)

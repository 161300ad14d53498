"""OrangeCrab r0.2 with an ECP5 LFE5U-25F, with the ``small`` accelerator.

The OrangeCrab has no USB-serial chip: its USB port goes straight to the FPGA. Host link
(:data:`BOARD`, ``orangecrab-25f``): a USB full-speed CDC-ACM device in the FPGA
(:class:`hdl.usb_serial.USBSerial`, LUNA's gateware PHY on the USB pins; the PLL makes
its 48 and 12 MHz beside the accelerator's clock): the board shows up as
``/dev/ttyACM0`` (USB ID 1209:0001) once the bitstream runs. Flash it with the
OrangeCrab's DFU bootloader (hold the button while plugging in, then ``dfu-util -D``).

:data:`BOARD_UART` (``orangecrab-25f-uart``) is the fallback: a UART on the Feather
header for an external 3.3 V USB-serial adapter, at 1 Mbaud: FPGA RX on pin ``0`` (N17),
TX on pin ``1`` (M18), the Feather's RX and TX positions; connect the adapter's TX to pin
0, its RX to pin 1 and GND (``board-sim`` simulates this one). System memory, both: 32
KiB of block RAM (the accelerator's own memories take 32 of the 56 DP16KD).
"""

from functools import partial

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform

from .board_top import BoardTop
from .ecp5_pll import ECP5PLL
from .selftest import SelfTestTop

__all__ = ["BOARD"]


class OrangeCrabUARTPlatform(OrangeCrabR0_2_25FPlatform):
    """The OrangeCrab with the header UART as resource ``uart`` 0."""

    resources = OrangeCrabR0_2_25FPlatform.resources + [
        Resource("uart", 0,
                 Subsignal("rx", Pins("0", dir="i", conn=("io", 0))),
                 Subsignal("tx", Pins("1", dir="o", conn=("io", 0))),
                 Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
    ]


def _uart(platform):
    uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
    return uart.rx, uart.tx


def _usb(platform):
    usb = platform.request("usb", 0, dir="-")
    return usb.d_p, usb.d_n, usb.pullup


def _rgb_green_red(platform):
    rgb = platform.request("rgb_led", 0, dir="-")
    return rgb.g, rgb.r


BOARD = dict(
    name="orangecrab-25f",
    platform=OrangeCrabR0_2_25FPlatform,
    top=partial(BoardTop, clock="clk", pll=ECP5PLL, usb=_usb, leds=_rgb_green_red,
                ram_bytes=1 << 15),
    selftest=partial(SelfTestTop, clock="clk", pll=ECP5PLL, leds=_rgb_green_red),
    default_config="small",
    synth_opts="",
    bitstream_ext="bit",
)

BOARD_UART = dict(
    BOARD,
    name="orangecrab-25f-uart",
    platform=OrangeCrabUARTPlatform,
    top=partial(BoardTop, clock="clk", pll=ECP5PLL, uart=_uart, leds=_rgb_green_red,
                baud=1_000_000, ram_bytes=1 << 15),
)

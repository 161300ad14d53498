"""The USB CDC-ACM host link (:class:`hdl.usb_serial.USBSerial`) in the Amaranth simulator,
driven at its UTMI port by LUNA's simulated USB host: enumeration, then the host link's
frames as bulk OUT data and its replies as bulk IN data, against :class:`sw.link.BridgeModel`
(the host link and its RAM and registers are :mod:`tests.test_host_link`'s bench)."""

import re
import time

import pytest
from amaranth.hdl import Elaboratable, Module
from luna.gateware.test.usb2 import USBDeviceTest
from luna.gateware.test.utils import usb_domain_test_case
from luna.gateware.usb.usb2 import USBPacketID
from usb_protocol.types import DescriptorTypes

from hdl.host_link import Command
from hdl.usb_serial import USBSerial
from sw.link import encode_request
from tests.test_host_link import LinkBench, dump_frames, good_frames, reference

#: The bulk data endpoint of LUNA's CDC-ACM function (IN 0x84, OUT 0x04).
DATA_ENDPOINT = 4
#: Idle sync cycles that end a frame in the bench (a board waits 5 ms).
GAP_CYCLES = 3000


class USBLinkBench(Elaboratable):
    """USBSerial (on LUNA's UTMI bus) in front of :class:`tests.test_host_link.LinkBench`."""

    def __init__(self, bus, fifo_depth):
        self.serial = USBSerial(bus, gap_cycles=GAP_CYCLES, fifo_depth=fifo_depth)
        self.bench = LinkBench()

    def elaborate(self, platform):
        m = Module()
        m.submodules.serial, m.submodules.bench = serial, bench = self.serial, self.bench
        link = bench.link
        m.d.comb += [
            link.rx.payload.eq(serial.rx.payload), link.rx.valid.eq(serial.rx.valid),
            serial.rx.ready.eq(link.rx.ready),
            serial.tx.payload.eq(link.tx.payload), serial.tx.valid.eq(link.tx.valid),
            link.tx.ready.eq(serial.tx.ready),
            link.frame_end.eq(serial.idle_gap),
        ]
        return m


class _USBLinkTest(USBDeviceTest):
    """Enumerates the device, then runs frames through it (LUNA's generator-based host)."""

    FRAGMENT_UNDER_TEST = USBLinkBench
    USB_CLOCK_FREQUENCY = 12e6
    SYNC_CLOCK_FREQUENCY = 30e6  # the link's side: any clock
    MAX_NAKS = 2000
    FIFO_DEPTH = 16

    def instantiate_dut(self):
        self.FRAGMENT_ARGUMENTS = {"fifo_depth": self.FIFO_DEPTH}
        return super().instantiate_dut()

    def initialize_signals(self):
        # An idle full-speed bus is J, not SE0: a longer SE0 is a bus reset (to address 0).
        yield self.utmi.line_state.eq(0b01)

    def enumerate(self):
        """GET_DESCRIPTOR(device), SET_ADDRESS, SET_CONFIGURATION, as a host does."""
        yield from self.advance_cycles(10)
        handshake, data = yield from self.get_descriptor(DescriptorTypes.DEVICE, length=18)
        self.assertEqual(handshake, USBPacketID.ACK)
        self.assertEqual(bytes(data[:2]), b"\x12\x01")  # bLength 18, DEVICE
        self.assertEqual(int.from_bytes(bytes(data[8:12]), "little"), 0x0001_1209)
        handshake, data = yield from self.get_descriptor(DescriptorTypes.CONFIGURATION,
                                                         length=9)
        self.assertEqual(handshake, USBPacketID.ACK)
        self.assertEqual(data[1], DescriptorTypes.CONFIGURATION)
        yield from self.set_address(7)
        yield from self.set_configuration(1)

    def send(self, data, toggle):
        """Bulk OUT ``data`` in packets of 64 bytes; a NAKed packet is sent again after an IN
        transaction (as the host's CDC-ACM driver keeps reading while it writes: the link
        takes no more bytes while its reply waits). Returns the next DATA0/DATA1 toggle."""
        for start in range(0, len(data), 64):
            packet = data[start:start + 64]
            for _ in range(self.MAX_NAKS):
                handshake = yield from self.out_transaction(
                    *packet, endpoint=DATA_ENDPOINT,
                    data_pid=USBPacketID.DATA1 if toggle else USBPacketID.DATA0)
                if handshake == USBPacketID.ACK:
                    break
                self.assertEqual(handshake, USBPacketID.NAK)
                self.out_naks += 1
                yield from self.poll_in()
            else:
                raise AssertionError(f"OUT packet at byte {start} NAKed {self.MAX_NAKS} times")
            toggle ^= 1
        return toggle

    def poll_in(self):
        """One IN transaction; its data (if not NAKed) goes to ``self.received``."""
        pid, data = yield from self.in_transaction(endpoint=DATA_ENDPOINT)
        if pid == USBPacketID.NAK:
            return False
        self.assertEqual(pid, USBPacketID.DATA1 if self.in_toggle else USBPacketID.DATA0)
        self.assertLessEqual(len(data), 64)
        self.received += bytes(data)
        self.in_toggle ^= 1
        return True

    def receive(self, count):
        """Bulk IN until ``count`` bytes arrived (IN tokens answered NAK are repeated);
        returns them."""
        naks = 0
        while len(self.received) < count:
            if not (yield from self.poll_in()):
                naks += 1
                self.assertLess(naks, self.MAX_NAKS,
                                f"IN NAKed with {len(self.received)}/{count} bytes")
        got, self.received = self.received[:count], self.received[count:]
        return bytes(got)

    def run_frames(self, events):
        """Enumerate, then send each event and collect the replies; they must be the
        model's, byte for byte. An event is a request frame, ``("GAP", frame)`` (the frame's
        first 5 bytes, a silence longer than the gap, the rest, another silence) or
        ``("BATCH", frames)`` (all sent before any reply is read)."""
        model = reference()
        self.out_naks, self.received, self.in_toggle = 0, bytearray(), 0
        yield from self.enumerate()
        out_toggle = 0
        started = time.monotonic()
        for event in events:
            if isinstance(event, tuple) and event[0] == "BATCH":
                want = b"".join(model.feed(frame) for frame in event[1])
                out_toggle = yield from self.send(b"".join(event[1]), out_toggle)
            elif isinstance(event, tuple):
                first, rest = event[1][:5], event[1][5:]
                want = (model.feed(first) + model.frame_end() + model.feed(rest)
                        + model.frame_end())
                for part in (first, rest):
                    out_toggle = yield from self.send(part, out_toggle)
                    yield from self.advance_cycles(GAP_CYCLES)  # usb cycles: 2.5 gaps
            else:
                want = model.feed(event)
                out_toggle = yield from self.send(event, out_toggle)
            got = yield from self.receive(len(want))
            self.assertEqual(got.hex(), want.hex(), f"event {event!r:.80}")
        print(f"{len(events)} events over USB in {time.monotonic() - started:.1f} s, "
              f"{self.out_naks} OUT packets NAKed")
        return model


class TestUSBLinkFrames(_USBLinkTest):
    @usb_domain_test_case
    def test_frames_match_the_model(self):
        """Every command and refusal of the host link's own test, then read back all of
        the RAM and the registers; payloads longer than a USB packet (the CSR dump)."""
        yield from self.run_frames(good_frames() + dump_frames(100))


class TestUSBLinkFaults(_USBLinkTest):
    FIFO_DEPTH = 4

    @usb_domain_test_case
    def test_truncated_and_corrupted_frames(self):
        """A frame cut by a silence (TRUNCATED, then the rest is a bad frame), a frame with
        a flipped bit (BAD_CRC): nothing changes, and the next frames work. Then frames sent
        ahead of their replies: the small FIFOs fill while the link executes and replies,
        and the device NAKs the host's packets until there is room (nothing is lost)."""
        write = encode_request(Command.MEM_WRITE, 40, 8, payload=bytes(range(7, 23)))
        bad = bytearray(encode_request(Command.MEM_WRITE, 41, 0, payload=b"\x55" * 16))
        bad[9] ^= 0x10
        batch = [encode_request(Command.MEM_WRITE, 60 + i, 16 * i, payload=bytes([i] * 16))
                 for i in range(1, 13)] + [encode_request(Command.MEM_READ, 80, 0, 16)]
        yield from self.run_frames([("GAP", write), bytes(bad), write, ("BATCH", batch)]
                                   + dump_frames(50))
        self.assertGreater(self.out_naks, 0)


# --- Parameters and the OrangeCrab's top. ---

def test_usb_serial_refuses_bad_parameters():
    with pytest.raises(ValueError, match=r"^gap_cycles must be positive, not 0$"):
        USBSerial(None, gap_cycles=0)
    with pytest.raises(TypeError, match=r"^gap_cycles must be an integer, not 1\.5$"):
        USBSerial(None, gap_cycles=1.5)
    with pytest.raises(ValueError, match=r"^fifo_depth must be a power of two of at least 2, "
                                         r"not 12$"):
        USBSerial(None, gap_cycles=10, fifo_depth=12)
    with pytest.raises(ValueError, match=r"^vendor_id must be a 16-bit integer, not 65536$"):
        USBSerial(None, gap_cycles=10, vendor_id=1 << 16)


def test_board_top_takes_one_serial_line():
    from boards.board_top import BoardTop
    from boards.ecp5_pll import ECP5PLL
    from hdl.board_system import BoardSystem
    from hdl.config import preset

    for lines in ({}, {"uart": lambda p: None, "usb": lambda p: None}):
        with pytest.raises(ValueError, match=r"^a board top takes exactly one of uart and usb$"):
            BoardTop(preset("micro"), clock="clk", pll=ECP5PLL, leds=None, **lines)
    with pytest.raises(ValueError, match=r"^serial must be 'uart' or 'stream', not 'spi'$"):
        BoardSystem(preset("micro"), clk_hz=12e6, serial="spi")
    with pytest.raises(ValueError, match=r"^ram_ports must be 1 or 2, not 3$"):
        BoardSystem(preset("micro"), clk_hz=12e6, ram_ports=3)
    system = BoardSystem(preset("micro"), clk_hz=12e6, serial="stream")
    # Only its UART parameters are asked for: neither it nor its RAM is elaborated.
    system._MustUse__silence = system._ram._MustUse__silence = True
    with pytest.raises(ValueError, match=r"^a BoardSystem with serial='stream' has no UART$"):
        print(system.divisor)


def test_board_sim_refuses_the_usb_board():
    from sw.board_sim import board_system

    with pytest.raises(ValueError, match=r"^board-sim drives a UART line; 'orangecrab-25f' talks "
                                         r"USB CDC-ACM .* use orangecrab-25f-uart$"):
        board_system("orangecrab-25f")


def test_orangecrab_top_has_usb_clocks_and_pins():
    """The OrangeCrab's top (micro inside, for speed) as yosys gets it: the PLL's CLKOS and
    CLKOS2 at exactly 48 and 12 MHz beside the design clock, the USB pins, no header UART."""
    from boards.ecp5_pll import ecp5_pll_settings
    from hdl.config import preset
    from sw.synth import board_description

    config = preset("micro")
    settings = ecp5_pll_settings(48, config.target_mhz, (48, 12))
    assert [settings.f_vco_mhz / div for div in settings.secondary_divs] == [48, 12]
    description = board_description("orangecrab-25f")
    plan = description["platform"]().prepare(description["top"](config), name="top")
    rtlil = plan.files["top.il"]
    for param, value in (("CLKI_DIV", settings.clki_div), ("CLKFB_DIV", settings.clkfb_div),
                         ("CLKOP_DIV", settings.clkop_div),
                         ("CLKOS_DIV", settings.secondary_divs[0]),
                         ("CLKOS2_DIV", settings.secondary_divs[1])):
        assert re.search(rf"parameter \\{param} {value}\n", rtlil), param
    pins = plan.files["top.lpf"]
    for pin, site in (("d_p", "N1"), ("d_n", "M2"), ("pullup", "N2")):
        assert f'LOCATE COMP "usb_0__{pin}__io" SITE "{site}";' in pins
    assert "uart" not in pins

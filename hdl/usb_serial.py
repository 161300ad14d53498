"""USB CDC-ACM serial function (LUNA) with byte streams in the ``sync`` domain, for the host
link of a board whose USB port goes straight to the FPGA (OrangeCrab)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import AsyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["USB_GAP_SECONDS", "USBSerial"]

#: Silence on ``rx`` that ends a frame: longer than the pause between the packets of one
#: host write (full-speed frames are 1 ms; a write of a few packets goes out in one or two),
#: shorter than the host's silence before it retries (:class:`sw.link.SerialTransport`'s
#: ``gap_s``, 10 ms).
USB_GAP_SECONDS = 5e-3


class USBSerial(wiring.Component):
    """A USB full-speed CDC-ACM device (LUNA's ``USBSerialDevice``: ``/dev/ttyACM*`` on
    Linux, no driver needed) whose data bytes are streams in the ``sync`` domain.

    The device runs in the ``usb`` domain (12 MHz; with raw pins LUNA's gateware PHY also
    needs ``usb_io`` at 48 MHz, phase-related to ``usb``). Bytes cross to and from ``sync``
    through an asynchronous FIFO of ``fifo_depth`` bytes each way.

    Timing and back-pressure:

    - ``rx``: the host's OUT data, in order, one byte per ``sync`` cycle at most. While the
      FIFO is full the endpoint's own packet buffer fills and the device answers NAK, so the
      host resends: no byte is lost however long ``rx.ready`` stays low.
    - ``tx``: bytes for the host, taken while the FIFO has room. The IN endpoint sends a
      packet when it holds 64 bytes, or ends it early (a short packet) after a byte that
      leaves the FIFO empty, so a reply never waits for more bytes to fill a packet.
    - ``idle_gap`` pulses once (one ``sync`` cycle) when no byte arrived on ``rx`` for
      ``gap_cycles`` cycles after one did: the host link's ``frame_end``, as a UART's idle
      line (:data:`USB_GAP_SECONDS`).

    Parameters
    ----------
    bus : object
        The USB connection as LUNA takes it: raw ``d_p``/``d_n``/``pullup`` pins (a platform
        resource) or a UTMI interface (simulation).
    gap_cycles : int
        ``sync`` cycles of silence that make ``idle_gap``.
    fifo_depth : int
        Bytes each clock-domain crossing holds.
    vendor_id, product_id : int
        The USB IDs the device shows (default: pid.codes' test IDs).
    product : str
        The product string.

    Members
    -------
    rx : Out(stream.Signature(8))
    tx : In(stream.Signature(8))
    idle_gap : Out(1)
    """

    rx: Out(stream.Signature(8))
    tx: In(stream.Signature(8))
    idle_gap: Out(1)

    def __init__(self, bus, *, gap_cycles, fifo_depth=16, vendor_id=0x1209, product_id=0x0001,
                 product="Tessera host link"):
        self._MustUse__silence = True  # until the parameters are checked
        for name, value in (("gap_cycles", gap_cycles), ("fifo_depth", fifo_depth)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
        if gap_cycles < 1:
            raise ValueError(f"gap_cycles must be positive, not {gap_cycles!r}")
        if fifo_depth < 2 or fifo_depth & (fifo_depth - 1):
            raise ValueError(f"fifo_depth must be a power of two of at least 2, "
                             f"not {fifo_depth!r}")
        for name, value in (("vendor_id", vendor_id), ("product_id", product_id)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 16:
                raise ValueError(f"{name} must be a 16-bit integer, not {value!r}")
        self.bus, self.gap_cycles, self.fifo_depth = bus, gap_cycles, fifo_depth
        self.vendor_id, self.product_id, self.product = vendor_id, product_id, product
        self._MustUse__silence = False
        super().__init__()

    def elaborate(self, platform):
        from luna.gateware.usb.devices.acm import USBSerialDevice  # only if built

        m = Module()
        device = USBSerialDevice(bus=self.bus, idVendor=self.vendor_id,
                                 idProduct=self.product_id, manufacturer_string="Tessera",
                                 product_string=self.product)
        m.submodules.device = device  # in the usb domain
        m.submodules.rx_fifo = rx_fifo = AsyncFIFO(width=8, depth=self.fifo_depth,
                                                   r_domain="sync", w_domain="usb")
        m.submodules.tx_fifo = tx_fifo = AsyncFIFO(width=8, depth=self.fifo_depth,
                                                   r_domain="usb", w_domain="sync")
        m.d.comb += [
            device.connect.eq(1),
            # host -> device
            rx_fifo.w_data.eq(device.rx.payload),
            rx_fifo.w_en.eq(device.rx.valid),
            device.rx.ready.eq(rx_fifo.w_rdy),
            self.rx.payload.eq(rx_fifo.r_data),
            self.rx.valid.eq(rx_fifo.r_rdy),
            rx_fifo.r_en.eq(self.rx.ready),
            # device -> host
            tx_fifo.w_data.eq(self.tx.payload),
            tx_fifo.w_en.eq(self.tx.valid),
            self.tx.ready.eq(tx_fifo.w_rdy),
            device.tx.payload.eq(tx_fifo.r_data),
            device.tx.valid.eq(tx_fifo.r_rdy),
            device.tx.last.eq(tx_fifo.r_level == 1),
            tx_fifo.r_en.eq(device.tx.ready),
        ]

        # The idle gap: a counter restarted by every byte taken from rx.
        gap = Signal(range(self.gap_cycles + 1))
        armed = Signal()  # a byte since the last idle_gap
        m.d.sync += self.idle_gap.eq(0)
        with m.If(self.rx.valid & self.rx.ready):
            m.d.sync += [gap.eq(self.gap_cycles - 1), armed.eq(1)]
        with m.Elif(armed):
            m.d.sync += gap.eq(gap - 1)
            with m.If(gap == 0):
                m.d.sync += [armed.eq(0), self.idle_gap.eq(1)]
        return m

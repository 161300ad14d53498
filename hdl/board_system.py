"""The accelerator, its system memory and a UART host link: what an FPGA board top wraps."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

from .axi_ram import AXI4RAM
from .burst_splitter import dma_axi_signature
from .config import TesseraConfig
from .host_link import HostLink
from .top import CSR_ADDR_WIDTH, Accelerator
from .uart import UART

__all__ = ["DEFAULT_BAUD", "DEFAULT_RAM_BYTES", "MAX_PAYLOAD", "BoardSystem"]

#: 3 Mbaud: the FTDI FT2232H (iCEBreaker) and FT231X (ULX3S) rate limit.
DEFAULT_BAUD = 3_000_000
#: System memory: 64 KiB (two iCE40UP SPRAM tiles at 32 bits, 32 ECP5 DP16KD).
DEFAULT_RAM_BYTES = 1 << 16
#: Longest host-link transfer: the link buffers it in one block RAM.
MAX_PAYLOAD = 252
#: Idle line that ends a frame: 1 ms, longer than a USB-serial bridge's pause between USB
#: packets (125 us microframes) and shorter than the host's pause after a request.
GAP_SECONDS = 1e-3


class BoardSystem(wiring.Component):
    """A Tessera accelerator behind a UART host link, with on-chip system memory.

    The host sends frames of :mod:`hdl.host_link` over ``uart_rx`` (8N1 at ``baud``); the
    link reaches the accelerator's CSRs and the host port of the system memory
    (:class:`hdl.axi_ram.AXI4RAM`, single-ported: iCE40 SPRAM or one block-RAM copy; or see
    ``ram_ports``), which
    the accelerator's DMA reaches at address 0. An idle line of :data:`GAP_SECONDS` in the
    middle of a request truncates it (TRUNCATED reply); a corrupted request gets BAD_CRC;
    neither changes anything (:class:`hdl.host_link.HostLink`).

    With ``serial="stream"`` there is no UART: the link's byte streams and its
    ``frame_end`` are ports, for a serial function the board top provides (the OrangeCrab's
    USB CDC-ACM, :class:`hdl.usb_serial.USBSerial`).

    Everything is in the ``sync`` domain, which the board top drives (PLL, reset
    synchroniser). Vendor primitives come from the platform: SB_MAC16 and SPRAM on an
    iCE40 UltraPlus, inferred multipliers and block RAM elsewhere.

    Parameters
    ----------
    config : TesseraConfig
    clk_hz : float
        The ``sync`` clock frequency (the UART's divisor comes from it).
    baud : int
    ram_bytes : int
        System memory size, a power of two.
    serial : str
        ``"uart"`` (pins ``uart_rx``/``uart_tx``) or ``"stream"`` (``rx``, ``tx``,
        ``frame_end``; ``baud`` is then unused).
    ram_ports : int
        1: the system memory is single-ported. 2: two ports (on ECP5 two
        block RAM copies, 64 DP16KD for 64 KiB), registered writes and read words, so that
        no arbitration lies before the block RAMs' inputs and no logic after their output
        multiplexer (``AXI4RAM(registered=True)``).

    Members
    -------
    uart_rx : In(1)
    uart_tx : Out(1)
        With ``serial="uart"``.
    rx : In(stream.Signature(8))
    tx : Out(stream.Signature(8))
    frame_end : In(1)
        With ``serial="stream"``: bytes from and to the host, and the end of the host's
        silence that cuts a request short (the host link's ``frame_end``).
    irq, link_busy, link_error, dma_active : Out(1)
        Status for the board's LEDs.
    """

    def __init__(self, config, *, clk_hz, baud=DEFAULT_BAUD, ram_bytes=DEFAULT_RAM_BYTES,
                 serial="uart", ram_ports=1):
        if not isinstance(config, TesseraConfig):
            self._MustUse__silence = True
            raise TypeError(f"config must be a TesseraConfig, not {config!r}")
        if serial not in ("uart", "stream"):
            self._MustUse__silence = True
            raise ValueError(f"serial must be 'uart' or 'stream', not {serial!r}")
        if ram_ports not in (1, 2):
            self._MustUse__silence = True
            raise ValueError(f"ram_ports must be 1 or 2, not {ram_ports!r}")
        self.config, self.clk_hz, self.baud, self.ram_bytes = config, clk_hz, baud, ram_bytes
        self.serial = serial
        # Checked now, not at elaboration.
        self._uart = None
        if serial == "uart":
            self._uart = UART(clk_hz, baud, gap_bits=max(20, round(baud * GAP_SECONDS)),
                              compact=not config.fast_clock)
        # Slow clocks (iCE40) on one port: only the DMA's bursts (full-width INCR, at most
        # ``dma_max_burst`` beats), others refused.
        slow = not config.fast_clock
        lean = slow and ram_ports == 1
        self._ram = AXI4RAM(ram_bytes, dma_axi_signature(config), single_port=ram_ports == 1,
                            full_incr_only=lean, registered=ram_ports == 2,
                            max_burst=config.dma_max_burst if lean else 256)
        if serial == "uart":
            ports = {"uart_rx": wiring.In(1, init=1), "uart_tx": Out(1, init=1)}
        else:
            ports = {"rx": wiring.In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                     "frame_end": wiring.In(1)}
        super().__init__({
            **ports,
            "irq": Out(1),
            "link_busy": Out(1),
            "link_error": Out(1),
            "dma_active": Out(1),
        })

    def _line(self):
        if self._uart is None:
            raise ValueError("a BoardSystem with serial='stream' has no UART")
        return self._uart

    @property
    def divisor(self):
        """Clock cycles per UART bit (``serial="uart"`` only)."""
        return self._line().divisor

    @property
    def gap_bits(self):
        """Idle bit times that end a frame (``serial="uart"`` only)."""
        return self._line().gap_bits

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = accelerator = Accelerator(self.config)
        m.submodules.ram = ram = self._ram
        m.submodules.link = link = HostLink(ram_bytes=self.ram_bytes, max_payload=MAX_PAYLOAD,
                                            csr_addr_width=CSR_ADDR_WIDTH,
                                            compact=not self.config.fast_clock)
        wiring.connect(m, accelerator.mem, ram.axi)
        wiring.connect(m, link.csr, accelerator.csr)
        wiring.connect(m, link.ram, ram.host)
        if self._uart is not None:
            m.submodules.uart = uart = self._uart
            wiring.connect(m, uart.rx, link.rx)
            wiring.connect(m, link.tx, uart.tx)
            m.d.comb += [
                link.frame_end.eq(uart.idle_gap),
                uart.rx_pin.eq(self.uart_rx),
                self.uart_tx.eq(uart.tx_pin),
            ]
        else:
            wiring.connect(m, wiring.flipped(self.rx), link.rx)
            wiring.connect(m, link.tx, wiring.flipped(self.tx))
            m.d.comb += link.frame_end.eq(self.frame_end)

        mem = accelerator.mem
        m.d.comb += [
            self.irq.eq(accelerator.irq),
            self.link_busy.eq(link.busy),
            self.link_error.eq(link.error),
            self.dma_active.eq(mem.arvalid | mem.rvalid | mem.awvalid | mem.wvalid
                               | mem.bvalid),
        ]
        return m

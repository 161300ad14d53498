"""The Tiny Tapeout top ``tt_um_tessera``: the ``micro`` accelerator behind an SPI host link."""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from .axi_ram import AXI4RAM
from .burst_splitter import dma_axi_signature
from .config import PRESETS, TesseraConfig
from .host_link import HostLink
from .spi_target import SPITarget
from .top import CSR_ADDR_WIDTH, Accelerator

__all__ = ["MAX_PAYLOAD", "PINS", "RAM_BYTES", "TOP_MODULE", "TinyTapeoutTop"]

#: Module name of the generated Verilog (Tiny Tapeout: ``tt_um_`` + a unique name).
TOP_MODULE = "tt_um_tessera"

#: Default system memory (flip-flops on Tiny Tapeout): the smallest power of two that holds
#: the GEMMs it is tested with: 4 x 4 x 4 requantized needs 192 bytes, 2 x 3 x 5 requantized
#: 232 (:func:`sw.compiler.plan_gemm`); 128 would hold only 4 x 4 x 4 without requantization.
RAM_BYTES = 256
#: Default longest host-link transfer (its buffer is flip-flops too): one instruction.
MAX_PAYLOAD = 16

#: Pin names, as in ``tt/info.yaml`` (empty: unused).
PINS = {
    "ui": ["SPI_CS_N", "SPI_SCK", "SPI_MOSI", "", "", "", "", ""],
    "uo": ["SPI_MISO", "IRQ", "LINK_BUSY", "LINK_ERROR", "DMA_ACTIVE", "SPI_SELECTED", "", ""],
    "uio": [""] * 8,
}


class TinyTapeoutTop(wiring.Component):
    """A Tessera accelerator, its system memory and an SPI host link, with the Tiny Tapeout
    ports.

    The host drives the SPI target (:class:`hdl.spi_target.SPITarget`, f_SCK <= f_clk / 8)
    with frames of :mod:`hdl.host_link`; the link reaches the accelerator's CSRs and the
    RAM's host port; the accelerator's DMA reaches the RAM (:class:`hdl.axi_ram.AXI4RAM`,
    ``ram_bytes`` at address 0, DECERR above). ``clk`` and the active-low ``rst_n`` (made
    synchronous by a reset synchroniser: 2 cycles) clock and reset everything; ``ena`` is
    ignored; the ``uio`` pins are inputs (``uio_oe`` 0), unused.

    Pins: ``ui_in[0]`` CS_N, ``ui_in[1]`` SCK, ``ui_in[2]`` MOSI; ``uo_out[0]`` MISO,
    ``uo_out[1]`` the accelerator's IRQ, ``[2]`` a frame is executing or replying, ``[3]``
    the last reply was an error, ``[4]`` a DMA transfer is in progress, ``[5]`` CS_N is low.

    Parameters
    ----------
    config : TesseraConfig
        Default: the ``micro`` preset.
    ram_bytes : int
        System memory bytes (default :data:`RAM_BYTES`).
    max_payload : int
        Longest host-link transfer (default :data:`MAX_PAYLOAD`).

    Members
    -------
    ui_in, uio_in : In(8)
    uo_out, uio_out, uio_oe : Out(8)
    ena, clk, rst_n : In(1)
    """

    ui_in: In(8)
    uo_out: Out(8)
    uio_in: In(8)
    uio_out: Out(8)
    uio_oe: Out(8)
    ena: In(1)
    clk: In(1)
    rst_n: In(1)

    def __init__(self, config=None, *, ram_bytes=RAM_BYTES, max_payload=MAX_PAYLOAD):
        config = PRESETS["micro"] if config is None else config
        if not isinstance(config, TesseraConfig):
            self._MustUse__silence = True
            raise TypeError(f"config must be a TesseraConfig, not {config!r}")
        self.config, self.ram_bytes, self.max_payload = config, ram_bytes, max_payload
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(self.clk)
        m.submodules.reset_sync = ResetSynchronizer(~self.rst_n, domain="sync")

        m.submodules.accelerator = accelerator = Accelerator(self.config)
        m.submodules.ram = ram = AXI4RAM(self.ram_bytes, dma_axi_signature(self.config))
        m.submodules.link = link = HostLink(ram_bytes=self.ram_bytes,
                                            max_payload=self.max_payload,
                                            csr_addr_width=CSR_ADDR_WIDTH)
        m.submodules.spi = spi = SPITarget()
        wiring.connect(m, accelerator.mem, ram.axi)
        wiring.connect(m, link.csr, accelerator.csr)
        wiring.connect(m, link.ram, ram.host)
        wiring.connect(m, spi.rx, link.rx)
        wiring.connect(m, link.tx, spi.tx)

        mem = accelerator.mem
        dma_active = (mem.arvalid | mem.rvalid | mem.awvalid | mem.wvalid | mem.bvalid)
        m.d.comb += [
            link.abort.eq(spi.frame_end),  # CS_N high: the host is not listening
            spi.cs_n.eq(self.ui_in[0]), spi.sck.eq(self.ui_in[1]), spi.mosi.eq(self.ui_in[2]),
            self.uo_out.eq(Cat(spi.miso, accelerator.irq, link.busy, link.error, dma_active,
                               spi.selected)),
            self.uio_out.eq(0),
            self.uio_oe.eq(0),
        ]
        return m

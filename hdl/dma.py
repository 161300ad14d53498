"""The DMA: a read engine and a write engine sharing one AXI4 manager port."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axi4 import MAX_BURST_BEATS, connect_channels
from .burst_splitter import (
    check_engine_parameters,
    dma_axi_signature,
    dma_command_layout,
    dma_status_signature,
)
from .dma_read import DMAReader, read_beat_layout
from .dma_write import DMAWriter, write_beat_layout

__all__ = ["DMA"]


class DMA(wiring.Component):
    """AXI4 DMA manager: :class:`hdl.dma_read.DMAReader` on AR/R and
    :class:`hdl.dma_write.DMAWriter` on AW/W/B of one port.

    The two engines are independent (AXI's read and write channels are), each with its own
    command stream, status and sticky error; their timing is that of the engines. Reads use
    ARID ``read_id``, writes AWID ``write_id``.

    Parameters
    ----------
    config : TesseraConfig
        ``bus_data_width``, ``bus_addr_width``, ``bus_id_width``, ``dma_outstanding``.
    max_burst : int
        Longest burst in beats: a power of two, 1 to 256.
    read_id, write_id : int
        The AXI IDs.
    wide_commands : bool
        16-bit ``rows`` and ``row_beats`` also at 50 MHz and below (see
        :func:`hdl.burst_splitter.command_field_widths`).

    Members
    -------
    read_cmd : In(stream.Signature(dma_command_layout(config, wide=wide_commands)))
    read_data : Out(stream.Signature(read_beat_layout(config)))
    read_status : Out(dma_status_signature(config))
    write_cmd : In(stream.Signature(dma_command_layout(config, wide=wide_commands)))
    write_data : In(stream.Signature(write_beat_layout(config)))
    write_status : Out(dma_status_signature(config))
    axi : Out(dma_axi_signature(config))

    Raises
    ------
    TypeError, ValueError
        ``max_burst`` is not a power of two from 1 to 256, or an ID does not fit.
    """

    def __init__(self, config, *, max_burst=MAX_BURST_BEATS, read_id=0, write_id=0,
                 wide_commands=False):
        check_engine_parameters(self, config, max_burst=max_burst, axi_id=read_id)
        check_engine_parameters(self, config, max_burst=max_burst, axi_id=write_id)
        self.config = config
        self.reader = DMAReader(config, max_burst=max_burst, axi_id=read_id,
                                wide_commands=wide_commands)
        self.writer = DMAWriter(config, max_burst=max_burst, axi_id=write_id,
                                wide_commands=wide_commands)
        command = dma_command_layout(config, wide=wide_commands)
        super().__init__({
            "read_cmd": In(stream.Signature(command)),
            "read_data": Out(stream.Signature(read_beat_layout(config))),
            "read_status": Out(dma_status_signature(config)),
            "write_cmd": In(stream.Signature(command)),
            "write_data": In(stream.Signature(write_beat_layout(config))),
            "write_status": Out(dma_status_signature(config)),
            "axi": Out(dma_axi_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = reader = self.reader
        m.submodules.writer = writer = self.writer
        wiring.connect(m, wiring.flipped(self.read_cmd), reader.cmd)
        wiring.connect(m, wiring.flipped(self.read_data), reader.data)
        wiring.connect(m, wiring.flipped(self.read_status), reader.status)
        wiring.connect(m, wiring.flipped(self.write_cmd), writer.cmd)
        wiring.connect(m, wiring.flipped(self.write_data), writer.data)
        wiring.connect(m, wiring.flipped(self.write_status), writer.status)
        connect_channels(m, self.axi, reader.axi)
        connect_channels(m, self.axi, writer.axi)
        return m

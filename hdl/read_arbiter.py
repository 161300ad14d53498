"""Shares the DMA read engine between units, command by command."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .burst_splitter import ShiftQueue, dma_command_layout
from .dma_read import read_beat_layout

__all__ = ["ReadArbiter"]


class ReadArbiter(wiring.Component):
    """Lets ``clients`` units issue read commands to one :class:`hdl.dma_read.DMAReader`.

    Commands go to the engine in the order they are granted (a fixed priority, client 0
    first, one command per cycle; at slow clocks, ``not config.fast_clock``, in turns
    instead: the turn is a register, so that no client's ``ready`` depends on another's
    ``valid``, and it passes on after a command and in every cycle its holder has none, so a
    client waits at most ``clients - 1`` cycles while the others have no command); the
    engine answers commands in order, so a FIFO of the
    owners of the commands in flight routes each beat to its client, and the beat with
    ``last`` retires the command. A client's data back-pressure holds the engine's data
    stream (a client must take the beats of the commands it issued).

    Timing: a command passes in the cycle it is granted (combinational); beats pass through
    combinationally. At most :attr:`depth` commands are in flight.

    Members
    -------
    cmd_<i> : In(stream.Signature(dma_command_layout(config)))
    data_<i> : Out(stream.Signature(read_beat_layout(config)))
    dma_cmd : Out(stream.Signature(dma_command_layout(config)))
    dma_data : In(stream.Signature(read_beat_layout(config)))
    """

    depth = 4

    def __init__(self, config, clients=2):
        self.config, self.clients = config, clients
        members = {}
        for i in range(clients):
            members[f"cmd_{i}"] = In(stream.Signature(dma_command_layout(config)))
            members[f"data_{i}"] = Out(stream.Signature(read_beat_layout(config)))
        members["dma_cmd"] = Out(stream.Signature(dma_command_layout(config)))
        members["dma_data"] = In(stream.Signature(read_beat_layout(config)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        clients = range(self.clients)
        cmds = [getattr(self, f"cmd_{i}") for i in clients]
        datas = [getattr(self, f"data_{i}") for i in clients]
        # Slow clocks: a shift queue (no output register; the same capacity, and an owner is
        # readable one cycle after it was written, before any beat of its command).
        fifo = SyncFIFOBuffered if self.config.fast_clock else ShiftQueue
        m.submodules.owners = owners = fifo(
            width=max(1, (self.clients - 1).bit_length()), depth=self.depth)

        granted = Signal(range(self.clients))
        if self.config.fast_clock:
            # Grant: the lowest-numbered client with a command (later assignments win).
            for i in reversed(clients):
                with m.If(cmds[i].valid):
                    m.d.comb += [granted.eq(i), self.dma_cmd.payload.eq(cmds[i].payload)]
            wanted = Cat(cmd.valid for cmd in cmds).any()
        else:  # the client whose turn it is
            m.d.comb += self.dma_cmd.payload.eq(Array(cmd.payload for cmd in cmds)[granted])
            wanted = Array(cmd.valid for cmd in cmds)[granted]
            with m.If(~wanted | self.dma_cmd.ready & owners.w_rdy):
                m.d.sync += granted.eq(Mux(granted == self.clients - 1, 0, granted + 1))
        m.d.comb += [
            self.dma_cmd.valid.eq(wanted & owners.w_rdy),
            owners.w_en.eq(self.dma_cmd.valid & self.dma_cmd.ready),
            owners.w_data.eq(granted),
        ]
        for i, cmd in enumerate(cmds):
            m.d.comb += cmd.ready.eq(self.dma_cmd.ready & owners.w_rdy & (granted == i))

        # Route the beats to the owner of the oldest command.
        for i, out in enumerate(datas):
            mine = owners.r_rdy & (owners.r_data == i)
            m.d.comb += [
                out.valid.eq(self.dma_data.valid & mine),
                out.payload.eq(self.dma_data.payload),
            ]
            with m.If(mine):
                m.d.comb += self.dma_data.ready.eq(out.ready)
        m.d.comb += owners.r_en.eq(self.dma_data.valid & self.dma_data.ready
                                   & self.dma_data.payload.last)
        return m

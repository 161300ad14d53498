"""AXI4 (full) interface: the signature of a manager (master) port and the protocol constants.

The members carry the AXI signal names (``awaddr``, ``wlast``, ``rresp``, ...) in one flat
signature, so a port named ``axi`` becomes ``axi__awaddr``, ``axi__wlast``, ... in the generated
Verilog, which cocotbext-axi binds with ``AxiBus.from_prefix(dut, "axi", bus_separator="__")``.
"""

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CACHE_NORMAL_BUFFERABLE", "MAX_BURST_BEATS", "PAGE_BYTES", "AXI4Signature",
           "AXIBurst", "AXIResp", "connect_channels", "incr_burst_fields"]

#: An INCR burst of AXI4 has at most this many beats (AxLEN is 8 bits).
MAX_BURST_BEATS = 256
#: A burst must not cross a boundary of this many bytes.
PAGE_BYTES = 4096
#: AxCACHE of normal, non-cacheable, bufferable memory (what a DMA usually asks for).
CACHE_NORMAL_BUFFERABLE = 0b0011


class AXIBurst(enum.Enum, shape=2):
    """AxBURST."""
    FIXED = 0
    INCR = 1
    WRAP = 2


class AXIResp(enum.Enum, shape=2):
    """RRESP / BRESP. ``SLVERR`` and ``DECERR`` are errors; ``EXOKAY`` is a success."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


def _address_channel(prefix, addr_width, id_width):
    return {
        f"{prefix}id": Out(id_width),
        f"{prefix}addr": Out(addr_width),
        f"{prefix}len": Out(8),
        f"{prefix}size": Out(3),
        f"{prefix}burst": Out(AXIBurst),
        f"{prefix}lock": Out(1),
        f"{prefix}cache": Out(4),
        f"{prefix}prot": Out(3),
        f"{prefix}valid": Out(1),
        f"{prefix}ready": In(1),
    }


class AXI4Signature(wiring.Signature):
    """An AXI4 manager port (the subordinate's is ``AXI4Signature(...).flip()``).

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` / ``araddr`` (byte addresses).
    data_width : int
        Width of ``wdata`` / ``rdata``: 8, 16, ... 1024 bits.
    id_width : int
        Width of the transaction IDs.
    read, write : bool
        Which half the port has: ``read`` is AR and R, ``write`` is AW, W and B. A block that
        only reads (:class:`hdl.dma_read.DMAReader`) has a read-only port; :func:`connect_channels`
        joins it to a full one.

    Raises
    ------
    TypeError, ValueError
        A width is not an integer, or out of range; neither half is asked for.

    Members
    -------
    awid, awaddr, awlen, awsize, awburst, awlock, awcache, awprot, awvalid : Out; awready : In
    wdata, wstrb, wlast, wvalid : Out; wready : In
    bid, bresp, bvalid : In; bready : Out
    arid, araddr, arlen, arsize, arburst, arlock, arcache, arprot, arvalid : Out; arready : In
    rid, rdata, rresp, rlast, rvalid : In; rready : Out
    """

    def __init__(self, *, addr_width, data_width, id_width, read=True, write=True):
        for name, value in [("addr_width", addr_width), ("id_width", id_width)]:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"AXI4 {name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"AXI4 {name} must be a positive integer, not {value!r}")
        if data_width not in [8 << i for i in range(8)]:
            raise ValueError(f"AXI4 data_width must be a power of two from 8 to 1024, "
                             f"not {data_width!r}")
        if not (read or write):
            raise ValueError("An AXI4 port needs a read or a write half (or both)")
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        self.read, self.write = bool(read), bool(write)
        members = {}
        if write:
            members.update(_address_channel("aw", addr_width, id_width))
            members.update({
                "wdata": Out(data_width),
                "wstrb": Out(data_width // 8),
                "wlast": Out(1),
                "wvalid": Out(1),
                "wready": In(1),
                "bid": In(id_width),
                "bresp": In(AXIResp),
                "bvalid": In(1),
                "bready": Out(1),
            })
        if read:
            members.update(_address_channel("ar", addr_width, id_width))
            members.update({
                "rid": In(id_width),
                "rdata": In(data_width),
                "rresp": In(AXIResp),
                "rlast": In(1),
                "rvalid": In(1),
                "rready": Out(1),
            })
        super().__init__(members)

    @property
    def beat_bytes(self):
        return self.data_width // 8

    @property
    def size(self):
        """AxSIZE of a full-width beat: log2 of :attr:`beat_bytes`."""
        return (self.beat_bytes - 1).bit_length()

    def __eq__(self, other):
        return (type(other) is AXI4Signature and
                (self.addr_width, self.data_width, self.id_width, self.read, self.write) ==
                (other.addr_width, other.data_width, other.id_width, other.read, other.write))

    def __hash__(self):
        return hash((self.addr_width, self.data_width, self.id_width, self.read, self.write))

    def __repr__(self):
        halves = "read+write" if self.read and self.write else "read" if self.read else "write"
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width}, {halves})")


def connect_channels(m, port, part):
    """Joins ``part`` (a manager port carrying some of the channels) to the same channels of
    ``port`` (a manager port of the enclosing block, seen from inside: its outputs are driven
    by ``part``, its inputs feed ``part``)."""
    for name, member in part.signature.members.items():
        if name not in port.signature.members:
            raise ValueError(f"Port {port.signature!r} has no member {name!r}")
        if member.flow == Out:
            m.d.comb += getattr(port, name).eq(getattr(part, name))
        else:
            m.d.comb += getattr(part, name).eq(getattr(port, name))


def incr_burst_fields(axi, channel, *, axi_id, cache=CACHE_NORMAL_BUFFERABLE, prot=0b000):
    """The fixed fields of full-width INCR bursts on address channel ``channel`` (``"ar"`` or
    ``"aw"``) of manager port ``axi``: ID, AxSIZE of the data width, INCR, normal access,
    ``cache`` and ``prot`` (default: unprivileged, secure, data). Statements for ``m.d.comb``.
    """
    def field(name):
        return getattr(axi, f"{channel}{name}")
    return [
        field("id").eq(axi_id),
        field("size").eq(axi.signature.size),
        field("burst").eq(AXIBurst.INCR),
        field("lock").eq(0),
        field("cache").eq(cache),
        field("prot").eq(prot),
    ]

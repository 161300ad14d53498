"""AXI4-Lite: the bus signature, response codes, and a register-bank slave."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from .registers import Access, RegisterMap

__all__ = ["AXI4LiteRegisterBank", "AXI4LiteSignature", "AXIResp"]


class AXIResp(enum.Enum, shape=2):
    """``BRESP`` / ``RRESP`` codes."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite interface, from the master's side, with the specification's signal names.

    Members ``awaddr awprot awvalid awready wdata wstrb wvalid wready bresp bvalid bready
    araddr arprot arvalid arready rdata rresp rvalid rready``: a slave port is
    ``In(AXI4LiteSignature(...))``. In generated Verilog a port ``bus`` flattens to
    ``bus__awaddr`` etc., which cocotbext-axi binds with
    ``AxiLiteBus.from_prefix(dut, "bus", bus_separator="__")``.

    Parameters
    ----------
    addr_width : int
        Byte-address width.
    data_width : int
        32 or 64.
    """

    def __init__(self, *, addr_width, data_width=32):
        for name, value in (("addr_width", addr_width), ("data_width", data_width)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"AXI4-Lite {name} must be an integer, not {value!r}")
        if addr_width < 1:
            raise ValueError(f"AXI4-Lite addr_width must be a positive integer, not "
                             f"{addr_width!r}")
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data_width must be 32 or 64, not {data_width!r}")
        self._addr_width = addr_width
        self._data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(AXIResp), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(AXIResp), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    def __eq__(self, other):
        return (type(other) is AXI4LiteSignature and self.addr_width == other.addr_width
                and self.data_width == other.data_width)

    def __hash__(self):
        return hash((AXI4LiteSignature, self.addr_width, self.data_width))

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


class AXI4LiteRegisterBank(wiring.Component):
    """AXI4-Lite slave holding the registers of a :class:`~hdl.registers.RegisterMap`.

    No holding registers: the payloads are used while the master holds them valid (AXI:
    VALID, once high, stays with a stable payload until READY). A write executes in its AW/W
    handshake cycle, which comes when AW and W are both valid and B is free; a read executes
    in the cycle after its AR handshake (which comes when R is empty). Reads and writes
    proceed in parallel; a read executing in the cycle a write to the same register executes
    returns the value from before the write.

    Responses:

    - Unmapped address (any bit of the ``addr_width``-bit address outside the map's words;
      the low ``log2(data_width / 8)`` bits select a byte and are ignored): DECERR for reads
      and writes, nothing changes, read data 0.
    - Write to a RO or CONST register: SLVERR, nothing changes (so a driver bug shows up
      instead of being silently ignored). Read of a WO register: SLVERR, data 0.
    - WO write: the data go out with a one-cycle ``strobe`` and OKAY, unless the hardware's
      ``full`` is high in that cycle or the write does not strobe every byte lane holding an
      implemented bit (half an instruction word is never pushed): then SLVERR, no strobe.
    - Otherwise OKAY. ``AWPROT``/``ARPROT`` are ignored.

    ``WSTRB``: an RW register changes only in strobed byte lanes; a W1C register clears only
    bits of strobed lanes (``WSTRB`` 0 writes nothing and answers OKAY). W1C: a hardware ``set``
    wins over a host clear of the same bit in the same cycle. Only field bits are implemented
    in a register with fields (the rest read 0). RO values are sampled in the cycle the read
    executes, the cycle after the AR handshake.

    Timing:

    - Handshakes: ``AWREADY`` and ``WREADY`` rise together (one register) in the cycle after
      one where AW and W are both valid and B is free or leaving (``BVALID`` low or
      ``BREADY`` high): a write whose AW and W are valid in cycle t is handshaken in t + 1
      (no earlier than its later channel arrives plus 1). ``ARREADY`` is high while no read
      is in progress (from its AR handshake to its R handshake), from registers.
    - Write latency :attr:`write_latency` = 1: AW/W handshake in cycle t, the register holds
      the new value and ``BVALID`` is high in cycle t + 1. A WO ``strobe`` is in cycle t
      itself, combinational from the bus handshake, so ``full`` is sampled in the same cycle
      as the push it refuses.
    - Read latency :attr:`read_latency` = 2: AR handshake in cycle t, the read executes in
      t + 1 and ``RVALID`` with its data is high in t + 2.
    - Throughput: one write every 2 cycles and, in parallel, one read every 3 cycles, while
      ``BREADY`` / ``RREADY`` stay high (the host link issues one CSR word per 6 or more).
    - Back-pressure: B and R stay valid with stable payload until their READY; meanwhile no
      other write (read) is accepted: at most one response of each kind is owed.
    - Every bus output (READYs, VALIDs, payloads) comes from registers (``ARREADY`` through
      a NOR): no combinational path from a bus input to a bus output. ``irq`` is
      registered: high the cycle after ``status & enable`` becomes non-zero.

    Parameters
    ----------
    register_map : RegisterMap
        Data width (32 or 64) and registers of the bank.
    addr_width : int
        Byte-address width of the bus, at least ``register_map.addr_bits``; all of it is
        decoded (no aliases).
    late_rresp : bool
        Compact read decoding (slow clocks): ``RRESP`` is computed in the cycle the read
        executes from the registered per-register selects rather than decoded in the AR
        handshake cycle (same responses, same timing at the bus).

    Members
    -------
    bus : In(AXI4LiteSignature(addr_width=addr_width, data_width=register_map.data_width))
    regs : Out(register_map.signature)
        One port per register named in lower case (see :attr:`RegisterMap.signature`): RW
        ``Out`` value; RO ``In`` value; W1C ``value`` out, ``set`` pulses in; WO ``data`` and
        ``strobe`` out, ``full`` in.
    irq : Out(1)
        Only with ``register_map.irq``: OR of the status register's bits and the enable's.

    Raises
    ------
    TypeError
        ``register_map`` is not a RegisterMap, ``addr_width`` not an integer.
    ValueError
        ``addr_width`` is too narrow for the map (or wider than 64).
    """

    write_latency = 1
    read_latency = 2

    def __init__(self, register_map, *, addr_width=12, late_rresp=False):
        try:
            self._check(register_map, addr_width)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise
        self.register_map = register_map
        self.addr_width = addr_width
        self.late_rresp = bool(late_rresp)
        members = {
            "bus": In(AXI4LiteSignature(addr_width=addr_width,
                                        data_width=register_map.data_width)),
            "regs": Out(register_map.signature),
        }
        if register_map.irq is not None:
            members["irq"] = Out(1)
        super().__init__(members)

    @staticmethod
    def _check(register_map, addr_width):
        if not isinstance(register_map, RegisterMap):
            raise TypeError(f"register_map must be a RegisterMap, not {register_map!r}")
        if not isinstance(addr_width, int) or isinstance(addr_width, bool):
            raise TypeError(f"addr_width must be an integer, not {addr_width!r}")
        needed = max(register_map.addr_bits, (register_map.word_bytes - 1).bit_length() + 1)
        if not needed <= addr_width <= 64:
            raise ValueError(f"addr_width must be {needed} to 64 for register map "
                             f"{register_map.name}, not {addr_width!r}")

    def elaborate(self, platform):
        m = Module()
        bus, rmap = self.bus, self.register_map
        lanes = rmap.word_bytes
        lsb = (lanes - 1).bit_length()
        word_of = {reg.name: reg.offset >> lsb for reg in rmap}

        def port(reg):
            return getattr(self.regs, reg.hw_name)

        def value_of(reg):
            """The register's state (RW, W1C), hardware input (RO) or constant, as a Value."""
            if reg.access is Access.CONST:
                return Const(reg.reset, rmap.data_width)
            if reg.access is Access.W1C:
                return Value.cast(port(reg).value)
            return Value.cast(port(reg))

        # Write: AWREADY and WREADY rise together, the cycle after both AW and W are valid
        # with B free in that next cycle (no holding registers: the payloads are used as the
        # master holds them).
        write_go = Signal()
        m.d.comb += [bus.awready.eq(write_go), bus.wready.eq(write_go)]
        aw_addr, w_data, w_strb = bus.awaddr, bus.wdata, bus.wstrb
        write = Signal()
        m.d.comb += write.eq(write_go & bus.awvalid & bus.wvalid)
        m.d.sync += write_go.eq(bus.awvalid & bus.wvalid & ~write_go
                                & ~(bus.bvalid & ~bus.bready))
        with m.If(write):
            m.d.sync += bus.bvalid.eq(1)
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        lane_mask = Cat(strobe.replicate(8) for strobe in w_strb)
        bresp = Signal(AXIResp)
        clears = {}
        m.d.comb += bresp.eq(AXIResp.DECERR)
        with m.Switch(aw_addr[lsb:]):
            for reg in rmap:
                mask = rmap.mask(reg)
                width = rmap.width(reg)
                with m.Case(word_of[reg.name]):
                    if reg.access is Access.RW:
                        m.d.comb += bresp.eq(AXIResp.OKAY)
                        value = value_of(reg)
                        enable = (lane_mask & mask)[:width]
                        with m.If(write):
                            m.d.sync += value.eq((value & ~enable) | (w_data[:width] & enable))
                    elif reg.access is Access.W1C:
                        m.d.comb += bresp.eq(AXIResp.OKAY)
                        clears[reg.name] = clear = Signal(width, name=f"{reg.hw_name}_clear")
                        m.d.comb += clear.eq(Mux(write, w_data & lane_mask & mask, 0))
                    elif reg.access is Access.WO:
                        needed = sum(1 << lane for lane in range(lanes) if mask >> 8 * lane & 0xff)
                        accept = ((w_strb & needed) == needed) & ~port(reg).full
                        m.d.comb += [
                            bresp.eq(Mux(accept, AXIResp.OKAY, AXIResp.SLVERR)),
                            port(reg).strobe.eq(write & accept),
                        ]
                    else:
                        m.d.comb += bresp.eq(AXIResp.SLVERR)
        with m.If(write):
            m.d.sync += bus.bresp.eq(bresp)

        for reg in rmap:
            if reg.access is Access.WO:
                m.d.comb += Value.cast(port(reg).data).eq(w_data)
            elif reg.access is Access.W1C:
                value = value_of(reg)
                clear = clears[reg.name]
                m.d.sync += value.eq((value & ~clear) | Value.cast(port(reg).set))

        # Read: the AR handshake in cycle t decodes the address into one select flip-flop per
        # readable register (all low if unmapped) and sets RRESP; in t + 1 RDATA takes the
        # OR of the values ANDed with their selects (two values per LUT4, then an OR tree:
        # cheaper than a multiplexer on the address) and RVALID rises.
        pending = Signal()  # the read executes
        m.d.comb += bus.arready.eq(~bus.rvalid & ~pending)
        read = Signal()
        m.d.comb += read.eq(bus.arvalid & bus.arready)
        readable = [reg for reg in rmap if reg.access.readable]
        m.d.sync += pending.eq(read)
        if self.late_rresp:
            # Compact: a select per register, WO ones included (their decoders then feed
            # nothing else, so each packs with its flip-flop); RRESP follows from them in
            # t + 1: OKAY if a readable register's is set, else SLVERR if a WO one's.
            unreadable = [reg for reg in rmap if not reg.access.readable]
            select = Signal(len(readable) + len(unreadable))
            with m.If(read):
                m.d.sync += select.eq(Cat(bus.araddr[lsb:] == word_of[reg.name]
                                          for reg in readable + unreadable))
            rresp = Mux(select[:len(readable)].any(), AXIResp.OKAY,
                        Mux(select[len(readable):].any(), AXIResp.SLVERR, AXIResp.DECERR))
            with m.If(pending):
                m.d.sync += bus.rresp.eq(rresp)
        else:
            select = Signal(len(readable))
            rresp = Signal(AXIResp)
            m.d.comb += rresp.eq(AXIResp.DECERR)
            with m.Switch(bus.araddr[lsb:]):
                for reg in rmap:
                    with m.Case(word_of[reg.name]):
                        if reg.access.readable:
                            m.d.comb += rresp.eq(AXIResp.OKAY)
                        else:
                            m.d.comb += rresp.eq(AXIResp.SLVERR)
            with m.If(read):
                m.d.sync += [bus.rresp.eq(rresp),
                             select.eq(Cat(bus.araddr[lsb:] == word_of[reg.name]
                                           for reg in readable))]
        rdata = 0
        for i, reg in enumerate(readable):
            rdata = rdata | (value_of(reg) & rmap.mask(reg) & select[i].replicate(rmap.data_width))
        with m.If(pending):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(rdata)]
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        if rmap.irq is not None:
            status, enable = (value_of(rmap[name]) for name in rmap.irq)
            m.d.sync += self.irq.eq((status & enable).any())
        return m

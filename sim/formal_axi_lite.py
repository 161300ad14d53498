"""Formal harness: the AXI4-Lite register bank's handshakes, under any legal master."""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import (
    Array,
    Assert,
    Assume,
    Cat,
    Const,
    Cover,
    Elaboratable,
    Module,
    ResetSignal,
    Signal,
    Value,
)

from hdl.axi_lite import AXI4LiteRegisterBank, AXIResp
from hdl.registers import Access, Field, Register, RegisterMap

__all__ = ["PROOF_MAP", "AXI4LiteProof"]

#: Every access kind, an interrupt, and a hole (0x18..0x1f) in a 5-bit address space.
PROOF_MAP = RegisterMap("PROOF", [
    Register("DATA", 0x00, Access.RW, 0x5a, "", (Field("V", 0, 8),)),
    Register("HW", 0x04, Access.RO),
    Register("MAGIC", 0x08, Access.CONST, 0xc0ffee11),
    Register("STATUS", 0x0C, Access.W1C, 0, "", (Field("A", 0), Field("B", 9))),
    Register("ENABLE", 0x10, Access.RW, 0, "", (Field("A", 0), Field("B", 9))),
    Register("QUEUE", 0x14, Access.WO),
], irq=("STATUS", "ENABLE"))
PROOF_ADDR_WIDTH = 5


class AXI4LiteProof(Elaboratable):
    """Drives every input of an :class:`AXI4LiteRegisterBank` with unconstrained values each
    cycle, assuming only that the master follows AXI: VALID is low in reset and, once high,
    holds with a stable payload until READY.

    Counters track, per channel, handshakes not yet answered: ``aw_out``/``w_out`` (AW/W
    accepted minus B) and ``ar_out`` (AR minus R). Asserted:

    - B and R, once valid, hold with a stable payload until READY.
    - No response without a request, none dropped: BVALID implies an owed AW and W, and a
      complete pair owed implies BVALID (so every pair gets exactly one B); RVALID exactly
      when an AR is owed. At most one of each is owed; AW and W are handshaken together.
    - No deadlock: AWREADY and WREADY are high in the cycle after one where AW and W are both
      valid, not handshaken, and B is free or leaving; ARREADY is low only while a read is
      owed, and its R comes two cycles after the AR handshake.
    - Each response is the right one for its request's address: DECERR unmapped, SLVERR on
      a write to RO/CONST or a read of WO, OKAY otherwise (a WO write: OKAY or SLVERR), and
      a CONST read returns the constant.

    Covered: OKAY, SLVERR and DECERR write responses, a DECERR read, a CONST read, B and R
    handshakes 2 and 3 cycles apart (full rate), a write waiting behind a stalled B, a WO push,
    ``irq``.
    """

    def __init__(self, register_map=PROOF_MAP, addr_width=PROOF_ADDR_WIDTH):
        self.register_map = register_map
        self.addr_width = addr_width

    def _expected(self, m, addr, write):
        """What the reference decode expects for a request to ``addr``, packed as
        ``Cat(resp, either, data, known)``: ``either`` allows SLVERR instead of OKAY (a WO
        write, which ``full`` or the strobes may refuse); ``known`` says the read data must be
        ``data`` (a constant)."""
        rmap = self.register_map
        lsb = (rmap.word_bytes - 1).bit_length()
        kind = "write" if write else "read"
        resp = Signal(AXIResp, name=f"{kind}_resp")
        either, known = Signal(name=f"{kind}_either"), Signal(name=f"{kind}_known")
        data = Signal(rmap.data_width, name=f"{kind}_data")
        m.d.comb += resp.eq(AXIResp.DECERR)
        for reg in rmap:
            allowed = reg.access.writable if write else reg.access.readable
            with m.If(addr[lsb:] == reg.offset >> lsb):
                m.d.comb += resp.eq(AXIResp.OKAY if allowed else AXIResp.SLVERR)
                if write and reg.access is Access.WO:
                    m.d.comb += either.eq(1)
                if not write and reg.access is Access.CONST:
                    m.d.comb += [data.eq(reg.reset), known.eq(1)]
        return Cat(resp, either, data, known)

    def elaborate(self, platform):
        m = Module()
        rmap = self.register_map
        m.submodules.dut = dut = AXI4LiteRegisterBank(rmap, addr_width=self.addr_width)
        bus = dut.bus
        reset = ResetSignal()
        m.d.comb += Assume(reset == Initial())

        inputs = [bus.awaddr, bus.awprot, bus.awvalid, bus.wdata, bus.wstrb, bus.wvalid,
                  bus.bready, bus.araddr, bus.arprot, bus.arvalid, bus.rready]
        for reg in rmap:
            port = getattr(dut.regs, reg.hw_name, None)
            if reg.access is Access.RO:
                inputs.append(port)
            elif reg.access is Access.W1C:
                inputs.append(port.set)
            elif reg.access is Access.WO:
                inputs.append(port.full)
        for port in inputs:
            port = Value.cast(port)
            m.d.comb += port.eq(AnySeq(len(port)))

        # The master follows AXI.
        for valid, ready, payload in [(bus.awvalid, bus.awready, Cat(bus.awaddr, bus.awprot)),
                                      (bus.wvalid, bus.wready, Cat(bus.wdata, bus.wstrb)),
                                      (bus.arvalid, bus.arready, Cat(bus.araddr, bus.arprot))]:
            waiting, held = Signal(), Signal.like(payload)
            m.d.sync += [waiting.eq(valid & ~ready & ~reset), held.eq(payload)]
            with m.If(reset):
                m.d.comb += Assume(~valid)
            with m.If(waiting):
                m.d.comb += [Assume(valid), Assume(payload == held)]

        aw_fire = bus.awvalid & bus.awready
        w_fire = bus.wvalid & bus.wready
        b_fire = bus.bvalid & bus.bready
        ar_fire = bus.arvalid & bus.arready
        r_fire = bus.rvalid & bus.rready

        # Handshakes owed, and what each owed response must be (by order of the requests).
        aw_out, w_out, ar_out = Signal(3), Signal(3), Signal(3)
        m.d.sync += [aw_out.eq(aw_out + aw_fire - b_fire), w_out.eq(w_out + w_fire - b_fire),
                     ar_out.eq(ar_out + ar_fire - r_fire)]
        expected = {}
        for name, fire, done, addr in [("b", aw_fire, b_fire, bus.awaddr),
                                       ("r", ar_fire, r_fire, bus.araddr)]:
            want = self._expected(m, addr, write=name == "b")
            queue = Array(Signal(len(want), name=f"{name}_want{i}") for i in range(4))
            head, tail = Signal(2, name=f"{name}_head"), Signal(2, name=f"{name}_tail")
            with m.If(fire):
                m.d.sync += [queue[tail].eq(want), tail.eq(tail + 1)]
            with m.If(done):
                m.d.sync += head.eq(head + 1)
            expected[name] = queue[head]

        # Previous cycle's B and R, for the hold property.
        b_waited, b_held = Signal(), Signal(AXIResp)
        r_waited, r_held = Signal(), Signal(rmap.data_width + 2)
        m.d.sync += [b_waited.eq(bus.bvalid & ~bus.bready), b_held.eq(bus.bresp),
                     r_waited.eq(bus.rvalid & ~bus.rready), r_held.eq(Cat(bus.rdata, bus.rresp))]

        # A write the bank must accept in this cycle: both valid last cycle, not handshaken,
        # and B free or leaving then.
        ar_last = Signal()   # an AR handshake in the previous cycle (its R is not yet due)
        m.d.sync += ar_last.eq(ar_fire)
        write_due = Signal()
        m.d.sync += write_due.eq(bus.awvalid & bus.wvalid & ~aw_fire & ~w_fire & ~reset
                                 & ~(bus.bvalid & ~bus.bready))

        with m.If(~Initial() & ~reset):
            m.d.comb += [
                Assert(aw_out <= 1), Assert(w_out <= 1), Assert(ar_out <= 1),
                Assert(aw_fire == w_fire),
                Assert(~bus.bvalid | ((aw_out >= 1) & (w_out >= 1))),
                Assert(~((aw_out >= 1) & (w_out >= 1)) | bus.bvalid),
                Assert(~bus.rvalid | (ar_out >= 1)),
                Assert(bus.rvalid == ((ar_out >= 1) & ~ar_last)),
                Assert(~write_due | (bus.awready & bus.wready)),
                Assert(bus.arready == (ar_out == 0)),
            ]
            with m.If(b_waited):
                m.d.comb += [Assert(bus.bvalid), Assert(bus.bresp == b_held)]
            with m.If(r_waited):
                m.d.comb += [Assert(bus.rvalid), Assert(Cat(bus.rdata, bus.rresp) == r_held)]
            b_want, r_want = expected["b"], expected["r"]
            with m.If(bus.bvalid):
                resp, either = b_want[:2], b_want[2]
                m.d.comb += Assert((bus.bresp.as_value() == resp)
                                   | (either & (bus.bresp == AXIResp.SLVERR)))
            with m.If(bus.rvalid):
                resp, data, known = r_want[:2], r_want[3:-1], r_want[-1]
                m.d.comb += [Assert(bus.rresp.as_value() == resp),
                             Assert(~known | (bus.rdata == data))]

        # Covers: every kind of answer, full rate, back-pressure, pushes, the interrupt.
        last_b, last_r = Signal(2), Signal(3)   # the previous cycles' handshakes
        m.d.sync += [last_b.eq(Cat(b_fire, last_b)), last_r.eq(Cat(r_fire, last_r))]
        queue = dut.regs.queue
        m.d.comb += [
            Cover(b_fire & (bus.bresp == AXIResp.OKAY)),
            Cover(b_fire & (bus.bresp == AXIResp.SLVERR)),
            Cover(b_fire & (bus.bresp == AXIResp.DECERR)),
            Cover(r_fire & (bus.rresp == AXIResp.DECERR)),
            Cover(r_fire & (bus.rdata == Const(rmap["MAGIC"].reset, rmap.data_width))),
            Cover(b_fire & last_b[1]),
            Cover(r_fire & last_r[2]),
            Cover(bus.bvalid & ~bus.bready & bus.awvalid & bus.wvalid),
            Cover(queue.strobe),
            Cover(dut.irq),
        ]
        return m

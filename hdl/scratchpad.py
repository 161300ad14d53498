"""Scratchpad: banked int8 row memory between the loads and the systolic array."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .response_buffer import ResponseBuffer
from .sram import SRAM1R1W

__all__ = ["Scratchpad", "rows_beyond", "sp_read_layout", "sp_write_layout"]


def rows_beyond(first, count, depth, *, narrow):
    """Whether rows ``first`` to ``first + count - 1`` of a request run past a memory of
    ``depth`` rows (a power of two), and ``first + count``. With ``narrow`` the sum is only
    as wide as the memory needs (two bits above its row index): the higher bits of ``first``
    and ``count`` are or-ed into the answer instead of added (right for ``count >= 1``; the
    sum is right whenever the rows fit)."""
    if not narrow:
        return first + count > depth, first + count
    bits = (depth - 1).bit_length()
    end = first[:bits] + count[:bits + 1]
    return first[bits:].any() | count[bits + 1:].any() | (end > depth), end


def sp_write_layout(config):
    return data.StructLayout({
        "addr": config.addr_width,
        "row": data.ArrayLayout(config.act_shape, config.dim),
    })


def sp_read_layout(config):
    """A read answer; ``error`` marks a refused out-of-range address (``row`` is then zero)."""
    return data.StructLayout({
        "row": data.ArrayLayout(config.act_shape, config.dim),
        "error": 1,
    })


class Scratchpad(wiring.Component):
    """``config.sp_depth`` rows of ``dim`` activation lanes in ``config.sp_banks`` banks.

    The bank is selected by the top address bits, so with two banks the halves are the
    ping-pong buffers. Each bank is one :class:`hdl.sram.SRAM1R1W`.

    Timing (two read-port variants, see :attr:`holds_answers`):

    - ``write``: one row per cycle, written at the end of the cycle it is accepted. Held
      answers: a second write port, ``write_b``, which waits while ``write`` is valid (the
      top level's LOAD and STORE); each port's ``ready`` comes from registers and its own
      address (``write_b``'s also from ``write.valid``), not from the other's address.
    - ``read`` -> ``read_data``: one row per cycle; an answer appears :attr:`read_latency`
      cycles after its request is accepted (2 buffered, 1 held). A read sees every write
      accepted in an earlier cycle, not one accepted in the same cycle.
    - ``read_b`` -> ``read_b_data``: a second read port with the same timing, for another
      bank: a bank has one read port, so when both ports want the same bank in a cycle,
      ``read`` goes first, ``read_b`` waits and the conflict is counted. (The EXEC unit reads
      the next tile's weights from one ping-pong half while activation rows stream from the
      other.)
    - Back-pressure, buffered: ``read_data`` not ready fills a 3-row response buffer, then
      ``read.ready`` drops; ``ready`` is a register. Held: the answer waits in the bank's
      own output register (an SRAM's output holds while it is not read), and ``read.ready``
      is high while no answer waits or the waiting one is taken in this cycle (so it depends
      on ``read_data.ready`` combinationally). When the other port reads that bank
      meanwhile, the answer's ``valid`` drops and the port reads the row again (the other
      port's request goes first, so neither can hold the other up for good); a write to the
      bank of a waiting answer waits too, so the answer is still the row as it was read.
      Nothing is lost either way. ``write.ready`` stays high, except that a write waits
      while a read of the same bank is accepted with ``config.sp_single_port`` banks (the
      read, which feeds the array, goes first) or, with held answers, while an answer from
      its bank waits; with held answers a read request waits instead while a write to its
      bank is accepted (``write.ready`` then comes from registers: no path from the
      readers' requests to the writer). Conflicts are counted.
    - An address at or above ``sp_depth`` is refused, never wrapped: a write is dropped, a
      read answers a zero row with ``error`` set, and the sticky ``error`` output rises.

    Members
    -------
    write : In(stream.Signature(sp_write_layout(config)))
    write_b : In(stream.Signature(sp_write_layout(config)))
        With :attr:`holds_answers` only.
    read : In(stream.Signature(config.addr_width))
    read_data : Out(stream.Signature(sp_read_layout(config)))
    read_b : In(stream.Signature(config.addr_width))
    read_b_data : Out(stream.Signature(sp_read_layout(config)))
    error : Out(1)
        Sticky: an out-of-range address was refused.
    conflict : Out(1)
        High in each cycle a write waits for a same-bank read (held answers or single-ported
        banks), or ``read_b`` for a same-bank ``read`` (the top level counts these cycles).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "write": In(stream.Signature(sp_write_layout(config))),
            **({"write_b": In(stream.Signature(sp_write_layout(config)))}
               if self.holds_answers_for(config) else {}),
            "read": In(stream.Signature(config.addr_width)),
            "read_data": Out(stream.Signature(sp_read_layout(config))),
            "read_b": In(stream.Signature(config.addr_width)),
            "read_b_data": Out(stream.Signature(sp_read_layout(config))),
            "error": Out(1),
            "conflict": Out(1),
        })

    @staticmethod
    def holds_answers_for(config):
        """Whether a scratchpad of ``config`` holds answers in the banks' output registers
        (one per port, ``read_latency`` 1) instead of a 3-row response buffer per port."""
        # Not at fast clocks: the path from ``read_data.ready`` to the banks' read enables.
        return not config.fast_clock

    @property
    def holds_answers(self):
        return self.holds_answers_for(self.config)

    @staticmethod
    def read_latency_for(config):
        """Cycles from an accepted read request to its answer on ``read_data``."""
        return 1 if Scratchpad.holds_answers_for(config) else 2

    @property
    def read_latency(self):
        return self.read_latency_for(self.config)

    @staticmethod
    def answers_for(config):
        """Accepted reads per port whose answers were not yet taken, at most."""
        return 1 if Scratchpad.holds_answers_for(config) else 3

    @property
    def sram_shapes(self):
        """``(depth, width)`` of each bank."""
        return [(self.config.sp_bank_depth, self.config.dim * self.config.act_width)] * \
            self.config.sp_banks

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        bank_depth = cfg.sp_bank_depth
        index_bits = (bank_depth - 1).bit_length()
        width = cfg.dim * cfg.act_width
        banks = []
        for b in range(cfg.sp_banks):
            # Held answers: a row is never read and written in one cycle (the write waits,
            # see below), so the bank needs no read-before-write ordering.
            banks.append(SRAM1R1W(bank_depth, width,
                                  collision="any" if self.holds_answers else "old"))
            m.submodules[f"bank{b}"] = banks[-1]

        addr_bits = (cfg.sp_depth - 1).bit_length()
        ports = [(self.read, self.read_data), (self.read_b, self.read_b_data)]
        if self.holds_answers:
            w_fire, w_payload, reads, fires, b_conflict, waits = self._held_writes(
                m, banks, ports)
        else:
            w_payload = self.write.payload
        w_addr = w_payload.addr
        w_in_range = w_addr < cfg.sp_depth
        w_row = w_addr[:addr_bits]
        if not self.holds_answers:
            w_fire = Signal()
            reads, fires, b_conflict, pending = self._buffered_ports(m, banks, ports)

            # A write waits for a read of the same bank if single-ported. Faster clocks keep
            # the comparator off the path from EXEC's requests to LOAD's write (the banks
            # order a same-row read and write).
            w_bank = w_row[index_bits:]
            if cfg.sp_single_port:
                same = [go & (addr[index_bits:] == w_bank) for go, addr in reads]
            else:
                same = []
            same += [waiting & (addr[index_bits:] == w_bank) for waiting, addr in pending]
            conflict = Signal()
            # (Also for a write outside the scratchpad, which only sets the error: no range
            # comparator on the path into `ready`.)
            m.d.comb += conflict.eq(Cat(*same).any())
            m.d.comb += [self.write.ready.eq(~conflict),
                         w_fire.eq(self.write.valid & self.write.ready)]
            waits = self.write.valid & conflict

        (a_go, a_addr), (b_go, b_addr) = reads
        for b, bank in enumerate(banks):
            a_here = a_go & (a_addr[index_bits:] == b)
            m.d.comb += [
                bank.r_addr.eq(Mux(a_here, a_addr[:index_bits], b_addr[:index_bits])),
                bank.r_en.eq(a_here | (b_go & (b_addr[index_bits:] == b))),
                bank.w_addr.eq(w_addr[:index_bits]),
                bank.w_data.eq(w_payload.row),
                bank.w_en.eq(w_fire & w_in_range & (w_row[index_bits:] == b)),
            ]

        refused = [fire & ~in_range for fire, in_range in fires]
        with m.If(Cat(*refused, w_fire & ~w_in_range).any()):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.conflict.eq(waits | b_conflict)
        return m

    def _held_writes(self, m, banks, ports):
        """With held answers: ``write`` and ``write_b`` (``write`` first), the read ports
        (:meth:`_held_ports`). A read request waits for a write of the same bank (so that a
        read returns the old row without the memory having to order the two), and a write
        for the bank of an answer that is pending (it may have to be read again): bank
        compares rather than row compares (four row comparators' worth of logic), felt only
        when LOAD writes the bank EXEC reads. Each writer has its own compare, from its own
        address (no multiplexer between the writers and the compare: a writer's ``ready``
        comes from registers if its address does), and a read waits for the writer that is
        accepted, not for the multiplexed one. Returns the accept, the written payload, the
        read ports' values and the writers' conflict cycles."""
        cfg = self.config
        addr_bits = (cfg.sp_depth - 1).bit_length()
        index_bits = (cfg.sp_bank_depth - 1).bit_length()
        writers = [self.write, self.write_b]
        banks_of = [w.payload.addr[:addr_bits][index_bits:] for w in writers]
        fires = [Signal(name=f"w_fire_{k}") for k in range(len(writers))]
        reads, r_fires, b_conflict, pending = self._held_ports(
            m, banks, ports, list(zip(fires, banks_of, strict=True)))
        waits = []
        for k, (writer, w_bank) in enumerate(zip(writers, banks_of, strict=True)):
            conflict = Signal(name=f"conflict_{k}")
            # (Also for a write outside the scratchpad, which only sets the error: no range
            # comparator on the path into `ready`.)
            m.d.comb += conflict.eq(Cat(waiting & (addr[index_bits:] == w_bank)
                                        for waiting, addr in pending).any())
            ahead = Cat(w.valid for w in writers[:k]).any()  # an earlier writer goes first
            m.d.comb += [writer.ready.eq(~ahead & ~conflict),
                         fires[k].eq(writer.valid & writer.ready)]
            waits.append(writer.valid & ~ahead & conflict)
        w_payload = Signal.like(self.write.payload, name="w_payload")
        m.d.comb += w_payload.eq(Mux(self.write.valid, self.write.payload, self.write_b.payload))
        return Cat(*fires).any(), w_payload, reads, r_fires, b_conflict, Cat(*waits).any()

    def _bank_row(self, m, banks, bank, error, row):
        """Drive ``row`` with the output of bank ``bank``, or zero if ``error``."""
        with m.Switch(bank):
            for b, sram in enumerate(banks):
                with m.Case(b):
                    m.d.comb += row.eq(sram.r_data)
        with m.If(error):
            m.d.comb += row.eq(0)

    def _buffered_ports(self, m, banks, ports):
        """Read ports with a 3-row response buffer each (registered ``ready``)."""
        cfg = self.config
        addr_bits = (cfg.sp_depth - 1).bit_length()
        index_bits = (cfg.sp_bank_depth - 1).bit_length()
        reads, fires = [], []
        for name, (request, answer) in zip(["response", "response_b"], ports, strict=True):
            m.submodules[name] = response = ResponseBuffer(sp_read_layout(cfg), 1)
            wiring.connect(m, wiring.flipped(answer), response.output)
            addr = request.payload
            in_range = addr < cfg.sp_depth
            ready = response.ready
            if reads:
                # Port b waits when port a reads the same bank in this cycle.
                a_go, a_addr = reads[0]
                b_conflict = a_go & in_range & (a_addr[index_bits:] == addr[index_bits:addr_bits])
                ready = ready & ~b_conflict
            fire = request.valid & ready
            m.d.comb += [request.ready.eq(ready), response.issue.eq(fire)]
            reads.append((fire & in_range, addr[:addr_bits]))
            fires.append((fire, in_range))
            # The answer arrives one cycle after the request: pick the bank read then.
            answer_bank = Signal(range(cfg.sp_banks))
            answer_error = Signal()
            m.d.sync += [answer_bank.eq(addr[index_bits:addr_bits]), answer_error.eq(~in_range)]
            self._bank_row(m, banks, answer_bank, answer_error, response.data.row)
            m.d.comb += response.data.error.eq(answer_error)
        return reads, fires, ports[1][0].valid & b_conflict, []

    def _held_ports(self, m, banks, ports, writes):
        """Read ports whose answer waits in the bank's own output register (see the class
        docstring): per port an address register and a few flags. A request for a bank that
        a write is accepted for in this cycle (``writes``: pairs of a writer's accept and its
        bank) waits (the writes' ``ready`` comes from registers: no path from the readers'
        requests to the writers)."""
        cfg = self.config
        addr_bits = (cfg.sp_depth - 1).bit_length()
        index_bits = (cfg.sp_bank_depth - 1).bit_length()
        ps = []
        for request, answer in ports:
            p = {"pend": Signal(), "error": Signal(), "fresh": Signal(),
                 "addr": Signal(addr_bits), "new": Signal(), "target": Signal(addr_bits),
                 "go": Signal(), "request": request, "answer": answer}
            valid = p["valid"] = p["pend"] & (p["fresh"] | p["error"])
            m.d.comb += [answer.valid.eq(valid), answer.payload.error.eq(p["error"])]
            self._bank_row(m, banks, p["addr"][index_bits:], p["error"], answer.payload.row)
            p["taken"] = valid & answer.ready
            p["free"] = ~p["pend"] | p["taken"]
            # Displaced by the other port's read of its bank: read the row again.
            p["stale"] = p["pend"] & ~p["fresh"] & ~p["error"]
            p["in_range"] = request.payload < cfg.sp_depth
            p["blocked"] = Cat(fire & (request.payload[index_bits:addr_bits] == bank)
                               for fire, bank in writes).any()
            m.d.comb += [
                p["new"].eq(request.valid & p["free"] & p["in_range"] & ~p["blocked"]),
                p["target"].eq(Mux(p["stale"], p["addr"], request.payload[:addr_bits])),
            ]
            ps.append(p)
        a, b = ps
        same_bank = a["target"][index_bits:] == b["target"][index_bits:]
        # One read per bank and cycle: port a's request, then port b's, then a's re-read,
        # then b's (a re-read gives way to a request, so that a displaced answer that waits
        # for the other port, as a swap row waits for its weights, never stops it).
        m.d.comb += [
            a["go"].eq(a["new"] | (a["stale"] & ~(b["new"] & same_bank))),
            b["go"].eq((b["new"] | b["stale"]) & ~(a["go"] & same_bank)),
            a["request"].ready.eq(a["free"] & ~(a["in_range"] & a["blocked"])),
            b["request"].ready.eq(b["free"] & ~(b["in_range"] & (a["go"] & same_bank
                                                                 | b["blocked"]))),
        ]
        b_conflict = ((b["new"] | b["stale"]) & a["go"] & same_bank
                      | Cat(p["request"].valid & p["free"] & p["in_range"] & p["blocked"]
                            for p in ps).any())
        fires = []
        for p, other in [(a, b), (b, a)]:
            fire = p["request"].valid & p["request"].ready
            fires.append((fire, p["in_range"]))
            with m.If(fire):
                m.d.sync += [p["pend"].eq(1), p["error"].eq(~p["in_range"]),
                             p["addr"].eq(p["request"].payload)]
            with m.Elif(p["taken"]):
                m.d.sync += p["pend"].eq(0)
            # The answer stays in its bank's output register until the other port reads
            # that bank.
            with m.If(p["go"]):
                m.d.sync += p["fresh"].eq(1)
            with m.Elif(other["go"]
                        & (other["target"][index_bits:] == p["addr"][index_bits:])):
                m.d.sync += p["fresh"].eq(0)
        reads = [(p["go"], p["target"]) for p in ps]
        pending = [(p["pend"] & ~p["error"], p["addr"]) for p in ps]
        return reads, fires, b_conflict, pending

"""Accumulator: banked int32 row memory that overwrites or accumulates at full rate."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .response_buffer import ResponseBuffer
from .sram import EBR_DEPTH, EBR_WIDTH, SRAM1R1W, has_ice40_ebr

__all__ = ["Accumulator", "acc_read_layout", "acc_write_layout", "write_row_follows"]


def acc_write_layout(config):
    return data.StructLayout({
        "addr": config.addr_width,
        "row": data.ArrayLayout(config.acc_shape, config.dim),
        "accumulate": 1,
    })


def write_row_follows(config):
    """Whether the accumulator's ``write.payload.row`` belongs to the write accepted in the
    cycle before, not to the one accepted now (where ``config.fast_clock`` is False)."""
    return not config.fast_clock


def acc_read_layout(config):
    """A read answer; ``error`` marks a refused out-of-range address (``row`` is then zero)."""
    return data.StructLayout({
        "row": data.ArrayLayout(config.acc_shape, config.dim),
        "error": 1,
    })


class Accumulator(wiring.Component):
    """``config.acc_depth`` rows of ``dim`` lanes of ``acc_width`` bits in ``acc_banks`` banks.

    A write overwrites its row or, with ``accumulate``, adds to it (wrapping modulo
    ``2**acc_width``). Accumulating is a read-modify-write: the bank is read in the cycle the
    write is accepted, the sum is formed and written in the next.

    Each bank is one :class:`hdl.sram.SRAM1R1W`: its read port serves either the accumulate
    or the store path (``read``) in a cycle. The accumulate goes first; a store read of the same
    bank in that cycle waits, and the conflict is counted. With the store path draining one
    bank while the array accumulates into another, both run at one row per cycle.

    Fast clocks: a write's ``addr``, ``accumulate`` and ``row`` come together. The sum is
    registered and written a cycle later (the block RAM's output, the adder and its input are
    then two paths: on the 85F the accumulator's 48 block RAMs spread over the die). The two
    writes still in flight are forwarded (the registered sum, and a register of the row
    written last), so back-to-back accumulates into one row are exact at one row per cycle,
    and a read the cycle after a write sees it.

    Registered (``registered``, default ``config.acc_registered``; fast clocks only; for the
    ECP5-85F, where a block RAM's output, unregistered, takes 6 ns, and the route to the
    adder, or from the read decision to a bank's block RAMs spread over the die, 5-11
    more): the bank reads are decided from the write port and the read request and issued
    from flip-flops in the next cycle (the write then in its stage 0, a register); each
    bank's output goes into a register first, and the sum is formed a cycle later (stage 2)
    and written from its register in stage 3.
    The three writes then in flight (stage 3 and the two before) are forwarded to the sum. A
    store read of the row of the write accepted in the cycle before waits one cycle (counted
    as a conflict), as that row's sum is not yet formed; the answer passes a register too,
    and comes 4 cycles after the request.

    Slow clocks (:attr:`row_follows`, ``not config.fast_clock``): ``addr`` and ``accumulate``
    come with ``valid``, the ``row`` in the next cycle (whatever ``valid`` is then), straight
    into the adder; nothing is forwarded. So two writes accepted in consecutive cycles must
    not share a row (the second would read the row before the first is written: that sets
    ``error``; the EXEC unit lets a cycle pass between them), and a store read of the row
    being written waits one cycle (counted as a conflict). The row register, the register of
    the last row and its multiplexer are gone (the store path only reads rows the array
    finished long before).

    Mirrored (:meth:`mirrors_for`: tiny on the iCEBreaker): two copies of all rows instead
    of banks, each as many block RAM tiles as the two half-empty banks were. Every write goes
    to both; the accumulates read one copy, the store path the other, whose output register
    holds the answer until it is taken (no response buffer: a read every 3 cycles, as the
    one-row buffer allowed; answer 2 cycles after the request). There are no bank conflicts;
    a store read of the row being written waits one cycle (counted as a conflict), as above.
    :attr:`sram_shapes` still names the banks (the memories of the other platforms).

    Timing:

    - ``write``: always ready; one row per cycle; visible to reads accepted 2 or more cycles
      later, and (through forwarding) to reads accepted the next cycle (slow clocks and
      registered: such a read waits one cycle).
    - ``read`` -> ``read_data``: one row per cycle, answer :attr:`read_latency` cycles (2;
      registered 4) after the request (empty response buffer). A read sees every write
      accepted in an earlier cycle (slow clocks: a read of the row a write accepted in the
      previous cycle waits one cycle; registered too).
    - Back-pressure on ``read_data`` fills a buffer of :attr:`read_buffer_depth` rows, then
      ``read.ready`` drops.
    - An address at or above ``acc_depth`` is refused, never wrapped: a write is dropped, a
      read answers a zero row with ``error`` set, and the sticky ``error`` output rises (slow
      clocks: also on a write into the row of the write accepted in the cycle before).

    Members
    -------
    write : In(stream.Signature(acc_write_layout(config)))
        Slow clocks: ``row`` one cycle after ``valid``, ``addr`` and ``accumulate``.
    read : In(stream.Signature(config.addr_width))
    read_data : Out(stream.Signature(acc_read_layout(config)))
    error : Out(1)
    conflict : Out(1)
        High in each cycle a store read waits for an accumulate of the same bank (slow
        clocks: or for the write of its row; the top level counts these cycles).
    """

    def __init__(self, config, *, mirrored=None, registered=None):
        if registered is None:
            registered = config.acc_registered
        if not isinstance(registered, bool):
            self._MustUse__silence = True
            raise TypeError(f"registered must be a bool, not {registered!r}")
        if registered and not config.fast_clock:
            self._MustUse__silence = True
            raise ValueError(f"registered needs a fast-clock config (the row of a slow one "
                             f"follows its address), not {config.target_mhz} MHz")
        self.config = config
        self._mirrored, self._registered = mirrored, registered
        super().__init__({
            "write": In(stream.Signature(acc_write_layout(config))),
            "read": In(stream.Signature(config.addr_width)),
            "read_data": Out(stream.Signature(acc_read_layout(config))),
            "error": Out(1),
            "conflict": Out(1),
        })

    #: Cycles from an accepted read request to its answer, unregistered.
    READ_LATENCY = 2

    @property
    def read_latency(self):
        """Cycles from an accepted read request to its answer on ``read_data``:
        :data:`READ_LATENCY`, two more ``registered`` (the bank read is issued from registers
        a cycle later, and the answer passes a register before the response buffer)."""
        return self.read_latency_for(self.config, self._registered)

    @classmethod
    def read_latency_for(cls, config, registered=None):
        """:attr:`read_latency` of an accumulator for ``config`` (``registered`` as in the
        constructor)."""
        if registered is None:
            registered = config.acc_registered
        return cls.READ_LATENCY + 2 * registered

    @property
    def row_follows(self):
        """Whether a write's ``row`` comes a cycle after its address (slow clocks)."""
        return write_row_follows(self.config)

    @property
    def read_buffer_depth(self):
        """Rows the read answer buffer holds: 3, one read per cycle; fewer when the only
        reader, the post-processing, takes a row every ``config.postproc_row_cycles`` (a
        buffer entry is free again ``read_latency + 1`` cycles after its request)."""
        return -(-(self.read_latency + 1) // self.config.postproc_row_cycles)

    def mirrors_for(self, platform):
        """Whether the accumulator elaborated for ``platform`` is :attr:`mirrored` (the
        constructor's ``mirrored``, or if that is None: slow clocks, a read buffer of one row,
        an iCE40 (:func:`hdl.sram.has_ice40_ebr`), and two copies of all rows in no more
        block RAM tiles than the banks, as when a bank fills at most half of a tile)."""
        if self._mirrored is not None:
            return self._mirrored
        cfg = self.config
        tiles = -(-cfg.acc_depth // EBR_DEPTH) * 2
        banked = -(-cfg.acc_bank_depth // EBR_DEPTH) * cfg.acc_banks
        return (not cfg.fast_clock and self.read_buffer_depth == 1
                and has_ice40_ebr(platform) and tiles <= banked
                and cfg.dim * cfg.acc_width % EBR_WIDTH == 0)

    def registered_for(self, platform):
        """Whether the accumulator registers its bank reads and outputs: ``registered``
        (default ``config.acc_registered``), whatever the platform."""
        return self._registered

    @property
    def sram_shapes(self):
        """``(depth, width)`` of each bank."""
        return [(self.config.acc_bank_depth, self.config.dim * self.config.acc_width)] * \
            self.config.acc_banks

    def elaborate(self, platform):
        m = Module()
        if self.mirrors_for(platform):
            return self._elaborate_mirrored(m)
        cfg = self.config
        dim = cfg.dim
        index_bits = (cfg.acc_bank_depth - 1).bit_length()
        row_layout = data.ArrayLayout(cfg.acc_shape, dim)
        banks = []
        for b in range(cfg.acc_banks):
            # The row written in a cycle is forwarded to the reads of that cycle (`last_*`),
            # or (slow clocks) such a read never happens: what the bank answers then does
            # not matter.
            banks.append(SRAM1R1W(cfg.acc_bank_depth, dim * cfg.acc_width, collision="any"))
            m.submodules[f"bank{b}"] = banks[-1]

        # Stage 0: accept a write; an accumulate reads its bank. Registered: the write
        # accepted comes from a register (stage 0 is a cycle after the port), and the bank
        # reads are decided from the port and issued from registers in stage 0.
        slow = not cfg.fast_clock
        registered = self.registered_for(platform)
        w_port, w_port_fire = self.write.payload, self.write.valid
        w_port_in_range = w_port.addr < cfg.acc_depth
        if registered:
            w, w_fire = Signal(acc_write_layout(cfg), reset_less=True), Signal()
            m.d.sync += [w.eq(w_port), w_fire.eq(w_port_fire)]
        else:
            w, w_fire = w_port, w_port_fire
        w_in_range = w.addr < cfg.acc_depth
        w_bank = w.addr[index_bits:]
        m.d.comb += self.write.ready.eq(1)

        def bank_data(bank_select, outputs=None):
            """Row read from bank ``bank_select`` (the read issued in the previous cycle), or
            picked from ``outputs`` (one per bank)."""
            value = Signal(row_layout)
            with m.Switch(bank_select):
                for b, bank in enumerate(banks):
                    with m.Case(b):
                        m.d.comb += value.eq(bank.r_data if outputs is None else outputs[b])
            return value

        # Stage 1: the sum, written at the end of the cycle (fast clocks: registered, and
        # written in stage 2 from that register, so that the bank's output, the adder and
        # the bank's input, which may lie far apart on a big device, are two paths).
        s1_valid, s1_accumulate = Signal(), Signal()
        # Slow clocks: only the bank numbers in range (a plain multiplexer on the banks).
        s1_bank = Signal(range(cfg.acc_banks)) if slow else Signal.like(w_bank)
        m.d.sync += [s1_valid.eq(w_fire & w_in_range), s1_accumulate.eq(w.accumulate),
                     s1_bank.eq(w_bank)]
        total = Signal(row_layout)
        if slow:
            # The row comes now, a cycle after its address, straight into the adder; the
            # bank read of stage 0 met no write of its row (no two writes in a row share one).
            s1_addr = Signal(range(cfg.acc_depth))
            m.d.sync += s1_addr.eq(w.addr)
            s1_row, base = w.row, bank_data(s1_bank)
            write_valid, write_addr, write_bank, write_row = s1_valid, s1_addr, s1_bank, total
        else:
            # Stage 2 (`s2_*`) writes the sum of the write before stage 1's; `last_*` is the
            # one before that, written at the end of the previous cycle. A bank read sees
            # neither: both are forwarded to the reads they landed after (stage 2's first).
            # Registered: a stage (`add_*`) forms the sum from the banks' registered outputs
            # before `s2_*` writes it, and three writes in flight are forwarded.
            # The rows (and addresses) in flight keep no reset (their valid bits do): on a
            # big FPGA the reset then reaches a fraction of the flip-flops.
            s1_addr = Signal.like(w.addr, reset_less=True)
            s1_row = Signal(row_layout, reset_less=True)
            m.d.sync += [s1_addr.eq(w.addr), s1_row.eq(w.row)]
            if registered:
                outputs = [Signal(row_layout, name=f"bank{b}_output", reset_less=True)
                           for b in range(len(banks))]
                m.d.sync += [out.eq(bank.r_data) for out, bank in zip(outputs, banks, strict=True)]
                add_valid, add_accumulate = Signal(), Signal()
                add_addr, add_bank = Signal.like(w.addr, reset_less=True), Signal.like(w_bank)
                add_row = Signal(row_layout, reset_less=True)
                m.d.sync += [add_valid.eq(s1_valid), add_accumulate.eq(s1_accumulate),
                             add_addr.eq(s1_addr), add_bank.eq(s1_bank), add_row.eq(s1_row)]
                stored = bank_data(add_bank, outputs)
            else:
                add_valid, add_accumulate, add_addr, add_bank, add_row = \
                    s1_valid, s1_accumulate, s1_addr, s1_bank, s1_row
                stored = bank_data(s1_bank)
            # The write stage: stage 2, or stage 3 registered.
            s2_valid, s2_bank = Signal(), Signal.like(w_bank)
            s2_addr = Signal.like(w.addr, reset_less=True)
            s2_row = Signal(row_layout, reset_less=True)
            m.d.sync += [s2_valid.eq(add_valid), s2_addr.eq(add_addr), s2_bank.eq(add_bank),
                         s2_row.eq(total)]
            in_flight = [(s2_valid, s2_addr, s2_row)]  # newest first
            for _ in range(2 if registered else 1):
                valid, addr, row = in_flight[-1]
                older = (Signal(), Signal.like(addr, reset_less=True),
                         Signal(row_layout, reset_less=True))
                m.d.sync += [older[0].eq(valid), older[1].eq(addr), older[2].eq(row)]
                in_flight.append(older)

            # Which rows in flight a row read is: compared a cycle ahead, from what the read's
            # address register and the rows in flight become (`next_*`), so that only the
            # multiplexer lies between these flip-flops and the adder (or the answer).
            older = [(valid, addr) for valid, addr, _ in in_flight[:-1]]
            next_in_flight = [(add_valid, add_addr) if registered else (s1_valid, s1_addr),
                              *older]

            def forwarded(next_addr, stored, name):
                """``stored``, or the newest row in the write stage or written in the cycles
                before (one; registered: two) if it was the row whose address register
                ``next_addr`` loads."""
                hits = [Signal(name=f"{name}_{k}") for k in range(len(in_flight))]
                m.d.sync += [hit.eq(valid & (row_addr == next_addr))
                             for hit, (valid, row_addr) in zip(hits, next_in_flight, strict=True)]
                value = Signal(row_layout)
                m.d.comb += value.eq(stored)
                for hit, (_, _, row) in reversed(list(zip(hits, in_flight, strict=True))):
                    with m.If(hit):  # the newest wins
                        m.d.comb += value.eq(row)
                return value

            base = forwarded(s1_addr if registered else w.addr, stored, "forward")
            s1_row, s1_accumulate = add_row, add_accumulate  # the adder's inputs
            write_valid, write_addr, write_bank, write_row = s2_valid, s2_addr, s2_bank, s2_row
        for n in range(dim):
            m.d.comb += total[n].eq(s1_row[n] + Mux(s1_accumulate, base[n], 0))

        # Store path: a read waits while an accumulate uses the same bank's read port.
        m.submodules.response = response = ResponseBuffer(
            acc_read_layout(cfg), self.read_latency - 1, depth=self.read_buffer_depth)
        wiring.connect(m, wiring.flipped(self.read_data), response.output)
        # Registered: the decisions are for the bank reads of the next cycle (the write at
        # the port, a read accepted now), taken from registers then.
        r_addr = self.read.payload
        r_in_range = r_addr < cfg.acc_depth
        r_bank = r_addr[index_bits:]
        rmw = w_port if registered else w
        rmw_read = (w_port_fire & w_port_in_range if registered else w_fire & w_in_range) \
            & rmw.accumulate
        conflict = rmw_read & r_in_range & (r_bank == rmw.addr[index_bits:])
        if slow:  # the row written now is not forwarded to this read: it waits
            conflict |= s1_valid & (s1_addr == r_addr[:len(s1_addr)])
        elif registered:  # stage 0's row: its sum is formed only after the read: it waits
            conflict |= w_fire & w_in_range & (w.addr == r_addr)
        m.d.comb += self.read.ready.eq(response.ready & ~conflict)
        r_fire = self.read.valid & self.read.ready
        m.d.comb += response.issue.eq(r_fire)

        decide = m.d.sync if registered else m.d.comb
        for b, bank in enumerate(banks):
            if registered:  # straight from flip-flops into the bank's block RAMs
                read_en = Signal(name=f"bank{b}_r_en")
                read_addr = Signal(index_bits, name=f"bank{b}_r_addr")
                m.d.comb += [bank.r_en.eq(read_en), bank.r_addr.eq(read_addr)]
                m.d.sync += read_en.eq(0)
            else:
                read_en, read_addr = bank.r_en, bank.r_addr
            with m.If(rmw_read & (rmw.addr[index_bits:] == b)):
                decide += [read_addr.eq(rmw.addr[:index_bits]), read_en.eq(1)]
            with m.Elif(r_fire & r_in_range & (r_bank == b)):
                decide += [read_addr.eq(r_addr[:index_bits]), read_en.eq(1)]
            m.d.comb += [
                bank.w_addr.eq(write_addr[:index_bits]),
                bank.w_data.eq(write_row),
                bank.w_en.eq(write_valid & (write_bank == b)),
            ]

        answer_error = Signal()
        if slow:
            answer_bank = Signal(range(cfg.acc_banks))  # row zeroed out of range
            m.d.sync += [answer_bank.eq(r_bank), answer_error.eq(~r_in_range)]
            answer = bank_data(answer_bank)
        else:
            answer_bank = Signal.like(r_bank)  # (the row is forwarded by `forwarded`)
            if registered:  # the bank read comes a cycle after the request
                request_addr, request_error = Signal.like(r_addr), Signal()
                m.d.sync += [request_addr.eq(r_addr), request_error.eq(~r_in_range),
                             answer_bank.eq(request_addr[index_bits:]),
                             answer_error.eq(request_error)]
            else:
                m.d.sync += [answer_bank.eq(r_bank), answer_error.eq(~r_in_range)]
            # The writes in stages 1 and 2 during the request land after the read: they are
            # in stage 2 and `last_*` now, so forward them.
            answer = forwarded(request_addr if registered else r_addr, bank_data(answer_bank),
                               "answer_forward")
        if registered:  # the block RAM's output and the forwarding into a register first
            answered = m.d.sync
            response_data = Signal(acc_read_layout(cfg), reset_less=True)
            m.d.comb += response.data.eq(response_data)
        else:
            answered = m.d.comb
            response_data = response.data
        answered += [response_data.error.eq(answer_error), response_data.row.eq(0)]
        with m.If(~answer_error):
            answered += response_data.row.eq(answer)

        refused = (r_fire & ~r_in_range) | (w_port_fire & ~w_port_in_range)
        if slow:  # a write of the row of the write before it breaks the protocol
            refused |= w_fire & s1_valid & (s1_addr == w.addr[:len(s1_addr)])
        with m.If(refused):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.conflict.eq(self.read.valid & response.ready & conflict)
        return m

    def _elaborate_mirrored(self, m):
        """Two copies of all rows, both written by every write: the accumulates read one, the
        store reads the other, whose output register holds the answer until it is taken."""
        cfg = self.config
        row_layout = data.ArrayLayout(cfg.acc_shape, cfg.dim)
        addr_bits = (cfg.acc_depth - 1).bit_length()
        width = cfg.dim * cfg.acc_width
        # A copy never reads the row it writes in that cycle (see below): "any" collision.
        m.submodules.adding = adding = SRAM1R1W(cfg.acc_depth, width, collision="any")
        m.submodules.answering = answering = SRAM1R1W(cfg.acc_depth, width, collision="any")

        # Stage 0: accept a write; an accumulate reads its row. Stage 1: the row comes, the
        # sum is written to both copies (the row of stage 0 is never that of stage 1).
        w = self.write.payload
        w_fire = self.write.valid
        w_in_range = w.addr < cfg.acc_depth
        m.d.comb += self.write.ready.eq(1)
        s1_valid, s1_accumulate = Signal(), Signal()
        # (Loaded only with a write: the EXEC unit's register of the row it wrote last, merged.)
        s1_addr = Signal(range(cfg.acc_depth))
        m.d.sync += [s1_valid.eq(w_fire & w_in_range), s1_accumulate.eq(w.accumulate)]
        with m.If(w_fire):
            m.d.sync += s1_addr.eq(w.addr)
        base = row_layout(adding.r_data)
        total = Signal(row_layout)
        for n in range(cfg.dim):
            m.d.comb += total[n].eq(w.row[n] + Mux(s1_accumulate, base[n], 0))
        m.d.comb += [adding.r_addr.eq(w.addr[:addr_bits]),
                     adding.r_en.eq(w_fire & w_in_range & w.accumulate)]
        for copy in (adding, answering):
            m.d.comb += [copy.w_addr.eq(s1_addr), copy.w_data.eq(total),
                         copy.w_en.eq(s1_valid)]

        # Store path: a read of the row being written waits a cycle; the answer is valid
        # two cycles after its request and stays in the copy's output until taken.
        r_addr = self.read.payload
        r_in_range = r_addr < cfg.acc_depth
        conflict = s1_valid & (s1_addr == r_addr[:addr_bits])
        pending, arrived, answer_error = Signal(), Signal(), Signal()
        taken = self.read_data.valid & self.read_data.ready
        m.d.comb += self.read.ready.eq(~pending & ~conflict)
        r_fire = self.read.valid & self.read.ready
        m.d.comb += [answering.r_addr.eq(r_addr[:addr_bits]),
                     answering.r_en.eq(r_fire & r_in_range)]
        with m.If(r_fire):
            m.d.sync += [pending.eq(1), answer_error.eq(~r_in_range)]
        with m.Elif(taken):
            m.d.sync += pending.eq(0)
        m.d.sync += arrived.eq(pending & ~taken)
        m.d.comb += [self.read_data.valid.eq(pending & arrived),
                     self.read_data.payload.error.eq(answer_error)]
        with m.If(~answer_error):
            m.d.comb += self.read_data.payload.row.eq(answering.r_data)

        refused = ((r_fire & ~r_in_range) | (w_fire & ~w_in_range)
                   | (w_fire & s1_valid & (s1_addr == w.addr[:addr_bits])))
        with m.If(refused):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.conflict.eq(self.read.valid & ~pending & conflict)
        return m

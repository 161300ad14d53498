"""On-chip system memory: an AXI4 subordinate for the DMA plus a byte port for the host link."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi4 import AXI4Signature, AXIBurst, AXIResp
from .single_port_ram import SinglePortRAM

__all__ = ["AXI4RAM", "RAMPortSignature"]


class RAMPortSignature(wiring.Signature):
    """A byte-wide memory port, from the initiator's side.

    ``addr`` selects a byte; ``w_en`` writes ``w_data`` there in this cycle; ``r_en`` reads
    it: ``r_data`` is the byte at ``addr`` in the cycle after one with ``r_en`` (read latency
    1), undefined after a cycle without (a single-ported memory serves others then). While
    ``busy`` is high the memory does not take the access (nothing is written, ``r_data`` is
    undefined next cycle): the initiator repeats it in a later cycle.

    Members
    -------
    addr : Out(addr_width)
    w_data : Out(8)
    w_en : Out(1)
    r_en : Out(1)
    r_data : In(8)
    busy : In(1)
    """

    def __init__(self, addr_width):
        if not isinstance(addr_width, int) or isinstance(addr_width, bool):
            raise TypeError(f"addr_width must be an integer, not {addr_width!r}")
        if addr_width < 1:
            raise ValueError(f"addr_width must be a positive integer, not {addr_width!r}")
        self.addr_width = addr_width
        super().__init__({"addr": Out(addr_width), "w_data": Out(8), "w_en": Out(1),
                          "r_en": Out(1), "r_data": In(8), "busy": In(1)})

    def __eq__(self, other):
        return type(other) is RAMPortSignature and other.addr_width == self.addr_width

    def __hash__(self):
        return hash((RAMPortSignature, self.addr_width))

    def __repr__(self):
        return f"RAMPortSignature({self.addr_width})"


class AXI4RAM(wiring.Component):
    """``size`` bytes of memory at address 0, for the accelerator's DMA and the host link.

    The AXI4 side serves one read burst and one write burst at a time, in parallel. Bursts are
    INCR (or FIXED: the address stays); WRAP is treated as INCR, which the DMA never issues.
    The address advances by ``2**AxSIZE`` per beat; narrow beats are placed by ``WSTRB`` and
    picked from the read word by the manager, as AXI4 has it. A beat inside the memory
    answers OKAY (writes honour ``WSTRB``); a beat at or past ``size`` changes nothing, reads
    0 and answers DECERR (a write burst's B response is DECERR if any of its beats was
    outside; a burst that wraps past the top of the address space, which AXI forbids, stays
    outside). ``*LAST``, ``*LOCK``, ``*CACHE`` and ``*PROT`` are ignored (the burst length
    comes from ``AxLEN``); IDs are echoed.

    Timing: ``ARREADY`` is high when no read burst is in progress; the first R beat follows
    the AR handshake by one cycle, then one beat per cycle while ``RREADY`` is high (R is
    registered and holds under back-pressure). ``AWREADY`` is high when no write burst or B
    response is pending; W beats are taken one per cycle; B is valid the cycle after the last
    W beat and holds until ``BREADY``.

    The host port (:class:`RAMPortSignature`) has priority: in a cycle where it writes,
    ``WREADY`` is low. Its reads never wait, and ``host.busy`` is low, except as below. The
    memory is a :class:`Memory` with synchronous read ports; on Tiny Tapeout (no SRAM macros)
    it becomes flip-flops, so keep ``size`` small.

    With ``registered`` (two-port memory, every burst served), a write (host or W beat) is
    registered and reaches the memory a cycle later, so that the memory's write inputs come
    from flip-flops, and the words read are registered before use (the 32 block RAMs of 64 KiB
    spread over an ECP5-85F: the write arbitration, the fan-out to the blocks and the
    multiplexer of their outputs are then separate paths). R's first beat then follows the
    AR handshake by two cycles, then one per cycle while ``RREADY`` is high. B still follows
    the last W beat by one cycle, when that beat lands. A host read takes two cycles:
    ``busy`` in the first (the memory reads), low in the second (the word is registered),
    ``r_data`` in the third; it does not start in a cycle a write lands, so it sees every
    write taken before it. An R fetch in that cycle reads the old word: only a read burst
    accepted before the write's B could, which AXI leaves unordered.

    With ``full_incr_only`` (for small FPGAs; the Tessera DMA issues nothing else) only INCR
    bursts of full-width beats (``AxSIZE`` = log2 of the beat bytes) are served: the burst
    registers hold a word address and no size or burst type, and (with 256 words or more) the
    low 8 bits of the last beat's word address instead of a count of beats left. Any other burst
    (FIXED, WRAP, narrow) is refused, never misplaced: it is treated as outside the memory
    (every read beat answers DECERR with data 0, the write beats change nothing and B answers
    DECERR). ``RID`` comes straight from the burst's ID register, so ``ARREADY`` also waits for
    R to be free or leaving (``RREADY``, a combinational path); otherwise the timing is
    unchanged (a manager that always takes R, like the DMA, sees the same ``ARREADY``). With
    ``single_port`` too, R has no register of its own: its beat is the memory's output, read
    again in every cycle R waits for ``RREADY``; meanwhile the host port is ``busy`` (it repeats
    its access) and ``WREADY`` is low. The burst address then advances when a beat is taken, and
    the next beat is fetched in that cycle.

    ``max_burst`` (with ``full_incr_only``) refuses longer bursts too, the same way. With 256
    words or more, ``left`` then holds only the low ``log2(max_burst)`` bits (at least 1) of the
    last beat's word address; a refused long burst is counted by its address register instead
    (loaded with ``~AxLEN`` and a flag: its last beat is the one at 255). When the manager's
    ``AxLEN`` bits above ``max_burst`` are constant zero (the DMA's), synthesis removes that
    path.

    With ``single_port`` the memory is a :class:`hdl.single_port_ram.SinglePortRAM` (iCE40
    SPRAM, or one block RAM copy instead of two on ECP5): one access per cycle, the host's
    (reads only with ``r_en``) first, then a W beat or an R fetch, taking turns when both
    wait; each burst then moves at least one beat every other cycle.

    Parameters
    ----------
    size : int
        Bytes; a positive multiple of the data width in bytes.
    signature : AXI4Signature
        The manager's port (with read and write halves), e.g. ``dma_axi_signature(config)``.
    single_port : bool
        One port shared by the host and both bursts (``size`` / beat bytes a power of two).
    full_incr_only : bool
        Serve only full-width INCR bursts; refuse the others with DECERR (see above).
    max_burst : int
        Longest burst served, beats: a power of two from 1 to 256 (below 256 only with
        ``full_incr_only``); longer ones are refused with DECERR (see above).
    registered : bool
        Writes reach the memory a cycle after they are taken, R beats come a cycle later,
        host reads take two cycles (not with ``single_port`` or ``full_incr_only``).

    Members
    -------
    axi : In(signature)
    host : In(RAMPortSignature(ceil(log2(size))))

    Raises
    ------
    TypeError
        ``size`` is not an integer, ``signature`` not an AXI4Signature, ``single_port`` or
        ``full_incr_only`` or ``registered`` not a bool, ``max_burst`` not an integer.
    ValueError
        ``size`` is not a positive multiple of the beat size (a power of two of at least two
        beats with ``single_port``); the port lacks a half; ``max_burst`` is not a power of
        two from 1 to 256, or below 256 without ``full_incr_only``; ``registered``
        with ``single_port`` or ``full_incr_only``.
    """

    def __init__(self, size, signature, *, single_port=False, full_incr_only=False,
                 max_burst=256, registered=False):
        try:
            self._check(size, signature)
            for name, value in (("single_port", single_port),
                                ("full_incr_only", full_incr_only),
                                ("registered", registered)):
                if not isinstance(value, bool):
                    raise TypeError(f"{name} must be a bool, not {value!r}")
            if not isinstance(max_burst, int) or isinstance(max_burst, bool):
                raise TypeError(f"max_burst must be an integer, not {max_burst!r}")
            if (not 1 <= max_burst <= 256 or max_burst & (max_burst - 1)
                    or max_burst < 256 and not full_incr_only):
                raise ValueError(f"max_burst must be a power of two from 1 to 256 (below 256 "
                                 f"only with full_incr_only), not {max_burst!r}")
            words = size // signature.beat_bytes
            if single_port and (words < 2 or words & (words - 1)):
                raise ValueError(f"a single-port RAM size must be a power of two of at least "
                                 f"{2 * signature.beat_bytes} bytes, not {size!r}")
            if registered and (single_port or full_incr_only):
                raise ValueError("registered needs a two-port RAM (single_port=False) serving "
                                 "every burst (full_incr_only=False)")
        except (TypeError, ValueError):
            self._MustUse__silence = True
            raise
        self.size, self.single_port, self.full_incr_only = size, single_port, full_incr_only
        self.beat_bytes, self.max_burst = signature.beat_bytes, max_burst
        self.registered = registered
        super().__init__({
            "axi": In(signature),
            "host": In(RAMPortSignature(max(1, (size - 1).bit_length()))),
        })

    @staticmethod
    def _check(size, signature):
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"RAM size must be an integer, not {size!r}")
        if not isinstance(signature, AXI4Signature):
            raise TypeError(f"signature must be an AXI4Signature, not {signature!r}")
        if not (signature.read and signature.write):
            raise ValueError(f"signature must have read and write halves, not {signature!r}")
        if size < 1 or size % signature.beat_bytes:
            raise ValueError(f"RAM size must be a positive multiple of {signature.beat_bytes} "
                             f"bytes, not {size!r}")

    def elaborate(self, platform):
        m = Module()
        axi, host = self.axi, self.host
        lanes = self.beat_bytes
        lsb = (lanes - 1).bit_length()
        depth = self.size // lanes

        def word(addr):
            return addr[lsb:][:max(1, (depth - 1).bit_length())]

        def burst_word(addr):
            return addr[:max(1, (depth - 1).bit_length())] if self.full_incr_only else word(addr)

        # A burst's address: its low ``inside`` bits (the memory's), advanced per beat, and a
        # sticky flag for the bits above (set at the start, or by a carry out of the low bits).
        inside = max(1, (self.size - 1).bit_length())
        # With ``full_incr_only``, burst addresses are word addresses: the bits from ``low``.
        low = lsb if self.full_incr_only else 0

        # ``max_burst``: AxLEN's bits from ``log_max`` make a long burst (refused).
        log_max = (self.max_burst - 1).bit_length()
        limited = self.max_burst < 256
        by_end = self.full_incr_only and inside - low >= 8

        def too_long(axlen):
            return axlen[log_max:].any()

        def start(addr, high, axaddr, axsize, axburst, axlen):
            refused = 0
            if self.full_incr_only:  # a burst not served: as if outside the memory
                refused = (axsize != lsb) | (axburst != AXIBurst.INCR)
                if limited:
                    refused = refused | too_long(axlen)
            value = axaddr[low:inside]
            if by_end and limited:  # a long burst counts its beats in the address
                value = Cat(Mux(too_long(axlen), ~axlen, value[:8]), value[8:])
            return [addr.eq(value), high.eq(axaddr[inside:].any() | refused)]

        def advance(addr, high, size, burst):
            if self.full_incr_only:
                step = 1
            else:
                step = Mux(burst == AXIBurst.FIXED, 0, Const(1, 8) << size)
            total = Signal(max(inside - low, 8) + 1)
            m.d.comb += total.eq(addr + step)
            return [addr.eq(total[:inside - low]), high.eq(high | total[inside - low:].any())]

        def outside(addr, high):
            return (high if self.size == 1 << inside
                    else high | (addr >= self.size >> low))

        # A burst's length: with ``full_incr_only`` (and room for 256 beats below ``inside``),
        # ``left`` holds the low 8 bits of the last beat's word address, compared with the
        # beat's (no down counter); else the beats left after this one.
        # ``max_burst``: only the low ``end_bits`` of it, and ``long`` for a long burst, whose
        # last beat is at 255 (its address was loaded with ``~AxLEN``).
        end_bits = max(1, log_max) if limited else 8

        def burst_load(left, long, axaddr, axlen):
            if not by_end:
                return [left.eq(axlen)]
            end = (axaddr[low:low + 8] + axlen)[:end_bits]
            if not limited:
                return [left.eq(end)]
            return [left.eq(Mux(too_long(axlen), (1 << end_bits) - 1, end)),
                    long.eq(too_long(axlen))]

        def burst_last(left, long, addr):
            if not by_end:
                return left == 0
            if not limited:
                return addr[:8] == left
            return (addr[:end_bits] == left) & (~long | addr[end_bits:8].all())

        def burst_step(left):
            return [] if by_end else [left.eq(left - 1)]

        # ``lean_r``: R's beat is the memory's output, read again while R waits (``stalled``).
        lean_r = self.single_port and self.full_incr_only
        stalled = axi.rvalid & ~axi.rready

        # The storage: ``write`` (addr, data, en) and the AXI and host reads (addr, en, data).
        if self.single_port:
            m.submodules.memory = memory = SinglePortRAM(width=8 * lanes, depth=depth)
            write_addr, write_data, write_en = Signal.like(memory.addr), \
                Signal.like(memory.w_data), Signal.like(memory.w_en)
            read_addr, read_en = Signal.like(memory.addr), Signal()
            if lean_r:  # R waits: the port reads its beat again, the host waits
                m.d.comb += host.busy.eq(stalled)
                host_write, host_read_en = host.w_en & ~stalled, host.r_en & ~stalled
            else:
                host_write, host_read_en = host.w_en, host.r_en
            host_busy = host_write | host_read_en
            # The host's address, else a W beat's (its write_addr), else the R fetch's.
            w_turn = Signal()
            m.d.comb += [
                memory.addr.eq(Mux(host_busy, word(host.addr),
                                   Mux(w_turn, write_addr, read_addr))),
                memory.w_data.eq(write_data), memory.w_en.eq(write_en),
                memory.r_en.eq(host_read_en | read_en),
            ]
            if lean_r:
                read_data = memory.r_data
            else:
                # The port serves others after an AXI read: R holds its beat in a register.
                fresh, held = Signal(), Signal.like(memory.r_data)
                m.d.sync += fresh.eq(read_en & ~host.r_en)
                with m.If(fresh):
                    m.d.sync += held.eq(memory.r_data)
                read_data = Mux(fresh, memory.r_data, held)
            host_data = memory.r_data
        else:
            m.submodules.memory = memory = Memory(shape=8 * lanes, depth=depth, init=[])
            write = memory.write_port(granularity=8)
            read = memory.read_port()
            host_read = memory.read_port()
            read_addr, read_en, read_data = read.addr, read.en, read.data
            host_busy = host_write = host.w_en
            m.d.comb += host_read.addr.eq(word(host.addr))
            if self.registered:  # the memory writes what the arbitration chose before
                write_addr, write_data = Signal.like(write.addr), Signal.like(write.data)
                write_en = Signal.like(write.en)
                m.d.sync += [write.addr.eq(write_addr), write.data.eq(write_data),
                             write.en.eq(write_en)]
                # A host read: the memory reads (busy), then its word is registered.
                host_reading, host_data = Signal(), Signal.like(host_read.data)
                host_start = host.r_en & ~host_reading & ~write.en.any()
                m.d.comb += [host_read.en.eq(host_start),
                             host.busy.eq(host.r_en & ~host_reading)]
                m.d.sync += [host_reading.eq(host_start), host_data.eq(host_read.data)]
            else:
                write_addr, write_data, write_en = write.addr, write.data, write.en
                m.d.comb += host_read.en.eq(host.r_en)
                host_data = host_read.data

        # Host port: it has priority over the bursts.
        host_lane = Signal(max(1, lsb))
        m.d.sync += host_lane.eq(host.addr)
        m.d.comb += host.r_data.eq(host_data.word_select(host_lane[:lsb], 8) if lsb
                                   else host_data)

        # Read bursts: while ``r_busy``, beats still to fetch from ``r_addr`` (``r_left``).
        r_addr, r_high, r_busy = Signal(inside - low), Signal(), Signal()
        r_left, r_long = Signal(end_bits if by_end else 8), Signal()
        r_size, r_burst, r_id = Signal(3), Signal(AXIBurst), Signal.like(axi.arid)
        r_outside = Signal()
        if self.full_incr_only:  # RID is r_id: a new AR waits for the last beat to leave
            m.d.comb += [axi.arready.eq(~r_busy & (~axi.rvalid | axi.rready)),
                         axi.rid.eq(r_id)]
        else:
            m.d.comb += axi.arready.eq(~r_busy)
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += [*start(r_addr, r_high, axi.araddr, axi.arsize, axi.arburst,
                                           axi.arlen),
                         *burst_load(r_left, r_long, axi.araddr, axi.arlen), r_busy.eq(1),
                         r_id.eq(axi.arid)]
            if not self.full_incr_only:
                m.d.sync += [r_size.eq(axi.arsize), r_burst.eq(axi.arburst)]
        fetch = Signal()
        # The fetched beat's registers: R's own, or (``registered``) stage A's, whose data is
        # the memory's output (held while A waits); R's registers then take it, data too.
        if self.registered:
            r_valid, r_last_flag, r_resp, r_beat_id = \
                Signal(), Signal(), Signal.like(axi.rresp), Signal.like(axi.rid)
            r_moves = ~axi.rvalid | axi.rready  # R takes stage A's beat (if any)
            stalled = r_valid & ~r_moves
            with m.If(r_moves):
                m.d.sync += [axi.rvalid.eq(r_valid), axi.rlast.eq(r_last_flag),
                             axi.rresp.eq(r_resp), axi.rid.eq(r_beat_id),
                             axi.rdata.eq(Mux(r_outside, 0, read_data))]
        else:
            r_valid, r_last_flag, r_resp, r_beat_id = axi.rvalid, axi.rlast, axi.rresp, axi.rid
            r_moves = axi.rready
            m.d.comb += axi.rdata.eq(Mux(r_outside, 0, read_data))
        fetch_wanted = r_busy & ~stalled
        if lean_r:
            # ``r_addr`` is the beat in R (or the next to fetch): it advances as a beat is
            # taken, and the port reads ``r_addr`` plus that (again, while R waits).
            taken = Signal(len(r_addr) + 1)
            m.d.comb += [taken.eq(r_addr + (axi.rvalid & axi.rready)),
                         read_addr.eq(burst_word(taken)), read_en.eq(fetch | stalled)]
            m.d.sync += [r_addr.eq(taken[:-1]), r_high.eq(r_high | taken[-1])]
            with m.If(axi.arvalid & axi.arready):  # a new burst (its last beat is taken)
                m.d.sync += start(r_addr, r_high, axi.araddr, axi.arsize, axi.arburst,
                                           axi.arlen)
            r_out = outside(taken[:-1], r_high | taken[-1])
            r_last = burst_last(r_left, r_long, taken)
        else:
            m.d.comb += [read_addr.eq(burst_word(r_addr)), read_en.eq(fetch)]
            r_out = outside(r_addr, r_high)
            r_last = burst_last(r_left, r_long, r_addr)
        with m.If(fetch):
            m.d.sync += [
                r_valid.eq(1), r_last_flag.eq(r_last),
                r_resp.eq(Mux(r_out, AXIResp.DECERR, AXIResp.OKAY)), r_outside.eq(r_out),
                *burst_step(r_left),
            ]
            if not lean_r:
                m.d.sync += advance(r_addr, r_high, r_size, r_burst)
            if not self.full_incr_only:
                m.d.sync += r_beat_id.eq(r_id)
            with m.If(r_last):
                m.d.sync += r_busy.eq(0)
        with m.Elif(r_moves):
            m.d.sync += r_valid.eq(0)

        # Write bursts.
        w_addr, w_high, w_busy = Signal(inside - low), Signal(), Signal()
        w_left, w_long = Signal(end_bits if by_end else 8), Signal()
        w_size, w_burst, w_failed = Signal(3), Signal(AXIBurst), Signal()
        m.d.comb += axi.awready.eq(~w_busy & ~axi.bvalid)
        w_beat = axi.wvalid & axi.wready
        if self.single_port:
            # One access per cycle: the host, else W and R beats in turn when both wait.
            read_turn = Signal()
            m.d.comb += [
                w_turn.eq(w_beat),
                axi.wready.eq(w_busy & ~host_busy & ~(fetch_wanted & read_turn)
                              & (~stalled if lean_r else 1)),
                fetch.eq(fetch_wanted & ~host_busy & ~w_beat),
            ]
            with m.If(w_beat):
                m.d.sync += read_turn.eq(1)
            with m.Elif(fetch):
                m.d.sync += read_turn.eq(0)
        else:
            m.d.comb += [axi.wready.eq(w_busy & ~host_busy), fetch.eq(fetch_wanted)]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += [*start(w_addr, w_high, axi.awaddr, axi.awsize, axi.awburst,
                                           axi.awlen),
                         *burst_load(w_left, w_long, axi.awaddr, axi.awlen), w_busy.eq(1),
                         axi.bid.eq(axi.awid), w_failed.eq(0)]
            if not self.full_incr_only:
                m.d.sync += [w_size.eq(axi.awsize), w_burst.eq(axi.awburst)]
        with m.If(host_write):
            lane_enable = (Const(1, lanes) << host.addr[:lsb]) if lsb else 1
            m.d.comb += [write_addr.eq(word(host.addr)),
                         write_data.eq(host.w_data.replicate(lanes)), write_en.eq(lane_enable)]
        with m.Elif(w_beat):
            w_out = outside(w_addr, w_high)
            m.d.comb += [write_addr.eq(burst_word(w_addr)), write_data.eq(axi.wdata),
                         write_en.eq(Mux(w_out, 0, axi.wstrb))]
            m.d.sync += [*advance(w_addr, w_high, w_size, w_burst), *burst_step(w_left),
                         w_failed.eq(w_failed | w_out)]
            with m.If(burst_last(w_left, w_long, w_addr)):
                m.d.sync += [w_busy.eq(0), axi.bvalid.eq(1), axi.bresp.eq(
                    Mux(w_failed | w_out, AXIResp.DECERR, AXIResp.OKAY))]
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += axi.bvalid.eq(0)
        return m

"""DMA transfers: the command, its checks and error codes, and its split into AXI4 bursts.

The definitions here are shared by the read engine (:mod:`hdl.dma_read`) and the write engine
(:mod:`hdl.dma_write`), which both start with a :class:`BurstSplitter`.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .axi4 import MAX_BURST_BEATS, PAGE_BYTES, AXI4Signature, AXIResp
from .isa import DRAM_ADDR_BITS

__all__ = ["ROWS_WIDTH", "ROW_BEATS_WIDTH", "BurstSplitter", "DMAError", "burst_layout",
           "command_addr_width", "command_field_widths",
           "burst_len_bits", "check_engine_parameters", "dma_axi_signature",
           "dma_command_layout", "dma_status_signature", "error_event_layout",
           "latch_first_error", "latch_engine_error", "oldest_issued_address",
           "response_error", "ShiftQueue", "small_fifo", "connect_commands", "may_leave",
           "tracks_in_error_register"]

#: Width of a command's beats-per-row and row-count fields (above 50 MHz).
ROW_BEATS_WIDTH = 16
ROWS_WIDTH = 16


def command_field_widths(config, *, wide=False):
    """Widths of a command's ``row_beats`` and ``rows`` fields: :data:`ROW_BEATS_WIDTH` and
    :data:`ROWS_WIDTH` above 50 MHz or if ``wide``; else (at 50 MHz and below) only as wide
    as the accelerator's commands need (a LOAD, STORE or CONFIG row in beats;
    ``max(sp_depth, acc_depth)`` rows), which narrows the splitters' counters and adders."""
    if config.fast_clock or wide:
        return ROW_BEATS_WIDTH, ROWS_WIDTH
    from .isa import acc_row_bytes, param_block_bytes, row_bytes
    row = max(row_bytes(config), acc_row_bytes(config), param_block_bytes(config))
    return ((row // (config.bus_data_width // 8)).bit_length(),
            max(config.sp_depth, config.acc_depth).bit_length())


def command_addr_width(config):
    """Bits of a command's ``addr`` and ``stride`` (and of a reported error address): the
    ISA's :data:`hdl.isa.DRAM_ADDR_BITS`, or ``config.bus_addr_width`` if that is wider. A
    narrower bus (tiny: 16 bits, its 64 KiB of system memory) refuses a command with any
    address or stride bit at or above ``bus_addr_width`` (``RANGE``); the engines keep only
    ``bus_addr_width`` bits in their counters and address registers."""
    return max(config.bus_addr_width, DRAM_ADDR_BITS)


class DMAError(enum.Enum, shape=3):
    """Why a DMA engine stopped (its sticky ``error_cause``).

    ``SLVERR`` / ``DECERR``: a read beat or a write response carried that AXI error.
    ``MISALIGNED``: a command's address or stride is not a multiple of the beat size.
    ``EMPTY``: a command with zero rows or zero beats per row.
    ``RANGE``: a command runs past the top of the address space (it would wrap to 0), or its
    ``addr`` or ``stride`` has a bit set at or above ``bus_addr_width`` (see
    :func:`command_addr_width`).
    """
    NONE = 0
    SLVERR = 1
    DECERR = 2
    MISALIGNED = 3
    EMPTY = 4
    RANGE = 5


def dma_command_layout(config, *, wide=False):
    """One DMA command: a 2-D transfer of ``rows`` rows of ``row_beats`` bus beats each.

    Row ``r`` starts at byte address ``addr + r * stride``. ``addr`` and ``stride`` must be
    multiples of the beat size (``config.bus_data_width // 8`` bytes), so that every row is a
    whole number of aligned beats (the driver lays matrices out padded to beats); ``rows``
    and ``row_beats`` must be at least 1. Any ``stride`` is allowed, also one smaller than a
    row (rows overlap; 0 reads or writes the same row again), but every row must lie below
    ``2**bus_addr_width``. ``addr`` and ``stride`` are :func:`command_addr_width` bits (the
    ISA's 32 on a narrower bus); the widths of ``row_beats`` and ``rows`` are
    :func:`command_field_widths` (16 bits each above 50 MHz or if ``wide``).
    """
    row_beats_width, rows_width = command_field_widths(config, wide=wide)
    return data.StructLayout({
        "addr": command_addr_width(config),
        "row_beats": row_beats_width,
        "rows": rows_width,
        "stride": command_addr_width(config),
    })


def burst_layout(config):
    """One burst of a transfer: byte address, AxLEN (beats - 1), whether it ends a row and
    the whole command, and whether the command was refused (the burst must not be issued;
    its beats are delivered or consumed flagged as errors). The first refused burst of a
    command carries the ``cause`` (else ``NONE``); the splitter reports it on its ``error``
    output, with the command's address."""
    return data.StructLayout({
        "addr": config.bus_addr_width,
        "len": 8,
        "row_last": 1,
        "last": 1,
        "refused": 1,
        "cause": DMAError,
    })


def error_event_layout(config):
    """An error found in one cycle: ``valid``, its ``cause`` and the address it concerns
    (:func:`command_addr_width` bits: a bus address is zero-extended)."""
    return data.StructLayout({"valid": 1, "cause": DMAError, "addr": command_addr_width(config)})


def dma_status_signature(config):
    """Status of a DMA engine, as the CSR block exposes it.

    ``busy``: a command is being executed (accepted and not yet complete). ``done``: pulses
    for one cycle per completed command (see the engine for when that is). ``error``: sticky;
    set by the first error, with its ``error_cause`` (:class:`DMAError`) and ``error_addr``;
    cleared by a pulse on ``error_clear`` (an error in the same cycle is latched instead).
    ``error_cause`` is ``NONE`` while ``error`` is low. ``error_addr`` has
    :func:`command_addr_width` bits: a command's address as it was given (also one refused for
    bits at or above ``bus_addr_width``), a burst's address zero-extended. While ``error`` is
    low ``error_addr`` is meaningless (at 50 MHz and below with two bursts in flight it follows
    the older one: see :func:`latch_engine_error`).
    """
    return wiring.Signature({
        "busy": Out(1),
        "done": Out(1),
        "error": Out(1),
        "error_cause": Out(DMAError),
        "error_addr": Out(command_addr_width(config)),
        "error_clear": In(1),
    })


def dma_axi_signature(config, *, read=True, write=True):
    """The DMA's AXI4 manager port (or its read or write half) for ``config``'s bus."""
    return AXI4Signature(addr_width=config.bus_addr_width, data_width=config.bus_data_width,
                         id_width=config.bus_id_width, read=read, write=write)


def response_error(m, config, valid, resp, addr):
    """The :func:`error_event_layout` of an AXI response ``resp`` received when ``valid``:
    valid for SLVERR and DECERR, with ``addr``."""
    event = Signal(error_event_layout(config))
    m.d.comb += [
        event.valid.eq(valid & resp.as_value()[1]),
        event.cause.eq(Mux(resp == AXIResp.DECERR, DMAError.DECERR, DMAError.SLVERR)),
        event.addr.eq(addr),
    ]
    return event


def latch_first_error(m, status, events):
    """Sticky error register of ``status`` (:func:`dma_status_signature`, seen from inside).

    ``events`` are :func:`error_event_layout` values, highest priority first: while no error
    is latched (or in the cycle it is cleared), the first valid one is latched.
    """
    with m.If(status.error_clear):
        m.d.sync += [status.error.eq(0), status.error_cause.eq(DMAError.NONE)]
    for event in reversed(events):  # later assignments win: the first event has priority
        with m.If(event.valid & (~status.error | status.error_clear)):
            m.d.sync += [status.error.eq(1), status.error_cause.eq(event.cause),
                         status.error_addr.eq(event.addr)]


def burst_len_bits(max_burst):
    """Bits of a burst's AxLEN (beats - 1) when bursts have at most ``max_burst`` beats."""
    return max(1, (max_burst - 1).bit_length())


def oldest_issued_address(m, config, depth, *, newest, issue, retire):
    """The address of the oldest issued burst not yet retired (for error reports), of at most
    ``depth`` in flight; returns it and whether one more burst may be issued.

    ``newest`` is the AxADDR register, which holds the last issued burst's address until the
    next ``issue``; so only the older ones are queued (``depth - 1`` beat addresses, in
    flip-flops). ``retire`` (the oldest burst completes) and ``issue`` may come in the same
    cycle; the address is meaningless while nothing is in flight.
    """
    size = (config.bus_data_width // 8 - 1).bit_length()
    if depth > 1 and not config.fast_clock:
        return _oldest_issued_address_copied(m, size, depth, newest=newest, issue=issue,
                                             retire=retire)
    newest_due = Signal()  # the newest burst is in flight
    if depth == 1:
        head, room, newest_retires = newest, ~newest_due, retire
    else:
        m.submodules.older = older = SyncFIFO(width=len(newest) - size, depth=depth - 1)
        newest_retires = retire & ~older.r_rdy
        m.d.comb += [
            older.w_en.eq(issue & newest_due & ~newest_retires),
            older.w_data.eq(newest[size:]),
            older.r_en.eq(retire),
        ]
        head = Mux(older.r_rdy, Cat(Const(0, size), older.r_data), newest)
        room = ~newest_due | older.w_rdy
    with m.If(issue):
        m.d.sync += newest_due.eq(1)
    with m.Elif(newest_retires):
        m.d.sync += newest_due.eq(0)
    return head, room


def _oldest_issued_address_copied(m, size, depth, *, newest, issue, retire):
    """:func:`oldest_issued_address` where the oldest address is always in one register
    (not ``config.fast_clock``): no multiplexer in front of the error address register.

    ``queue[i]`` holds the ``i``-th oldest burst in flight, copied from the AxADDR register
    (``newest``) in the cycle after its issue, when that burst is the newest of those that
    stay in flight (the newest one of ``depth`` in flight stays in ``newest`` alone). So the
    address of a burst is valid from the second cycle after its issue: its response comes
    later (AXI answers a burst after its address handshake, at the earliest in the cycle
    after the one ``newest`` is valid in).
    """
    in_flight = Signal(range(depth + 1))
    staying = Signal.like(in_flight)  # in flight after this cycle's retirement
    m.d.comb += staying.eq(in_flight - retire)
    m.d.sync += in_flight.eq(staying + issue)
    queue = [Signal(len(newest) - size, name=f"older_{i}") for i in range(depth - 1)]
    for i, entry in enumerate(queue):
        with m.If(staying == i + 1):
            m.d.sync += entry.eq(newest[size:])
        if i + 1 < len(queue):
            with m.Elif(retire):
                m.d.sync += entry.eq(queue[i + 1])
    return Cat(Const(0, size), queue[0]), in_flight != depth


def tracks_in_error_register(config, depth):
    """Whether :func:`latch_engine_error` keeps the older of two bursts in flight in the
    ``error_addr`` register itself (50 MHz and below, ``depth`` 2), which needs the engine
    to report a command error only while at most one burst is in flight (see there)."""
    return not config.fast_clock and depth == 2


def latch_engine_error(m, config, status, depth, *, newest, issue, retire, resp_valid, resp,
                       command_error):
    """An engine's sticky error (:func:`latch_first_error`): a bus error (``resp`` when
    ``resp_valid``: SLVERR or DECERR of the oldest issued burst not yet retired) before the
    command error ``command_error`` (:func:`error_event_layout`) of the same cycle. Returns
    ``(room, idle)``: whether one more burst may be issued (at most ``depth`` in flight, see
    :func:`oldest_issued_address` for ``newest``, ``issue`` and ``retire``), and whether none
    is in flight.

    With :func:`tracks_in_error_register`, ``error_addr`` (while ``error`` is low) holds the
    address of the older burst when two are in flight, copied from ``newest`` at the second
    one's issue (the one alone in flight is ``newest`` itself): no separate copy. A command
    error overwrites it, so the engine lets one be reported only while at most one burst is in
    flight after that cycle (a refused burst that reports leaves only with ``room``, an
    ``EMPTY`` command is accepted only when ``idle``); no burst is issued while the
    error is latched (nor in the cycle it is cleared), so the address of the older of two in
    flight is in the register also after a clear. While ``error`` is low ``error_addr`` is
    meaningless.
    """
    if not tracks_in_error_register(config, depth):
        r_addr, room = oldest_issued_address(m, config, depth, newest=newest, issue=issue,
                                             retire=retire)
        bus_error = response_error(m, config, resp_valid, resp, r_addr)
        latch_first_error(m, status, [bus_error, command_error])
        return room, Const(1)
    size = (config.bus_data_width // 8 - 1).bit_length()
    in_flight = Signal(range(depth + 1))
    m.d.sync += in_flight.eq(in_flight - retire + issue)
    alone = in_flight == 1  # the oldest in flight is `newest`, else the register's address
    bus_error = response_error(m, config, resp_valid, resp, Cat(Const(0, size), newest[size:]))
    may = ~status.error | status.error_clear
    take_bus, take_command = bus_error.valid & may, command_error.valid & may
    with m.If(status.error_clear):
        m.d.sync += [status.error.eq(0), status.error_cause.eq(DMAError.NONE)]
    with m.If(take_bus | take_command):
        m.d.sync += [status.error.eq(1),
                     status.error_cause.eq(Mux(take_bus, bus_error.cause, command_error.cause))]
    with m.If(take_command & ~take_bus):
        m.d.sync += status.error_addr.eq(command_error.addr)
    with m.Elif((take_bus | issue) & alone):  # a bus error of, or a second issue after, it
        m.d.sync += status.error_addr.eq(bus_error.addr)
    return in_flight != depth, in_flight == 0


def connect_commands(m, config, depth, cmd, splitter, idle):
    """Connects an engine's ``cmd`` stream to its ``splitter``; with
    :func:`tracks_in_error_register` an ``EMPTY`` command waits until ``idle`` (no burst in
    flight: see :func:`latch_engine_error`)."""
    if not tracks_in_error_register(config, depth):
        wiring.connect(m, wiring.flipped(cmd), splitter.cmd)
        return
    held = ((cmd.payload.rows == 0) | (cmd.payload.row_beats == 0)) & ~idle
    m.d.comb += [
        splitter.cmd.valid.eq(cmd.valid & ~held),
        splitter.cmd.payload.eq(cmd.payload),
        cmd.ready.eq(splitter.cmd.ready & ~held),
    ]


def may_leave(config, depth, burst, skip, room, issuable):
    """Whether the splitter's ``burst`` may leave: issued if ``issuable`` (and ``room``) or
    skipped (``skip``); with :func:`tracks_in_error_register` a burst that reports a command
    error only with ``room`` (at most one burst in flight: see :func:`latch_engine_error`)."""
    if not tracks_in_error_register(config, depth):
        return skip | (room & issuable)
    reports = burst.cause != DMAError.NONE  # (a refused burst)
    return (skip & ~reports) | (room & (skip | issuable))


class ShiftQueue(Elaboratable):
    """A first-in first-out queue of ``depth`` entries of ``width`` bits in flip-flops, with
    the oldest always in entry 0 (entries move up as it is read): like
    :class:`amaranth.lib.fifo.SyncFIFO` (same members and timing: an entry written in one
    cycle is readable in the next; no write while full, also in a cycle that reads) but
    without its read multiplexer, and each entry but the last loaded through a 2-input
    multiplexer (which an iCE40 logic cell packs with its flip-flop).

    With ``counting``, ``r_step`` (with ``r_rdy``, not with ``r_en``) adds 1 to the oldest
    entry in place (modulo ``2**width``): a counter that starts at the value written."""

    def __init__(self, *, width, depth, counting=False):
        self.width, self.depth, self.counting = width, depth, counting
        self.w_data, self.w_en, self.w_rdy = Signal(width), Signal(), Signal()
        self.r_data, self.r_en, self.r_rdy = Signal(width), Signal(), Signal()
        self.r_step = Signal()
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform):
        m = Module()
        entries = [Signal(self.width, name=f"entry_{i}") for i in range(self.depth)]
        read = self.r_en & self.r_rdy
        write = self.w_en & self.w_rdy
        # The level one-hot (`holds[i]`: i entries), so that a write lands at entry
        # `level - read` through one LUT after `read` (no subtractor and comparators).
        holds = Signal(self.depth + 1, init=1)
        m.d.comb += [
            self.r_rdy.eq(~holds[0]),
            self.w_rdy.eq(~holds[self.depth]),
            self.r_data.eq(entries[0]),
        ]
        for i in range(1, self.depth + 1):
            with m.If(holds[i]):
                m.d.comb += self.level.eq(i)
        with m.If(read & ~write):
            m.d.sync += holds.eq(holds[1:])
        with m.Elif(write & ~read):
            m.d.sync += holds.eq(Cat(0, holds[:-1]))
        for i, entry in enumerate(entries):
            with m.If(write & Mux(read, holds[i + 1], holds[i])):
                m.d.sync += entry.eq(self.w_data)
            if i + 1 < self.depth:
                with m.Elif(read):
                    m.d.sync += entry.eq(entries[i + 1])
            if i == 0 and self.counting:
                with m.Elif(self.r_step):
                    m.d.sync += entry.eq(entry + 1)
        return m


def small_fifo(config, *, width, depth):
    """A queue of ``depth`` short records: a :class:`ShiftQueue` at 50 MHz and below, else
    a :class:`amaranth.lib.fifo.SyncFIFO` (the same timing)."""
    if config.fast_clock:
        return SyncFIFO(width=width, depth=depth)
    return ShiftQueue(width=width, depth=depth)


def check_engine_parameters(component, config, *, max_burst, axi_id=0):
    """Checks the parameters of a DMA block (``max_burst``, ``axi_id``); raises
    :class:`TypeError` or :class:`ValueError`, and then keeps ``component`` (never built)
    from warning that it was created but never used."""
    try:
        if not isinstance(max_burst, int) or isinstance(max_burst, bool):
            raise TypeError(f"max_burst must be an integer, not {max_burst!r}")
        if not 1 <= max_burst <= MAX_BURST_BEATS or max_burst & (max_burst - 1):
            raise ValueError(f"max_burst must be a power of two from 1 to {MAX_BURST_BEATS}, "
                             f"not {max_burst!r}")
        if (not isinstance(axi_id, int) or isinstance(axi_id, bool)
                or not 0 <= axi_id < 1 << config.bus_id_width):
            raise ValueError(f"axi_id must fit bus_id_width ({config.bus_id_width} bits), "
                             f"not {axi_id!r}")
    except (TypeError, ValueError):
        component._MustUse__silence = True
        raise


class BurstSplitter(wiring.Component):
    """Splits 2-D transfer commands into AXI4 INCR bursts.

    Each row is cut into bursts of at most ``max_burst`` beats that never cross a 4 KiB
    boundary and never a row end: a burst is ``min(beats left in the row, max_burst, beats
    to the next 4 KiB boundary)`` beats long; at 50 MHz and below (:attr:`block_aligned`)
    ``min(beats left in the row, beats to the next max_burst-aligned block)``, a burst never
    crossing a block (nor so a page). Bursts come out in address order, row after row.
    :func:`sim.tb_dma.split_transfer` is the reference model.

    A command is checked as it is accepted. A misaligned ``addr`` or ``stride``
    (``MISALIGNED``) produces the bursts of the command with the low address bits cleared,
    all flagged ``refused``, so that the engine delivers (or consumes) the command's number
    of beats, flagged. A command that would run past the top of the address space
    (``RANGE``) has its bursts flagged ``refused`` from the first one that would wrap. The
    error is reported on ``error`` (for one cycle, with the command's address) when the
    first refused burst leaves, so every earlier burst has left before it. A zero ``rows`` or
    ``row_beats`` (``EMPTY``) produces no burst; it is reported in the cycle after it was
    accepted, when every burst of the earlier commands has left. On a bus narrower than the
    command's fields (:attr:`checks_high_bits`) a command with a bit of ``addr`` or ``stride``
    at or above ``bus_addr_width`` is refused as a whole (``RANGE``, reported as above with
    its whole address, or with :attr:`folds_high_bits` the bits above the bus all set; its
    bursts are cut from the low bits), before ``EMPTY`` (then
    reported as ``EMPTY`` is) and ``MISALIGNED``. Only ``bus_addr_width`` bits of a command
    are kept, and the bits above of its address for the report (a register each, which
    synthesis removes where they are constant).

    The burst on ``bursts`` is computed from the splitter's state (no output register): the
    burst's address and the row's beats left, and the distance to the next
    ``max_burst``-aligned block (which is the one to the 4 KiB boundary only in the last
    block of a page). The only registers are the command's fields and the progress in it:
    at 50 MHz and below the beats already cut from the row (address and beats left are sums
    of it), above (:attr:`registered_progress`) the address and beats left themselves, and
    with them the burst's cap (beats to its block or page end) and whether it ends the row.
    At 50 MHz and below, a burst that would start at or past the top of the address space is
    found by the carry out of its address sum (which then feeds only AxADDR's register), and
    the row end by a zero test of the beats left above ``max_burst``'s width.

    Timing:

    - Latency: the first burst of a command is on ``bursts`` in the cycle after the command
      was accepted; the next one in the cycle after the previous one left.
    - Throughput: one burst per cycle. The next command is accepted in the cycle the last
      burst of the current one leaves, so back-to-back one-burst commands also run at one
      burst per cycle (an ``EMPTY`` command takes one cycle). At 50 MHz and below
      (:attr:`accepts_when_idle`) in the cycle after: a burst every 2 cycles for one-burst
      commands, one idle cycle between longer ones.
    - Back-pressure: ``bursts.ready`` low holds the current burst; ``cmd.ready`` follows
      ``bursts.ready`` combinationally while a command is in progress (at 50 MHz and below
      it comes from registers). ``bursts.valid`` and ``bursts.payload`` depend only on
      registers.

    Parameters
    ----------
    config : TesseraConfig
        ``bus_data_width`` (beat size) and ``bus_addr_width``.
    max_burst : int
        Longest burst in beats: a power of two, 1 to 256.
    relative_rows : bool
        At 50 MHz and below only: keep the row's offset from the command's address (reset
        for each command) instead of the row's address (loaded from ``cmd.addr``), and add
        the command's address for every burst (one adder more, one load multiplexer less):
        cheaper when ``cmd.payload`` comes from a multiplexer (the read arbiter's), whose
        output then feeds only the address register.

    wide_commands : bool
        Commands with 16-bit ``rows`` and ``row_beats`` also at 50 MHz and below (see
        :func:`command_field_widths`; the accelerator's own DMA has narrow ones there).

    Members
    -------
    cmd : In(stream.Signature(dma_command_layout(config, wide=wide_commands)))
    bursts : Out(stream.Signature(burst_layout(config)))
    busy : Out(1)
        A command is in progress (accepted, and its last burst has not left).
    error : Out(error_event_layout(config))
        A command error: valid for one cycle, in the cycle its first refused burst leaves
        (``bursts.valid & bursts.ready``), combinationally; ``addr`` is the command's address.

    Raises
    ------
    TypeError, ValueError
        ``max_burst`` is not a power of two from 1 to 256.
    """

    def __init__(self, config, *, max_burst=MAX_BURST_BEATS, relative_rows=False,
                 wide_commands=False):
        check_engine_parameters(self, config, max_burst=max_burst)
        self.config = config
        self.max_burst = max_burst
        self.relative_rows = bool(relative_rows) and not self.registered_progress
        super().__init__({
            "cmd": In(stream.Signature(dma_command_layout(config, wide=wide_commands))),
            "bursts": Out(stream.Signature(burst_layout(config))),
            "busy": Out(1),
            "error": Out(error_event_layout(config)),
        })

    @property
    def checks_high_bits(self):
        """The bus is narrower than a command's ``addr`` and ``stride``
        (:func:`command_addr_width`): commands with higher bits set are refused."""
        return self.config.bus_addr_width < command_addr_width(self.config)

    @property
    def folds_high_bits(self):
        """With :attr:`checks_high_bits`, at 50 MHz and below: the address a command refused
        for its high bits is reported with all of them set if any was (the dispatcher folds
        them into one bit there, which all of them read as: one register, not one per bit)."""
        return self.checks_high_bits and not self.config.fast_clock

    @property
    def registered_progress(self):
        """The burst address, the row's beats left, the burst's cap and its row end are
        registers (``config.fast_clock``): no carry chain before the burst's length, which
        the engines' credit checks and AXI's AxLEN take combinationally."""
        return self.config.fast_clock

    @property
    def accepts_when_idle(self):
        """``cmd.ready`` only while no command is in progress (at 50 MHz and below): it comes
        from registers, not from the last burst's length and ``bursts.ready`` (a path that,
        through the units taking their instructions as they issue them, reached the
        dispatcher's token counters on tiny)."""
        return not self.config.fast_clock

    @property
    def block_aligned(self):
        """Bursts are also cut at every ``max_burst``-aligned block boundary (at 50 MHz and
        below: no page test before a burst's length)."""
        return not self.config.fast_clock

    @property
    def beat_bytes(self):
        return self.config.bus_data_width // 8

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        size = (self.beat_bytes - 1).bit_length()
        beat_addr_width = cfg.bus_addr_width - size
        page_bits = (PAGE_BYTES // self.beat_bytes).bit_length() - 1
        block_bits = (self.max_burst - 1).bit_length()  # max_burst <= beats in a page
        cmd = self.cmd.payload
        out = self.bursts

        active = Signal()
        # Beat address of the current row; without registered_progress its offset from the
        # command's address (the row times the stride, modulo the address space): reset to 0
        # for a command, so it is loaded only from its own sum.
        row_addr = Signal(beat_addr_width)
        stride = Signal(beat_addr_width)
        row_beats = Signal(len(cmd.row_beats))
        rows_left = Signal(len(cmd.rows))   # rows including the current one
        refused = Signal()
        announce = Signal(DMAError)          # the error the next burst leaving reports
        empty_pending = Signal()             # an EMPTY command, reported in the next cycle
        base = Signal(cfg.bus_addr_width)    # the command's address, for error reports
        # (and its bits above the bus; with folds_high_bits their OR, which all of them read as)
        base_high = Signal(1 if self.folds_high_bits else len(cmd.addr) - cfg.bus_addr_width)

        addr = Signal(beat_addr_width)       # beat address of the current burst
        beyond = Signal()  # (without registered_progress) the burst starts at 2**addr_width
        remaining = Signal(len(cmd.row_beats))  # beats of the current row not yet in bursts

        def cap_of(a):
            """Beats from beat address ``a`` to the end of its ``max_burst``-aligned block, or
            (not :attr:`block_aligned`) ``max_burst``, but in the last block of a page to the
            page end: ``block_bits + 1`` bits."""
            if not block_bits:
                return Const(1, 1)
            in_block = a[:block_bits]
            if self.block_aligned:
                return (self.max_burst - in_block)[:block_bits + 1]
            last_block = a[block_bits:page_bits].all()
            to_block = ((1 << block_bits) - in_block)[:block_bits]
            return Mux(last_block & in_block.any(), to_block, self.max_burst)

        def at_most(beats, limit):  # beats <= limit, compared in limit's width
            return ~beats[len(limit):].any() & (beats[:len(limit)] <= limit)

        # The current burst's cap (beats to the end of its block or page) and whether the row
        # ends with it: registers with registered_progress, loaded with the address they are
        # computed from (so that no carry chain runs from the address through the burst's
        # length into the engine's credit check and back into the splitter's enables).
        cap = Signal(block_bits + 1)
        if self.registered_progress:
            row_end = Signal()
            # A row starts at the next command's address (idle, or the command ends with this
            # burst) or at the next row's: chosen by registers, then one cap and one compare.
            start_addr = Signal(beat_addr_width)
            start_beats = Signal(len(remaining))
            start_cap = Signal(block_bits + 1)

            def start_row(row_start, beats_in_row):
                # (start_addr and start_beats are row_start and beats_in_row wherever the
                # row's registers matter: a command's last row leaves them to the next one.)
                return [addr.eq(start_addr), remaining.eq(start_beats), cap.eq(start_cap),
                        row_end.eq(at_most(start_beats, start_cap))]

            def cut(beats):  # (beats = cap, the row goes on)
                # The next burst starts max_burst beats on, at the same place in its block,
                # unless this one ended a page (then at the next page's start): it runs to the
                # page end only if this one is in the page's second to last block.
                blocks = page_bits - block_bits
                second_last = (addr[block_bits:page_bits] == (1 << blocks) - 2 if blocks
                               else Const(0))
                in_block = addr[:block_bits]
                next_cap = Signal(block_bits + 1)
                left = Signal(len(remaining), name="left_after_cut")
                m.d.comb += [
                    next_cap.eq(Mux(second_last & in_block.any(),
                                    ((1 << block_bits) - in_block)[:block_bits],
                                    self.max_burst) if block_bits else 1),
                    left.eq(remaining - beats),
                ]
                return [addr.eq(addr + beats), remaining.eq(left), cap.eq(next_cap),
                        row_end.eq(at_most(left, next_cap))]
        else:  # both from the beats of the row already in bursts: one register
            offset = Signal(len(cmd.row_beats))
            position = Signal(beat_addr_width + 2)
            if self.relative_rows:
                in_command = Signal(beat_addr_width + 1, attrs={"keep": 1})  # not a $macc
                m.d.comb += [in_command.eq(row_addr + offset),
                             position.eq(base[size:] + in_command)]
            else:
                m.d.comb += position.eq(row_addr + offset)
            m.d.comb += [addr.eq(position), beyond.eq(position[beat_addr_width:].any()),
                         remaining.eq(row_beats - offset)]

            def start_row(row_start, beats_in_row):
                return [offset.eq(0)]

            def cut(beats):
                return [offset.eq(offset + beats)]
        if not self.registered_progress:
            m.d.comb += cap.eq(cap_of(addr))
            # A zero test of the high bits, a compare of cap's width (no 16-bit chain).
            row_end = at_most(remaining, cap)
        beats = Mux(row_end, remaining[:block_bits + 1], cap)
        last_row = rows_left == 1
        cmd_end = row_end & last_row
        next_row = Signal(beat_addr_width + 1)
        m.d.comb += next_row.eq(row_addr + stride)
        if self.registered_progress:
            next_cmd = ~active | cmd_end
            m.d.comb += [
                start_addr.eq(Mux(next_cmd, cmd.addr[size:], next_row)),
                start_beats.eq(Mux(next_cmd, cmd.row_beats, row_beats)),
                start_cap.eq(cap_of(start_addr)),
            ]
        # The next burst would start at or beyond 2**bus_addr_width (bursts do not cross a
        # page, so within a row only one that ends the last block of the top page can).
        # Without registered_progress, a burst is refused by the carry out of its address sum
        # (`beyond`) instead, in a row and at a row's start (`next_row` is then the next row's
        # offset, whose carry also refuses): the AxADDR register then takes the sum alone.
        if self.registered_progress:
            wraps = Mux(row_end, ~last_row & next_row[-1], addr[block_bits:].all())
            first_beyond, burst_refused, cause = Const(0), refused, announce
        else:
            wraps = row_end & ~last_row & next_row[-1]
            first_beyond = beyond & ~refused
            burst_refused, cause = refused | beyond, Signal(DMAError)
            m.d.comb += cause.eq(Mux(first_beyond, DMAError.RANGE, announce))

        leave = out.valid & out.ready
        m.d.comb += [
            out.valid.eq(active),
            out.payload.addr.eq(Cat(Const(0, size), addr)),
            out.payload.len.eq((beats - 1)[:burst_len_bits(self.max_burst)]),
            out.payload.row_last.eq(row_end),
            out.payload.last.eq(cmd_end),
            out.payload.refused.eq(burst_refused),
            out.payload.cause.eq(cause),
            self.cmd.ready.eq((~active | (0 if self.accepts_when_idle else leave & cmd_end))
                              & ~empty_pending),
            self.busy.eq(active | empty_pending),
            self.error.valid.eq((leave & (cause != DMAError.NONE)) | empty_pending),
            self.error.cause.eq(cause),
            self.error.addr.eq(Cat(base, base_high.replicate(len(cmd.addr) - len(base)))
                               if self.folds_high_bits else
                               Cat(base, base_high) if self.checks_high_bits else base),
        ]

        with m.If(leave):
            m.d.sync += announce.eq(DMAError.NONE)
            with m.If(row_end):
                m.d.sync += [row_addr.eq(next_row), rows_left.eq(rows_left - 1),
                             *start_row(next_row, row_beats)]
                with m.If(last_row):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += cut(cap)
            if not self.registered_progress:
                with m.If(first_beyond):
                    m.d.sync += refused.eq(1)
            with m.If(wraps & ~burst_refused):
                m.d.sync += [refused.eq(1), announce.eq(DMAError.RANGE)]
        m.d.sync += empty_pending.eq(0)

        misaligned = cmd.addr[:size].any() | cmd.stride[:size].any() if size else Const(0)
        empty = (cmd.row_beats == 0) | (cmd.rows == 0)
        refuse = misaligned
        announced = Mux(empty, DMAError.EMPTY, Mux(misaligned, DMAError.MISALIGNED, DMAError.NONE))
        if self.checks_high_bits:  # bits the bus has not: the whole command is refused
            high = (cmd.addr | cmd.stride)[cfg.bus_addr_width:].any()
            refuse = misaligned | high
            announced = Mux(high, DMAError.RANGE, announced)
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += base_high.eq(cmd.addr[cfg.bus_addr_width:].any()
                                         if self.folds_high_bits
                                         else cmd.addr[cfg.bus_addr_width:])
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                active.eq(~empty),
                empty_pending.eq(empty),
                row_addr.eq(0 if self.relative_rows else cmd.addr[size:]),
                stride.eq(cmd.stride[size:]),
                row_beats.eq(cmd.row_beats),
                rows_left.eq(cmd.rows),
                *start_row(cmd.addr[size:], cmd.row_beats),
                refused.eq(refuse),
                announce.eq(announced),
                base.eq(cmd.addr),
            ]
        return m

"""EXEC unit: scratchpad rows through the systolic array into the accumulator."""

from amaranth.hdl import C, Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .accumulator import acc_write_layout
from .burst_splitter import ShiftQueue
from .isa import ErrorCause, Opcode, exec_layout, unit_signature
from .scratchpad import Scratchpad, rows_beyond, sp_read_layout
from .systolic import SystolicArray

__all__ = ["ExecUnit", "exec_tag_layout"]


def exec_tag_layout(config):
    """What an activation row's tag carries through the array when the unit is
    :attr:`ExecUnit.tagged`: its accumulator row and whether the result is added to it."""
    return data.StructLayout({"acc_addr": range(config.acc_depth), "accumulate": 1})


class _JobRegister:
    """A one-job queue in a register (with the :class:`SyncFIFOBuffered` port names it
    uses): ``w_rdy`` while empty or, with ``pass_through``, read in this cycle."""

    def __init__(self, m, name, width, *, pass_through):
        self.w_en, self.r_en = Signal(name=f"{name}_w_en"), Signal(name=f"{name}_r_en")
        self.w_data = Signal(width, name=f"{name}_w_data")
        self.r_data = Signal(width, name=name)
        self.r_rdy = Signal(name=f"{name}_valid")
        self.w_rdy = ~self.r_rdy | self.r_en if pass_through else ~self.r_rdy
        with m.If(self.w_en):
            m.d.sync += [self.r_data.eq(self.w_data), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)


class _ActCounter:
    """The activation job at slow clocks, with the :class:`_JobRegister` port names it uses:
    instead of the job and an index, the next row's address (loaded with ``act_addr``,
    counted up), the end row (``act_addr + rows``, from the range check) and the first
    row's ``swap`` and ``after`` flags (cleared once that row is read, ``r_en``'s cycle or
    not). ``w_data`` is the job (its ``act_addr``, ``preload`` and ``after``), ``w_end`` its
    end row; ``last``: the next row is the job's last.

    A second job waits in a register behind it and takes over in the cycle the first one's
    last row is read (``r_en``): no bubble, and ``w_rdy`` (no job waiting) comes from a
    register, not from the reads. A job written while none is current, or in the cycle the
    current one ends with none waiting, becomes current at once."""

    def __init__(self, m, cfg, job):
        self.w_en, self.r_en = Signal(name="act_job_w_en"), Signal(name="act_job_r_en")
        self.w_data = Signal(job, name="act_job_w_data")
        self.w_end = Signal(range(cfg.sp_depth + 1), name="act_job_w_end")
        self.r_rdy = Signal(name="act_job_valid")
        self.addr = Signal(range(cfg.sp_depth), name="act_job_addr")
        end = Signal.like(self.w_end, name="act_job_end")
        self.swap, self.after = Signal(name="act_job_swap"), Signal(name="act_job_after")
        self.last = self.addr + 1 == end
        waiting = Signal(name="act_job_waiting")
        next_addr = Signal.like(self.addr, name="act_job_next_addr")
        next_end = Signal.like(end, name="act_job_next_end")
        next_swap, next_after = Signal(name="act_job_next_swap"), Signal(name="act_job_next_after")
        self.w_rdy = ~waiting
        with m.If(self.w_en & (~self.r_rdy | self.r_en)):
            m.d.sync += [self.addr.eq(self.w_data.act_addr), end.eq(self.w_end),
                         self.swap.eq(self.w_data.preload), self.after.eq(self.w_data.after),
                         self.r_rdy.eq(1)]
        with m.Elif(self.r_en & waiting):
            m.d.sync += [self.addr.eq(next_addr), end.eq(next_end), self.swap.eq(next_swap),
                         self.after.eq(next_after), waiting.eq(0)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(self.w_en & self.r_rdy & ~self.r_en):
            m.d.sync += [next_addr.eq(self.w_data.act_addr), next_end.eq(self.w_end),
                         next_swap.eq(self.w_data.preload), next_after.eq(self.w_data.after),
                         waiting.eq(1)]
        self.m = m

    def advance(self, fire):
        """A row was read in this cycle (``fire``; the job's last row: ``r_en``)."""
        with self.m.If(fire & ~self.r_en):
            self.m.d.sync += [self.addr.eq(self.addr + 1), self.swap.eq(0), self.after.eq(0)]


class ExecUnit(wiring.Component):
    """Executes EXEC instructions (see :func:`hdl.isa.exec_layout`) on its own systolic array.

    An instruction is checked first (``rows`` not zero; weight, activation and accumulator
    rows inside their memories); a failing check latches its :class:`hdl.isa.ErrorCause`
    and the unit stops. Then two readers work side by side: the weight reader reads, with
    ``preload``, the ``dim`` weight rows through ``sp_weight_read`` into the array's shadow
    tile; the activation reader reads the ``rows`` activation rows through ``sp_read`` into
    the array (the first one with ``swap`` after a preload). Each result row is written (or,
    with ``accumulate``, added) to its accumulator row, from ``acc_addr`` on: the rows come
    out in order, so where ``config.fast_clock`` is False the unit counts them (no tag
    through the array; a flag follows each instruction's last activation row for the
    array's latency and marks its last result row); at fast clocks each activation row is
    tagged with its accumulator row, so that the accumulator's write address comes straight
    from a register. The array
    itself keeps the two in step: the next tile's weights wait for the swap of this one, a
    swap waits for its tile.

    Timing:

    - Activation rows enter the array one per cycle, instruction after instruction with no
      bubble: the next tile's weights are read from the other ping-pong half of the
      scratchpad while this tile's activation rows stream (a tile switch is free when a
      tile has at least ``dim`` rows, the array's own condition). When both readers want the
      same scratchpad bank, the activation reader goes first.
    - Up to :attr:`queue_depth` instructions wait per reader, so the next ones are accepted
      while this one computes. With :attr:`peeks` (slow clocks) one waits per reader, in a
      register (activation jobs: one more waits behind the current one), and the next is
      the one offered on ``ctl.insn``: its weight tile is read while it is offered (its
      tokens are there), and it is taken once an activation job register is free (a
      waiting job becomes current in the cycle the last row ahead of it is read: no
      bubble), at the earliest in the cycle after it was first offered (its checks are
      registered). ``ctl.insn.ready`` comes from registers.
    - ``done`` pulses in the cycle after the accumulator took an instruction's last result
      row (about ``array.latency + 3`` cycles after its last read). Slow clocks: the
      accumulator takes a row's address a cycle before the row (see
      :func:`hdl.accumulator.write_row_follows`), which comes straight from the array; a
      flag for each row entering the array follows it ``array.latency - 1`` cycles, so
      ``done`` comes a cycle earlier, in the cycle the row is summed and written (a store
      read of that row waits that cycle in the accumulator).
    - Slow clocks: no two rows in a row into one accumulator row (the accumulator does not
      forward): an instruction whose first accumulator row is the last row of the
      instruction taken before it enters the array no sooner than a cycle after that one
      (one bubble at most per such pair, none for the usual instructions into other rows).
    - Back-pressure: none from the accumulator: ``acc_write.ready`` must be high whenever
      ``acc_write.valid`` is (the accumulator's write port always is), so the array runs
      without an output buffer (``result_buffer=False``); its full shadow tile holds the
      readers.

    Members
    -------
    ctl : Out(hdl.isa.unit_signature())
    sp_read, sp_weight_read : Out(stream.Signature(config.addr_width))
    sp_read_data, sp_weight_read_data : In(stream.Signature(sp_read_layout(config)))
    acc_write : Out(stream.Signature(acc_write_layout(config)))
        Always ready in the cycles it is valid.
    computing : Out(1)
        An activation row entered the array in this cycle (``dim * dim`` MACs).

    Raises
    ------
    ValueError
        :attr:`tagged` and the tag (``exec_tag_layout``) does not fit ``config.tag_width``.
    """

    #: Instructions queued per reader (with :attr:`peeks`: in registers, one for weights, two
    #: for activations).
    queue_depth = 2

    @property
    def peeks(self):
        """Whether the unit takes an offered instruction's weight job before the instruction
        (where ``config.fast_clock`` is False): the dispatcher's queue stage is then the
        second job of each reader, and a register the first."""
        return not self.config.fast_clock

    @property
    def inflight_depth(self):
        """Instructions taken whose last result row is not written, at most."""
        return 4

    @property
    def max_outstanding(self):
        """Instructions taken and not done, at most (``done`` follows the last row)."""
        return self.inflight_depth + 1

    @property
    def tagged(self):
        """Whether the activation rows carry their accumulator row through the array."""
        return self.config.fast_clock  # slower: results counted, no tags

    @property
    def route_depth(self):
        """Reads in flight between the scratchpad and the array: no more than the
        scratchpad's answers per port (1 when it holds them in its banks: then a register)."""
        return Scratchpad.answers_for(self.config)

    def _route(self, m, name, width, w_en, w_data, r_en):
        """What each scratchpad read carries to the array, in request order:
        ``(w_rdy, r_rdy, r_data)``. With one answer per port a register loaded with each
        read (the scratchpad takes a read only when the last answer is taken), and valid
        whenever an answer is; else a FIFO of :attr:`route_depth` entries."""
        if self.route_depth == 1:
            data_ = Signal(width, name=f"{name}_data")
            with m.If(w_en):
                m.d.sync += data_.eq(w_data)
            return 1, 1, data_
        m.submodules[name] = fifo = SyncFIFOBuffered(width=width, depth=self.route_depth)
        m.d.comb += [fifo.w_en.eq(w_en), fifo.w_data.eq(w_data), fifo.r_en.eq(r_en)]
        return fifo.w_rdy, fifo.r_rdy, fifo.r_data

    def __init__(self, config):
        self.config = config
        if self.tagged and exec_tag_layout(config).size > config.tag_width:
            self._MustUse__silence = True
            raise ValueError(f"tag_width must be at least {exec_tag_layout(config).size} "
                             f"for acc_depth {config.acc_depth}, not {config.tag_width!r}")
        super().__init__({
            "ctl": Out(unit_signature()),
            "sp_read": Out(stream.Signature(config.addr_width)),
            "sp_read_data": In(stream.Signature(sp_read_layout(config))),
            "sp_weight_read": Out(stream.Signature(config.addr_width)),
            "sp_weight_read_data": In(stream.Signature(sp_read_layout(config))),
            "acc_write": Out(stream.Signature(acc_write_layout(config))),
            "computing": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, dim = self.config, self.config.dim
        ctl = self.ctl
        tagged = self.tagged
        m.submodules.array = array = SystolicArray(cfg, result_buffer=False, tags=tagged)

        error = Signal(ErrorCause)
        m.d.comb += ctl.error.eq(error)

        # --- Accept: check an instruction, queue its weight and activation halves. ---
        incoming = exec_layout()(ctl.insn.payload)
        check = Signal(ErrorCause)
        narrow = self.peeks  # slow clocks: range checks with adders as wide as the memories
        weights_beyond, _ = rows_beyond(incoming.weight_addr, C(dim), cfg.sp_depth,
                                        narrow=narrow)
        acts_beyond, acts_end = rows_beyond(incoming.act_addr, incoming.rows, cfg.sp_depth,
                                            narrow=narrow)
        acc_beyond, acc_end = rows_beyond(incoming.acc_addr, incoming.rows, cfg.acc_depth,
                                          narrow=narrow)
        with m.If((incoming.header.opcode != Opcode.EXEC) | (incoming.rows == 0)):
            m.d.comb += check.eq(ErrorCause.MALFORMED)
        with m.Elif((incoming.preload & weights_beyond) | acts_beyond):
            m.d.comb += check.eq(ErrorCause.SP_RANGE)
        with m.Elif(acc_beyond):
            m.d.comb += check.eq(ErrorCause.ACC_RANGE)

        # An accepted instruction passed its checks, so its fields fit their memories:
        # addresses below the depths, row counts up to the scratchpad's depth.
        sp_addr, acc_addr, rows_shape = range(cfg.sp_depth), range(cfg.acc_depth), \
            range(cfg.sp_depth + 1)
        act_job = data.StructLayout({"act_addr": sp_addr, "rows": rows_shape, "preload": 1,
                                     **({"acc_addr": acc_addr, "accumulate": 1}
                                        if tagged else {"after": 1})})
        # What the result side needs: the accumulator rows [acc_addr, acc_end). Untagged, the
        # last one is known by a flag that follows its activation row (no acc_end).
        result_job = data.StructLayout({"acc_addr": acc_addr,
                                        **({"acc_end": range(cfg.acc_depth + 1)}
                                           if tagged else {}),
                                        "accumulate": 1})
        weight_addr_width = Shape.cast(sp_addr).width
        stopped = error != ErrorCause.NONE
        if self.peeks:
            weight_jobs = _JobRegister(m, "weight_job", weight_addr_width, pass_through=False)
            act_jobs = _ActCounter(m, cfg, act_job)
        else:
            weight_jobs = m.submodules.weight_jobs = SyncFIFOBuffered(
                width=weight_addr_width, depth=self.queue_depth)
            act_jobs = m.submodules.act_jobs = SyncFIFOBuffered(
                width=act_job.size, depth=self.queue_depth)
        # Slow clocks: a shift queue (the same capacity and timing, no read multiplexer).
        m.submodules.inflight = inflight = (ShiftQueue if self.peeks else SyncFIFOBuffered)(
            width=result_job.size, depth=self.inflight_depth)
        passes = check == ErrorCause.NONE
        offered = ctl.insn.valid
        if self.peeks:
            # The checks' result is registered: an instruction is examined in the cycle after
            # it is first offered (`seen`; it stays offered until taken), so that no path runs
            # from its fields through the checks into the queues and the dispatcher.
            seen, check_seen = Signal(), Signal(ErrorCause)
            m.d.sync += [seen.eq(ctl.insn.valid & ~ctl.insn.ready), check_seen.eq(check)]
            check, passes = check_seen, check_seen == ErrorCause.NONE
            offered = ctl.insn.valid & seen
            # The offered instruction's weight job is taken while it waits (its tokens are
            # there: it stays offered until taken), so its tile is read while the activation
            # job ahead of it streams; the instruction itself is taken with its activation job.
            peeked = Signal()  # the offered instruction's weight job was taken
            weights_in = (offered & ~stopped & passes & incoming.preload & ~peeked
                          & weight_jobs.w_rdy)
            # (`ready` from registers only: with `valid` high, the weight job register's
            # `w_rdy` below is `weights_in`.)
            m.d.comb += ctl.insn.ready.eq(seen & ~stopped & (~passes | (
                act_jobs.w_rdy & inflight.w_rdy
                & (~incoming.preload | peeked | weight_jobs.w_rdy))))
            with m.If(ctl.insn.valid & ctl.insn.ready):
                m.d.sync += peeked.eq(0)
            with m.Elif(weights_in):
                m.d.sync += peeked.eq(1)
        else:
            m.d.comb += ctl.insn.ready.eq(weight_jobs.w_rdy & act_jobs.w_rdy & inflight.w_rdy
                                          & ~stopped)
        accept = ctl.insn.valid & ctl.insn.ready & passes
        if not self.peeks:
            weights_in = accept & incoming.preload
        with m.If(ctl.insn.valid & ctl.insn.ready & (check != ErrorCause.NONE)):
            m.d.sync += error.eq(check)
        if not tagged:
            # The accumulator takes a row a cycle after its address and so no two rows in a
            # row into one accumulator row: an instruction whose first row is the last row of
            # the instruction taken before it (`after`) lets one cycle pass between them.
            prev_end = Signal(range(cfg.acc_depth + 1))
            after = Signal()
            first_row = incoming.acc_addr[:(cfg.acc_depth - 1).bit_length()]
            m.d.comb += after.eq(first_row + 1 == prev_end)
            with m.If(accept):
                m.d.sync += prev_end.eq(acc_end)
        job = Signal(act_job)
        m.d.comb += [
            job.act_addr.eq(incoming.act_addr), job.rows.eq(incoming.rows),
            job.preload.eq(incoming.preload),
            *([job.acc_addr.eq(incoming.acc_addr), job.accumulate.eq(incoming.accumulate)]
              if tagged else [job.after.eq(after)]),
            weight_jobs.w_en.eq(weights_in),
            weight_jobs.w_data.eq(incoming.weight_addr),
            act_jobs.w_en.eq(accept),
            act_jobs.w_data.eq(job),
            *([act_jobs.w_end.eq(acts_end)] if self.peeks else []),
            inflight.w_en.eq(accept),
            # result_job's fields in order, straight from the instruction (no named wire).
            inflight.w_data.eq(Cat(
                incoming.acc_addr[:result_job["acc_addr"].width],
                acc_end[:result_job["acc_end"].width] if tagged else C(0, 0),
                incoming.accumulate)),
        ]

        # --- Weight rows: their own read port, into the array's shadow tile. ---
        w_index = Signal(range(dim))
        w_fire = self.sp_weight_read.valid & self.sp_weight_read.ready
        w_taken = self.sp_weight_read_data.valid & self.sp_weight_read_data.ready
        w_route_rdy, w_route_valid, w_route_last = self._route(   # `last` of each read
            m, "weight_route", 1, w_fire, w_index == dim - 1, w_taken)
        m.d.comb += [
            self.sp_weight_read.valid.eq(weight_jobs.r_rdy & w_route_rdy),
            self.sp_weight_read.payload.eq(weight_jobs.r_data + w_index),
            weight_jobs.r_en.eq(w_fire & (w_index == dim - 1)),
        ]
        with m.If(w_fire):
            m.d.sync += w_index.eq(Mux(w_index == dim - 1, 0, w_index + 1))
        m.d.comb += [
            array.weights.valid.eq(self.sp_weight_read_data.valid & w_route_valid),
            array.weights.payload.row.as_value().eq(
                self.sp_weight_read_data.payload.row.as_value()),
            array.weights.payload.last.eq(w_route_last),
            self.sp_weight_read_data.ready.eq(w_route_valid & array.weights.ready),
        ]

        # --- Activation rows: one read per cycle (tagged: with their accumulator row). ---
        a_fire = self.sp_read.valid & self.sp_read.ready
        a_taken = self.sp_read_data.valid & self.sp_read_data.ready
        route_layout = data.StructLayout({"swap": 1, **({"tag": exec_tag_layout(cfg)}
                                                       if tagged else {"last": 1, "after": 1})})
        entry = Signal(route_layout)
        if self.peeks:
            last_row = act_jobs.last
            m.d.comb += [entry.swap.eq(act_jobs.swap), entry.last.eq(last_row),
                         entry.after.eq(act_jobs.after)]
            read_addr = act_jobs.addr
            act_jobs.advance(a_fire)
        else:
            current = act_job(act_jobs.r_data)
            a_index = Signal(rows_shape)
            last_row = a_index == current.rows - 1
            m.d.comb += entry.swap.eq(current.preload & (a_index == 0))
            if tagged:
                m.d.comb += [entry.tag.acc_addr.eq(current.acc_addr + a_index),
                             entry.tag.accumulate.eq(current.accumulate)]
            else:
                m.d.comb += [entry.last.eq(last_row),
                             entry.after.eq(current.after & (a_index == 0))]
            read_addr = current.act_addr + a_index
            with m.If(a_fire):
                m.d.sync += a_index.eq(Mux(last_row, 0, a_index + 1))
        route_rdy, route_valid, route_data = self._route(
            m, "route", route_layout.size, a_fire, entry, a_taken)
        head_route = route_layout(route_data)
        m.d.comb += [
            self.sp_read.valid.eq(act_jobs.r_rdy & route_rdy),
            self.sp_read.payload.eq(read_addr),
            act_jobs.r_en.eq(a_fire & last_row),
        ]
        act_in = array.acts.valid & array.acts.ready
        go = route_valid
        if not tagged:
            entered = Signal()  # an activation row entered the array in the previous cycle
            m.d.sync += entered.eq(act_in)
            # An `after` row does not enter the array in the cycle after the row before it.
            go = route_valid & ~(head_route.after & entered)
        m.d.comb += [
            array.acts.valid.eq(self.sp_read_data.valid & go),
            array.acts.payload.row.as_value().eq(self.sp_read_data.payload.row.as_value()),
            array.acts.payload.swap.eq(head_route.swap),
            self.sp_read_data.ready.eq(go & array.acts.ready),
            self.computing.eq(act_in),
        ]

        # --- Results into the accumulator, in order: rows acc_addr, acc_addr + 1, ... of the
        # oldest instruction in flight; it is done with its last row. ---
        head = result_job(inflight.r_data)
        if tagged:
            m.d.comb += array.acts.payload.tag.eq(head_route.tag)
            tag = exec_tag_layout(cfg)(array.results.payload.tag[:exec_tag_layout(cfg).size])
            addr, accumulate = tag.acc_addr, tag.accumulate
            result_valid = array.results.valid
            last_result = addr + 1 == head.acc_end
        else:
            started = Signal()      # a row of the head instruction was written
            # The row written last: the accumulator keeps the same register of the address
            # it took last (its stage 1), which synthesis merges with this one.
            last_addr = Signal(range(cfg.acc_depth))
            addr = Mux(started, (last_addr + 1)[:len(last_addr)], head.acc_addr)
            accumulate = head.accumulate
            # The accumulator takes the address a cycle before the row (the row straight
            # from the array): each activation row that entered the array and a flag for an
            # instruction's last one follow it for `array.latency - 1` cycles.
            result_valid, last_result = entered, Signal()
            m.d.sync += last_result.eq(act_in & head_route.last)  # (one of them)
            for k in range(1, array.latency - 1):
                valid_k, last_k = Signal(name=f"entered_{k}"), Signal(name=f"last_{k}")
                m.d.sync += [valid_k.eq(result_valid), last_k.eq(last_result)]
                result_valid, last_result = valid_k, last_k
        wrote = self.acc_write.valid & self.acc_write.ready
        finished = wrote & inflight.r_rdy & last_result
        m.d.comb += [
            self.acc_write.valid.eq(result_valid),
            self.acc_write.payload.addr.eq(addr),
            self.acc_write.payload.row.eq(array.results.payload.row),
            self.acc_write.payload.accumulate.eq(accumulate),
            inflight.r_en.eq(finished),
        ]
        m.d.sync += ctl.done.eq(finished)
        if not tagged:
            with m.If(wrote):
                m.d.sync += [last_addr.eq(addr), started.eq(~finished)]

        m.d.comb += ctl.busy.eq(inflight.r_rdy)
        return m

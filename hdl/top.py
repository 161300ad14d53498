"""The whole accelerator: CSRs on AXI4-Lite, the units and memories, the DMA on AXI4."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accumulator import Accumulator
from .axi_lite import AXI4LiteRegisterBank, AXI4LiteSignature
from .burst_splitter import dma_axi_signature, dma_command_layout
from .dispatcher import Dispatcher
from .dma import DMA
from .exec_unit import ExecUnit
from .isa import DRAM_ADDR_BITS, ErrorCause
from .load_unit import LoadUnit
from .read_arbiter import ReadArbiter
from .registers import tessera_register_map
from .scratchpad import Scratchpad
from .skid_buffer import SkidBuffer
from .sram import SRAM1R1W
from .store_unit import StoreUnit

__all__ = ["CSR_ADDR_WIDTH", "Accelerator"]

#: Byte-address width of the CSR bus.
CSR_ADDR_WIDTH = 12


class _Core(wiring.Component):
    """Everything but the register bank (so that SOFT_RESET can reset it)."""

    #: Most flip-flop bits of a RAM-based performance counter (but CYCLES); the RAM's shape.
    LOW_BITS = 8
    PERF_RAM_DEPTH, PERF_RAM_WIDTH = 16, 32

    def __init__(self, config, insn_queue_depth, perf_ram):
        self.config = config
        self.insn_queue_depth = insn_queue_depth
        self.perf_ram = perf_ram
        self.map = tessera_register_map(config)
        members = {
            "regs": In(self.map.signature),
            "mem": Out(dma_axi_signature(config)),
            "dma_busy": Out(1),
        }
        if perf_ram:  # the CSR bus's AR handshake and bits 2-5 of its address; the RAM
            entry = range(self.PERF_RAM_DEPTH)  # a RAM entry (and a CSR word of the counters)
            members.update(csr_read=In(1), csr_read_addr=In(entry), resetting=In(1),
                           perf_r_addr=Out(entry), perf_r_data=In(self.PERF_RAM_WIDTH),
                           perf_w_addr=Out(entry), perf_w_data=Out(self.PERF_RAM_WIDTH),
                           perf_w_en=Out(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        regs = self.regs

        # A row field with a bit at or above the deepest memory's is out of range anyway.
        # The instruction queue's head word is registered where the clock is fast (as the
        # LOAD unit's command stage is: ``config.fast_clock``).
        # Slow clocks: the dispatcher keeps the push flags of as many unfinished instructions
        # as each unit can have, not 8.
        # Slow clocks: a system-memory address or stride keeps the bits the bus has (the DMA
        # refuses one with a higher bit set, whichever it is) and the scratchpad's (a
        # STORE's to_sp dest).
        row_bits = max(cfg.sp_depth, cfg.acc_depth).bit_length()
        dram_bits = (DRAM_ADDR_BITS if cfg.fast_clock
                     else min(DRAM_ADDR_BITS, max(cfg.bus_addr_width, row_bits)))
        load, exec_, store = LoadUnit(cfg), ExecUnit(cfg), StoreUnit(cfg)
        # STORE: taken instructions wait in its sink queue, then its retire queue (both
        # ``queue_depth``), or one CONFIG reads its parameters: a lower cap only throttles.
        store_outstanding = 2 * store.queue_depth + 1
        m.submodules.dispatcher = dispatcher = Dispatcher(
            queue_depth=self.insn_queue_depth, unit_queue_depth=cfg.unit_queue_depth,
            row_bits=row_bits, dram_bits=dram_bits,
            registered_head=cfg.fast_clock,
            outstanding=None if cfg.fast_clock else {"load": load.max_outstanding,
                                                     "exec": exec_.max_outstanding,
                                                     "store": store_outstanding})
        m.submodules.load = load
        m.submodules.exec = exec_
        m.submodules.store = store
        m.submodules.scratchpad = scratchpad = Scratchpad(cfg)
        m.submodules.accumulator = accumulator = Accumulator(cfg)
        m.submodules.dma = dma = DMA(cfg, max_burst=cfg.dma_max_burst)
        m.submodules.reads = reads = ReadArbiter(cfg, clients=2)

        wiring.connect(m, dispatcher.load, load.ctl)
        wiring.connect(m, dispatcher.exec, exec_.ctl)
        wiring.connect(m, dispatcher.store, store.ctl)

        # DMA reads: LOAD (client 0) and CONFIG (client 1); writes: STORE only.
        wiring.connect(m, load.dma_cmd, reads.cmd_0)
        wiring.connect(m, reads.data_0, load.dma_data)
        wiring.connect(m, store.dma_read_cmd, reads.cmd_1)
        wiring.connect(m, reads.data_1, store.dma_read_data)
        # Fast clocks: the commands pass a skid buffer (a cycle), so that no path runs from a
        # unit's decision through the arbiter into the DMA engine (on the 85F they lie far
        # apart: that route made a STORE's issue -> the reader's credits the critical path).
        read_cmd, write_cmd = reads.dma_cmd, store.dma_write_cmd
        if cfg.fast_clock:
            m.submodules.read_cmd_skid = read_skid = SkidBuffer(dma_command_layout(cfg))
            m.submodules.write_cmd_skid = write_skid = SkidBuffer(dma_command_layout(cfg))
            wiring.connect(m, read_cmd, read_skid.i)
            wiring.connect(m, write_cmd, write_skid.i)
            read_cmd, write_cmd = read_skid.o, write_skid.o
        wiring.connect(m, read_cmd, dma.read_cmd)
        wiring.connect(m, dma.read_data, reads.dma_data)
        wiring.connect(m, write_cmd, dma.write_cmd)
        wiring.connect(m, store.dma_write_data, dma.write_data)
        wiring.connect(m, dma.write_status, store.dma_write_status)
        wiring.connect(m, dma.axi, wiring.flipped(self.mem))
        dma_busy = dma.read_status.busy | dma.write_status.busy
        if cfg.fast_clock:  # the reset comes a cycle later: nothing may start in between
            dma_busy |= (dma.read_cmd.valid & dma.read_cmd.ready) | \
                (dma.write_cmd.valid & dma.write_cmd.ready)
        m.d.comb += self.dma_busy.eq(dma_busy)

        # Memories: EXEC reads the scratchpad and writes the accumulator; STORE reads the
        # accumulator; LOAD and STORE (to_sp) share the scratchpad write port, LOAD first.
        wiring.connect(m, exec_.sp_read, scratchpad.read)
        wiring.connect(m, scratchpad.read_data, exec_.sp_read_data)
        wiring.connect(m, exec_.sp_weight_read, scratchpad.read_b)
        wiring.connect(m, scratchpad.read_b_data, exec_.sp_weight_read_data)
        wiring.connect(m, exec_.acc_write, accumulator.write)
        if cfg.fast_clock:  # as the DMA's commands (the conflict check lies behind ready)
            m.submodules.acc_read_skid = acc_read_skid = SkidBuffer(cfg.addr_width)
            wiring.connect(m, store.acc_read, acc_read_skid.i)
            wiring.connect(m, acc_read_skid.o, accumulator.read)
        else:
            wiring.connect(m, store.acc_read, accumulator.read)
        wiring.connect(m, accumulator.read_data, store.acc_read_data)
        if scratchpad.holds_answers:  # its second write port goes second
            wiring.connect(m, load.sp_write, scratchpad.write)
            wiring.connect(m, store.sp_write, scratchpad.write_b)
        else:
            sp_write = scratchpad.write
            with m.If(load.sp_write.valid):
                m.d.comb += [sp_write.valid.eq(1), sp_write.payload.eq(load.sp_write.payload),
                             load.sp_write.ready.eq(sp_write.ready)]
            with m.Else():
                m.d.comb += [sp_write.valid.eq(store.sp_write.valid),
                             sp_write.payload.eq(store.sp_write.payload),
                             store.sp_write.ready.eq(sp_write.ready)]

        # --- Control and status registers. ---
        control = regs.control
        m.d.comb += [
            dispatcher.words.valid.eq(regs.insn.strobe),
            dispatcher.words.payload.eq(regs.insn.data),
            # A push into a full queue is dropped and latches QUEUE_FULL in the dispatcher
            # (a sticky error the host sees), so the bank always answers OKAY.
            regs.insn.full.eq(0),
            regs.insn_free.eq(dispatcher.free),
            dispatcher.run.eq(control.run),
        ]
        error = dispatcher.error
        done = Signal()  # sticky: END completed, nothing pushed since
        with m.If(dispatcher.done):
            m.d.sync += done.eq(1)
        with m.If(regs.insn.strobe):
            m.d.sync += done.eq(0)
        failed = error != ErrorCause.NONE
        m.d.comb += [
            regs.status.busy.eq(dispatcher.busy),
            regs.status.done.eq(done),
            regs.status.error.eq(failed),
            regs.status.insn_full.eq(dispatcher.free == 0),
            regs.status.insn_empty.eq(dispatcher.free == self.insn_queue_depth),
            regs.error_cause.code.eq(error),
            regs.error_cause.unit.eq(dispatcher.error_unit),
            regs.irq_status.set.done.eq(dispatcher.done),
        ]
        was_failed = Signal()
        m.d.sync += was_failed.eq(failed)
        m.d.comb += regs.irq_status.set.error.eq(failed & ~was_failed)
        # The address of the first DMA error (read engine first).
        with m.If(dma.read_status.error):
            m.d.comb += regs.error_addr.eq(dma.read_status.error_addr)
        with m.Else():
            m.d.comb += regs.error_addr.eq(dma.write_status.error_addr)
        if hasattr(regs, "error_addr_hi"):
            m.d.comb += regs.error_addr_hi.eq(regs.error_addr >> 32)

        # --- Performance counters (held at 0 while PERF_CLEAR; config.perf_counter_width
        # bits, CYCLES twice as many, read zero-extended). BANK_CONFLICTS: one 32-bit count of
        # both memories' conflict cycles (2 in a cycle where both wait), not cleared by
        # PERF_CLEAR. ---
        retired = load.ctl.done + exec_.ctl.done + store.ctl.done + dispatcher.done
        width = cfg.perf_counter_width
        counters = [  # (registers, increment, bits, cleared by PERF_CLEAR, most a cycle)
            (("cycles_lo", "cycles_hi"), control.run & dispatcher.busy, 2 * width, True, 1),
            (("insn_count",), retired, width, True, 4),
            (("exec_cycles",), exec_.computing, width, True, 1),
            (("dma_read_beats",), dma.read_data.valid & dma.read_data.ready, width, True, 1),
            (("dma_write_beats",), dma.write_data.valid & dma.write_data.ready, width, True,
             1),
            (("load_busy",), load.ctl.busy, width, True, 1),
            (("exec_busy",), exec_.ctl.busy, width, True, 1),
            (("store_busy",), store.ctl.busy, width, True, 1),
            (("stall_dependency",),
             dispatcher.waiting[0] + dispatcher.waiting[1] + dispatcher.waiting[2], width, True,
             3),
            (("stall_memory",),
             (load.ctl.busy & ~(load.dma_data.valid & load.dma_data.ready))
             | (store.ctl.busy & ~(store.dma_read_data.valid | store.dma_write_data.valid)),
             width, True, 1),
            (("bank_conflicts",), scratchpad.conflict + accumulator.conflict, 32, False, 2),
        ]
        for _, increment, _, _, most in counters:
            assert most == 1 or len(increment) > 1
        if not cfg.fast_clock:
            # Slow clocks: each increment is registered (counted a cycle late), so that no
            # path runs from the end of a unit's handshake (the units' busy, the scratchpad's
            # conflicts) into a counter's adder and carry. An event in a PERF_CLEAR cycle is
            # dropped, as unregistered.
            for i, (names, increment, bits, cleared, most) in enumerate(counters):
                late = Signal(len(increment), name=f"perf_{names[0].removesuffix('_lo')}_inc")
                m.d.sync += late.eq(Mux(control.perf_clear, 0, increment) if cleared
                                    else increment)
                counters[i] = (names, late, bits, cleared, most)
        if self.perf_ram:
            self._ram_counters(m, counters)
        else:
            for names, increment, bits, cleared, _ in counters:
                value = Signal(bits, name=f"perf_{names[0].removesuffix('_lo')}")
                if cleared:
                    with m.If(control.perf_clear):
                        m.d.sync += value.eq(0)
                    with m.Else():
                        m.d.sync += value.eq(value + increment)
                else:
                    m.d.sync += value.eq(value + increment)
                self._drive(m, names, value)
        return m

    def _drive(self, m, names, value):
        """Drives the RO register(s) ``names`` (32 bits each, low word first) with ``value``."""
        for i, name in enumerate(names):
            m.d.comb += getattr(self.regs, name).eq(value[32 * i:32 * (i + 1)])

    def _ram_counters(self, m, counters):
        """The counters with their high bits in a block RAM (see :class:`Accelerator`).

        Counter ``e`` is ``(high + carry[e]) * 2**own + low``: ``low`` is a flip-flop
        counter of ``own`` bits, enough not to wrap twice between two visits of the updater
        (6 for a counter that counts at most 1 a cycle, else LOW_BITS: 8 for up to 4;
        CYCLES: as many as the RAM word lacks); ``carry[e]`` is set when ``low`` wraps;
        ``high`` is the RAM word, or 0 while ``stale[e]`` (after a reset
        or a PERF_CLEAR: the port then reads entry ``zero``, which always holds 0). One adder
        serves both users of the RAM's read port: a round-robin updater (a read cycle, then
        a write cycle: ``high + carry`` goes back, ``carry`` and ``stale`` clear) and the
        host's reads, which take the port in their AR handshake cycle (the updater waits, and
        drops a write due in that cycle, so the RAM is never read and written in one cycle)
        so that the value is exact in the next cycle, when the bank samples it. A visit takes
        at most 4 cycles (the bank takes a read every 3 at most), so the updater comes back
        to a counter within 4 * 12 cycles: ``low`` (incremented by at most ``most`` a cycle,
        ``most * 48 <= 2**own``) wraps at most once in between.
        """
        control = self.regs.control
        low_bits, ram_width = self.LOW_BITS, self.PERF_RAM_WIDTH
        entry_of = {}  # entry: the register's word offset modulo 16 (CYCLES_HI: 0)
        for index, (names, *_) in enumerate(counters):
            entry_of[index] = self.map[names[0].upper()].offset >> 2 & 15
        assert len(set(entry_of.values())) == len(counters)
        entries = self.PERF_RAM_DEPTH
        assert max(entry_of.values()) < entries
        zero = 1  # an entry that holds 0: CYCLES_HI's slot
        assert zero not in entry_of.values()
        # The RAM is outside, where SOFT_RESET does not reach (a reset read port would need
        # its own output register).
        read = SimpleNamespace(addr=self.perf_r_addr, data=self.perf_r_data)
        write = SimpleNamespace(addr=self.perf_w_addr, data=self.perf_w_data, en=self.perf_w_en)

        # Who reads: the host (its AR handshake) or the updater, at ``index``.
        host = self.csr_read
        host_entry = Cat(self.csr_read_addr[0] & self.csr_read_addr[1:].any(),
                         self.csr_read_addr[1:])  # CYCLES_HI reads entry 0 (CYCLES_LO's)
        index, phase_write = Signal(range(entries)), Signal()
        entry = Signal(range(entries))  # the entry read
        read_entry = Signal(range(entries))  # the entry on ``read.data``
        carry = Signal(entries)
        stale = Signal(entries, init=(1 << entries) - 1)
        clearing = Signal(entries)  # the entry is cleared in this cycle
        m.d.comb += [
            entry.eq(Mux(host, host_entry, index)),
            # A stale entry (or one cleared now) reads the zero entry.
            read.addr.eq(Mux((stale | clearing).bit_select(entry, 1) | self.resetting,
                             zero, entry)),
        ]
        m.d.sync += read_entry.eq(entry)
        high = Signal(ram_width)
        m.d.comb += high.eq(read.data + carry.bit_select(read_entry, 1))
        store = Signal()  # the updater writes ``high`` back at ``index``
        m.d.comb += [store.eq(phase_write & ~host),
                     write.addr.eq(index), write.data.eq(high), write.en.eq(store)]
        with m.If(host):
            m.d.sync += phase_write.eq(0)
        with m.Elif(phase_write):
            m.d.sync += [phase_write.eq(0),
                         index.eq(Mux(index == max(entry_of.values()), 0, index + 1))]
        with m.Else():
            m.d.sync += phase_write.eq(1)

        # The updater writes an entry back at least every `period` cycles.
        period = 4 * (max(entry_of.values()) + 1)
        for i, (names, increment, bits, cleared, most) in enumerate(counters):
            e = entry_of[i]
            # Bits that wrap at most once in a period: 6 or LOW_BITS only (the bank's read
            # multiplexer shares the high bits of counters that place them alike).
            wraps_once = 6 if most * period <= 1 << 6 else low_bits
            assert most * period <= 1 << wraps_once
            own = max(wraps_once, bits - ram_width)
            low = Signal(own, name=f"perf_{names[0].removesuffix('_lo')}_low")
            total = Signal(own + 1)
            m.d.comb += total.eq(low + increment)
            visited = store & (index == e)
            clear = control.perf_clear if cleared else 0
            m.d.comb += clearing[e].eq(clear)
            with m.If(clear):
                m.d.sync += [low.eq(0), carry[e].eq(0), stale[e].eq(1)]
            with m.Else():
                m.d.sync += [low.eq(total[:own]),
                             carry[e].eq(total[own] | (carry[e] & ~visited))]
                with m.If(visited):
                    m.d.sync += stale[e].eq(0)
            self._drive(m, names, Cat(low, high)[:bits])


class Accelerator(wiring.Component):
    """A Tessera accelerator built from ``config``.

    The host programs it over ``csr`` (AXI4-Lite, the registers of
    :func:`hdl.registers.tessera_register_map`): it pushes instructions (:mod:`hdl.isa`) as
    32-bit words into INSN, sets CONTROL.RUN, and waits for STATUS.DONE or the interrupt. The
    accelerator moves its operands and results over ``mem`` (AXI4 manager) with its DMA.
    CONTROL.SOFT_RESET resets everything but the registers, once the DMA is idle (an AXI
    transfer is never cut short): in the cycle it is seen, or at fast clocks
    (``config.fast_clock``) from the next (the reset is registered).

    Performance counters: at slow clocks (``config.fast_clock`` False) each counts its event
    a cycle late (the increments are registered). Flip-flop counters, or with ``perf_ram``
    (default: FPGAs with DSP
    multipliers at slow clocks, i.e. ``tiny``, and counters wider than 8 bits) 6 or 8 low bits
    each (CYCLES 16) in flip-flops and the high bits in one 16 x 32 block RAM (two iCE40 EBR),
    brought up to date round-robin by one adder; a CSR read takes the RAM's read port in its
    AR handshake cycle, so reads are exact and as fast as before (on ``tiny`` 167 LCs fewer,
    the bank's read multiplexer included).

    Parameters
    ----------
    config : TesseraConfig
    insn_queue_depth : int or None
        Instructions the queue holds (default ``config.insn_queue_depth``).
    perf_ram : bool or None
        Counters in a block RAM (see above); ``None``: the default above.

    Members
    -------
    csr : In(AXI4LiteSignature(addr_width=CSR_ADDR_WIDTH))
    mem : Out(dma_axi_signature(config))
    irq : Out(1)
    """

    def __init__(self, config, *, insn_queue_depth=None, perf_ram=None):
        self.config = config
        self.insn_queue_depth = (config.insn_queue_depth if insn_queue_depth is None
                                 else insn_queue_depth)
        if perf_ram is None:
            perf_ram = (not config.fast_clock and config.multiplier == "dsp"
                        and config.perf_counter_width > _Core.LOW_BITS)
        self.perf_ram = perf_ram
        self.register_map = tessera_register_map(config)
        super().__init__({
            "csr": In(AXI4LiteSignature(addr_width=CSR_ADDR_WIDTH)),
            "mem": Out(dma_axi_signature(config)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = AXI4LiteRegisterBank(
            self.register_map, addr_width=CSR_ADDR_WIDTH, late_rresp=not self.config.fast_clock)
        core = _Core(self.config, self.insn_queue_depth, self.perf_ram)
        reset = Signal()
        m.submodules.core = ResetInserter(reset)(core)
        wiring.connect(m, wiring.flipped(self.csr), bank.bus)
        wiring.connect(m, bank.regs, core.regs)
        wiring.connect(m, core.mem, wiring.flipped(self.mem))
        if self.perf_ram:
            # Never read and written in one cycle (see _Core._ram_counters).
            m.submodules.perf_ram = ram = SRAM1R1W(_Core.PERF_RAM_DEPTH, _Core.PERF_RAM_WIDTH,
                                                   collision="any")
            m.d.comb += [core.csr_read.eq(self.csr.arvalid & self.csr.arready),
                         core.csr_read_addr.eq(self.csr.araddr[2:6]), core.resetting.eq(reset),
                         ram.r_addr.eq(core.perf_r_addr), ram.r_en.eq(1),
                         core.perf_r_data.eq(ram.r_data),
                         ram.w_addr.eq(core.perf_w_addr), ram.w_data.eq(core.perf_w_data),
                         ram.w_en.eq(core.perf_w_en)]
        m.d.comb += self.irq.eq(bank.irq)
        # Never reset the DMA in the middle of an AXI transfer. Fast clocks: the reset is
        # registered (it reaches every flip-flop of the core: on the 85F its route alone
        # takes most of a cycle), and so decided a cycle ahead: the DMA is idle and accepts
        # no command in that cycle (the core's ``dma_busy``), so no transfer starts before
        # the reset.
        # Once in reset, it stays while SOFT_RESET does (what the DMA accepts meanwhile is
        # reset with it).
        soft_reset = bank.regs.control.soft_reset
        if self.config.fast_clock:
            m.d.sync += reset.eq(soft_reset & (reset | ~core.dma_busy))
        else:
            m.d.comb += reset.eq(soft_reset & ~core.dma_busy)
        return m

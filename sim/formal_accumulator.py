"""Formal harness: the accumulator against a reference memory, under any input sequence."""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import (
    Array,
    Assert,
    Assume,
    Cover,
    Elaboratable,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)

from hdl.accumulator import Accumulator, acc_read_layout

__all__ = ["AccumulatorProof"]


class AccumulatorProof(Elaboratable):
    """Drives every port of an :class:`Accumulator` with unconstrained values each cycle.

    A reference memory applies each accepted write (a read accepted in cycle t sees the writes
    accepted before t); each accepted read queues what the reference held. Asserted: every
    answer equals the head of that queue (so no answer is wrong, lost, duplicated or made up),
    at most :attr:`Accumulator.read_buffer_depth` reads are outstanding, and the error flag
    is set exactly when an out-of-range address was accepted. Covered: an answer holding the
    sum of two accumulates into one row in consecutive cycles, a store read waiting on a bank
    conflict, and an out-of-range read.

    Where a write's row follows its address (:attr:`Accumulator.row_follows`) the reference
    takes the row in the next cycle, two writes in consecutive cycles are assumed to be into
    different rows (the protocol), and the covered accumulates are two cycles apart.
    ``registered`` is the accumulator's (its bank reads issued from registers, its banks'
    outputs registered: three writes to forward, answers a cycle later).
    """

    def __init__(self, config, registered=False):
        self.config, self.registered = config, registered

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.dut = dut = Accumulator(cfg, registered=self.registered)
        m.d.comb += Assume(ResetSignal() == Initial())
        for port in (dut.write.valid, dut.write.payload, dut.read.valid, dut.read.payload,
                     dut.read_data.ready):
            m.d.comb += port.eq(AnySeq(len(Value.cast(port))))

        answer_layout = acc_read_layout(cfg)
        reference = Array(Signal(answer_layout["row"].shape, name=f"ref_{i}")
                          for i in range(cfg.acc_depth))
        w = dut.write.payload
        w_fire = dut.write.valid & dut.write.ready
        # The write whose row is on the port (row_follows: the one accepted a cycle before).
        r_valid, r_addr, r_accumulate = w_fire & (w.addr < cfg.acc_depth), w.addr, w.accumulate
        if dut.row_follows:
            p_valid, p_addr, p_accumulate = Signal(), Signal.like(w.addr), Signal()
            m.d.sync += [p_valid.eq(r_valid), p_addr.eq(r_addr), p_accumulate.eq(r_accumulate)]
            m.d.comb += Assume(~(w_fire & p_valid & (w.addr == p_addr)))
            r_valid, r_addr, r_accumulate = p_valid, p_addr, p_accumulate
        with m.If(r_valid):
            for n in range(cfg.dim):
                m.d.sync += reference[r_addr][n].eq(
                    w.row[n] + Mux(r_accumulate, reference[r_addr][n], 0))

        queue = Array(Signal(answer_layout, name=f"expected_{i}") for i in range(8))
        head, count = Signal(3), Signal(4)
        r_fire = dut.read.valid & dut.read.ready
        out_fire = dut.read_data.valid & dut.read_data.ready
        in_range = dut.read.payload < cfg.acc_depth
        with m.If(r_fire):
            m.d.sync += [
                queue[(head + count)[:3]].row.eq(Mux(in_range, reference[dut.read.payload], 0)),
                queue[(head + count)[:3]].error.eq(~in_range),
            ]
        m.d.sync += count.eq(count + r_fire - out_fire)
        with m.If(out_fire):
            m.d.sync += head.eq(head + 1)

        seen_error = Signal()
        with m.If((r_fire & ~in_range) | (w_fire & (w.addr >= cfg.acc_depth))):
            m.d.sync += seen_error.eq(1)

        with m.If(~Initial() & ~ResetSignal()):
            m.d.comb += [
                Assert(count <= dut.read_buffer_depth),
                Assert(dut.error == seen_error),
            ]
            with m.If(dut.read_data.valid):
                m.d.comb += [
                    Assert(count > 0),
                    Assert(dut.read_data.payload.as_value() == queue[head].as_value()),
                ]

        # Covers: the interesting cases are reachable (and the design is not stuck in reset).
        last_acc, last_addr = Signal(), Signal.like(w.addr)
        m.d.sync += [last_acc.eq(w_fire & w.accumulate), last_addr.eq(w.addr)]
        if dut.row_follows:  # two cycles apart
            last_acc_2, last_addr_2 = Signal(), Signal.like(w.addr)
            m.d.sync += [last_acc_2.eq(last_acc), last_addr_2.eq(last_addr)]
            last_acc, last_addr = last_acc_2, last_addr_2
        back_to_back = Signal()
        with m.If(w_fire & w.accumulate & last_acc & (w.addr == last_addr)):
            m.d.sync += back_to_back.eq(1)
        m.d.comb += [
            Cover(out_fire & back_to_back & (dut.read_data.payload.row[0] != 0)),
            Cover(dut.read.valid & ~dut.read.ready & (count == 0)),
            Cover(out_fire & dut.read_data.payload.error),
        ]
        return m

"""cocotb testbench for the generated Verilog of the scratchpad and the accumulator.

Parameters in the environment: ``TESSERA_CONFIG`` (JSON), ``TESSERA_MEMORY`` (scratchpad or
accumulator), ``TESSERA_SEED``, ``TESSERA_STALL`` and ``TESSERA_COUNT`` (requests per port).
"""

import os
from functools import partial

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from hdl.accumulator import acc_read_layout, acc_write_layout
from hdl.scratchpad import sp_read_layout, sp_write_layout
from sim.cocotb_run import config_from_env
from sim.cocotb_streams import receive_beats, send_beats, start_clock_and_reset
from sim.model import AccumulatorModel, ScratchpadModel, replay
from sim.streams import idle_cycles
from sim.workload import random_operands


class TB:
    """Clock, reset, the write and read request streams and the answer stream."""

    def __init__(self, dut, config, memory, seed, stall):
        self.dut, self.config, self.stall = dut, config, stall
        self.rng = np.random.default_rng(seed)
        self._idle = partial(idle_cycles, self.rng, stall)
        self.accumulator = memory == "accumulator"
        self.write_layout = (acc_write_layout if self.accumulator else sp_write_layout)(config)
        self.read_layout = (acc_read_layout if self.accumulator else sp_read_layout)(config)
        self.depth = config.acc_depth if self.accumulator else config.sp_depth
        self.cycle = 0
        self.log = []

    async def start(self):
        inputs = ["write__valid", "write__payload", "read__valid", "read__payload",
                  "read_data__ready"]
        if not self.accumulator:  # the scratchpad's second read port stays idle here
            inputs += ["read_b__valid", "read_b__payload", "read_b_data__ready"]
            if hasattr(self.dut, "write_b__valid"):  # and its second write port (held answers)
                inputs += ["write_b__valid", "write_b__payload"]
        await start_clock_and_reset(self.dut, inputs)
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Logs accepted requests per cycle; checks control outputs for X/Z."""
        dut = self.dut
        while True:
            await ReadOnly()
            for name in ("write__ready", "read__ready", "read_data__valid", "error"):
                assert getattr(dut, name).value.is_resolvable, f"{name} X/Z at {self.cycle}"
            if dut.read__valid.value == 1 and dut.read__ready.value == 1:
                self.log.append((self.cycle, "read", dut.read__payload.value.to_unsigned()))
            if dut.write__valid.value == 1 and dut.write__ready.value == 1:
                beat = self.write_layout.from_bits(dut.write__payload.value.to_unsigned())
                accumulate = bool(beat.accumulate) if self.accumulator else False
                self.log.append((self.cycle, "write",
                                 (int(beat.addr), [int(v) for v in beat.row], accumulate)))
            await RisingEdge(dut.clk)
            self.cycle += 1

    async def receive(self, count):
        beats = await receive_beats(self.dut, "read_data", count, self._idle)
        return [([int(v) for v in beat.row], bool(beat.error))
                for beat in map(self.read_layout.from_bits, beats)]

    def addresses(self, count, hot):
        addrs = self.rng.integers(0, self.depth, size=count)
        mask = self.rng.random(count) < 0.4
        addrs[mask] = self.rng.choice(hot, size=int(mask.sum()))
        bad = self.rng.random(count) < 0.03
        addrs[bad] = self.rng.integers(self.depth, 1 << self.config.addr_width,
                                       size=int(bad.sum()))
        return [int(a) for a in addrs]


@cocotb.test()
async def random_traffic_matches_model(dut):
    config = config_from_env()
    memory = os.environ["TESSERA_MEMORY"]
    seed = int(os.environ.get("TESSERA_SEED", "1"))
    stall = float(os.environ.get("TESSERA_STALL", "0"))
    count = int(os.environ.get("TESSERA_COUNT", "500"))
    dut._log.info(f"memory={memory} seed={seed} stall={stall} config={config}")
    tb = TB(dut, config, memory, seed, stall)
    await tb.start()
    hot = [0, 1, tb.depth // 2, tb.depth - 1]
    width = config.acc_width if tb.accumulator else config.act_width
    writes = []
    for addr in tb.addresses(count, hot):
        fields = {"addr": addr,
                  "row": [int(v) for v in random_operands(tb.rng, config.dim, width, True)]}
        if tb.accumulator:
            fields["accumulate"] = int(tb.rng.random() < 0.7)
        writes.append(tb.write_layout.const(fields).as_bits())
    reads = tb.addresses(count, hot)
    cocotb.start_soon(send_beats(dut, "write", writes, tb._idle))
    cocotb.start_soon(send_beats(dut, "read", reads, tb._idle))
    answers = await with_timeout(tb.receive(len(reads)), 40 * count * 10, "ns")
    model = (AccumulatorModel if tb.accumulator else ScratchpadModel)(config)
    want = replay(model, tb.log)
    assert len(want) == len(answers)
    for i, (got, expected) in enumerate(zip(answers, want, strict=True)):
        assert got == expected, f"seed={seed}: first mismatch at read {i}: {got} != {expected}"
    await RisingEdge(dut.clk)
    assert dut.error.value == int(model.error)

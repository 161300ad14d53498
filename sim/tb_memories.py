"""cocotb testbench for the generated Verilog of the scratchpad and the accumulator.

Parameters in the environment: ``TESSERA_CONFIG`` (JSON), ``TESSERA_MEMORY`` (scratchpad or
accumulator), ``TESSERA_SEED``, ``TESSERA_STALL`` and ``TESSERA_COUNT`` (requests per port).
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from hdl.accumulator import acc_read_layout, acc_write_layout
from hdl.scratchpad import sp_read_layout, sp_write_layout
from sim.cocotb_run import config_from_env
from sim.model import AccumulatorModel, ScratchpadModel, replay
from sim.workload import random_operands


class TB:
    """Clock, reset, the write and read request streams and the answer stream."""

    def __init__(self, dut, config, memory, seed, stall):
        self.dut, self.config, self.stall = dut, config, stall
        self.rng = np.random.default_rng(seed)
        self.accumulator = memory == "accumulator"
        self.write_layout = (acc_write_layout if self.accumulator else sp_write_layout)(config)
        self.read_layout = (acc_read_layout if self.accumulator else sp_read_layout)(config)
        self.depth = config.acc_depth if self.accumulator else config.sp_depth
        self.cycle = 0
        self.log = []

    async def start(self):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for name in ("write__valid", "write__payload", "read__valid", "read__payload",
                     "read_data__ready"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
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

    def _idle(self):
        if self.stall and self.rng.random() < self.stall:
            return int(self.rng.integers(1, 4))
        return 0

    async def send(self, prefix, beats):
        valid = getattr(self.dut, f"{prefix}__valid")
        ready = getattr(self.dut, f"{prefix}__ready")
        payload = getattr(self.dut, f"{prefix}__payload")
        for beat in beats:
            for _ in range(self._idle()):
                valid.value = 0
                await RisingEdge(self.dut.clk)
            valid.value = 1
            payload.value = beat
            while True:
                await ReadOnly()
                fired = ready.value == 1
                await RisingEdge(self.dut.clk)
                if fired:
                    break
        valid.value = 0

    async def receive(self, count):
        dut, out = self.dut, []
        while len(out) < count:
            idle = self._idle()
            dut.read_data__ready.value = 0 if idle else 1
            await ReadOnly()
            if not idle and dut.read_data__valid.value == 1:
                if not dut.read_data__payload.value.is_resolvable:
                    dut._log.error(f"X at cycle {self.cycle}: {dut.read_data__payload.value} "
                                   f"after {self.log[-6:]}")
                beat = self.read_layout.from_bits(dut.read_data__payload.value.to_unsigned())
                out.append(([int(v) for v in beat.row], bool(beat.error)))
            await RisingEdge(dut.clk)
        dut.read_data__ready.value = 0
        return out

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
    cocotb.start_soon(tb.send("write", writes))
    cocotb.start_soon(tb.send("read", reads))
    answers = await with_timeout(tb.receive(len(reads)), 40 * count * 10, "ns")
    model = (AccumulatorModel if tb.accumulator else ScratchpadModel)(config)
    want = replay(model, tb.log)
    assert len(want) == len(answers)
    for i, (got, expected) in enumerate(zip(answers, want, strict=True)):
        assert got == expected, f"seed={seed}: first mismatch at read {i}: {got} != {expected}"
    await RisingEdge(dut.clk)
    assert dut.error.value == int(model.error)

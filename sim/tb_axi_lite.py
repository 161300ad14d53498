"""The register bank's golden model, and the cocotb testbench of its generated Verilog.

:class:`RegisterBankModel` is what :class:`hdl.axi_lite.AXI4LiteRegisterBank` answers, access
by access; the Amaranth-simulator tests use it too. The cocotb tests drive the Tessera map's
bank with cocotbext-axi's ``AxiLiteMaster`` (random pauses on all five channels) while a
hardware agent pulses W1C bits, changes RO values and toggles the WO queue's ``full``.
Parameters in the environment: ``TESSERA_CONFIG`` (JSON), ``TESSERA_ADDR_WIDTH``,
``TESSERA_SEED``, ``TESSERA_STALL`` (probability of a pause cycle on each channel) and
``TESSERA_OPS`` (random bus operations).
"""

import itertools
import os
import random

from hdl.axi_lite import AXIResp
from hdl.registers import Access, tessera_register_map

__all__ = ["RegisterBankModel"]


class RegisterBankModel:
    """Register values and bus answers of a register bank.

    ``write`` and ``read`` return what the bus answers; ``hw_set`` is a W1C ``set`` pulse,
    ``ro`` the values the hardware drives into RO registers, ``pushed`` the words each WO
    register has sent out.
    """

    def __init__(self, register_map, addr_width):
        self.map, self.addr_width = register_map, addr_width
        self.values = {r.name: r.reset for r in register_map
                       if r.access in (Access.RW, Access.W1C)}
        self.ro = {r.name: 0 for r in register_map if r.access is Access.RO}
        self.pushed = {r.name: [] for r in register_map if r.access is Access.WO}

    def register(self, addr):
        """The register at byte address ``addr``, or ``None`` (unmapped)."""
        if not 0 <= addr < 1 << self.addr_width:
            return None
        return self.map.at(addr)

    def read(self, addr):
        """``(data, resp)`` of a read of ``addr``."""
        reg = self.register(addr)
        if reg is None:
            return 0, AXIResp.DECERR
        if reg.access is Access.WO:
            return 0, AXIResp.SLVERR
        if reg.access is Access.CONST:
            return reg.reset, AXIResp.OKAY
        if reg.access is Access.RO:
            return self.ro[reg.name] & self.map.mask(reg), AXIResp.OKAY
        return self.values[reg.name], AXIResp.OKAY

    def write(self, addr, data, strb, *, full=False):
        """Applies a write of ``data`` with byte strobes ``strb``; returns the response.
        ``full`` is the WO register's ``full`` input in the cycle the write executes."""
        reg = self.register(addr)
        if reg is None:
            return AXIResp.DECERR
        mask = self.map.mask(reg)
        lanes = sum(0xff << 8 * i for i in range(self.map.word_bytes) if strb >> i & 1)
        if reg.access is Access.RW:
            enable = lanes & mask
            self.values[reg.name] = self.values[reg.name] & ~enable | data & enable
        elif reg.access is Access.W1C:
            self.values[reg.name] &= ~(data & lanes & mask)
        elif reg.access is Access.WO:
            if lanes & mask != mask or full:
                return AXIResp.SLVERR
            self.pushed[reg.name].append(data & ((1 << self.map.width(reg)) - 1))
        else:
            return AXIResp.SLVERR
        return AXIResp.OKAY

    def hw_set(self, name, bits):
        self.values[name] |= bits & self.map.mask(self.map[name])

    @property
    def irq(self):
        if self.map.irq is None:
            return False
        status, enable = self.map.irq
        return bool(self.values[status] & self.values[enable])


# The cocotb testbench. cocotb is imported here, not at the top, so that the Amaranth-simulator
# tests can import the model without it.

try:
    import cocotb
    from cocotb.triggers import Lock, ReadOnly, RisingEdge, with_timeout
except ImportError:  # pragma: no cover
    cocotb = None


def _pauses(rng, probability):
    """An endless pause pattern for a cocotbext-axi channel."""
    return (rng.random() < probability for _ in itertools.count())


class TB:
    """Clock, reset, the AXI4-Lite master, the hardware agent and the checks on every cycle.

    A lock per word address keeps a bus operation and a hardware change of the same register
    from overlapping, so the model knows their order; operations on different registers run
    concurrently. ``full`` of the WO register toggles freely: a WO write may answer either
    way, and the words the hardware saw pushed must be exactly the writes that got OKAY.
    """

    def __init__(self, dut, config, addr_width, seed, stall):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster

        self.dut, self.seed, self.stall = dut, seed, stall
        self.rng = random.Random(seed)
        self.map = tessera_register_map(config)
        self.addr_width = addr_width
        self.model = RegisterBankModel(self.map, addr_width)
        self.locks = {}
        self.cycle = 0
        self.full_toggles = False
        #: Cycles of each situation worth covering (logged; checked under back-pressure).
        self.coverage = dict.fromkeys(("aw_waits_for_w", "w_waits_for_aw", "aw_with_w",
                                       "b_stalled", "r_stalled", "aw_refused", "ar_refused",
                                       "irq"), 0)
        self.seen_pushes = {name: [] for name in self.model.pushed}
        self.bus = AxiLiteBus.from_prefix(dut, "bus", bus_separator="__")
        self.master = AxiLiteMaster(self.bus, dut.clk, dut.rst)
        if stall:
            for channel in (self.master.write_if.aw_channel, self.master.write_if.w_channel,
                            self.master.write_if.b_channel, self.master.read_if.ar_channel,
                            self.master.read_if.r_channel):
                channel.set_pause_generator(_pauses(random.Random(self.rng.random()), stall))

    def lock(self, addr):
        word = addr - addr % self.map.word_bytes
        return self.locks.setdefault(word, Lock(f"word {word:#x}"))

    def hw_port(self, reg, member=None):
        name = f"regs__{reg.hw_name}" + (f"__{member}" if member else "")
        return getattr(self.dut, name)

    async def start(self):
        from sim.cocotb_streams import start_clock_and_reset

        inputs = []
        for reg in self.map:
            if reg.access is Access.RO:
                inputs.append(f"regs__{reg.hw_name}")
            elif reg.access is Access.W1C:
                inputs.append(f"regs__{reg.hw_name}__set")
            elif reg.access is Access.WO:
                inputs.append(f"regs__{reg.hw_name}__full")
        await start_clock_and_reset(self.dut, inputs)
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Every cycle: outputs resolvable; B and R hold (stable) until READY; WO strobes
        only when not full, their data recorded."""
        dut, held = self.dut, {}
        wo = [reg for reg in self.map if reg.access is Access.WO]
        while True:
            await ReadOnly()
            for name in ("awready", "wready", "bvalid", "arready", "rvalid"):
                value = getattr(dut, f"bus__{name}").value
                assert value.is_resolvable, f"bus__{name} is X/Z in cycle {self.cycle}"
            for channel, payload in (("b", ("bresp",)), ("r", ("rresp", "rdata"))):
                valid = getattr(dut, f"bus__{channel}valid").value == 1
                ready = getattr(dut, f"bus__{channel}ready").value == 1
                now = tuple(str(getattr(dut, f"bus__{p}").value) for p in payload)
                if channel in held:
                    assert valid and now == held[channel], (
                        f"cycle {self.cycle}: {channel.upper()} changed before READY: "
                        f"{held[channel]} -> {now if valid else 'not valid'}")
                held.pop(channel, None)
                if valid and not ready:
                    held[channel] = now
            fired = {}
            for channel in ("aw", "w", "ar"):
                valid = getattr(dut, f"bus__{channel}valid").value == 1
                ready = getattr(dut, f"bus__{channel}ready").value == 1
                fired[channel] = valid and ready
                if channel != "w" and valid and not ready:
                    self.coverage[f"{channel}_refused"] += 1
            assert fired["aw"] == fired["w"], f"cycle {self.cycle}: AW and W handshaken apart"
            self.coverage["aw_with_w"] += fired["aw"]
            aw_valid = dut.bus__awvalid.value == 1
            w_valid = dut.bus__wvalid.value == 1
            self.coverage["aw_waits_for_w"] += aw_valid and not w_valid
            self.coverage["w_waits_for_aw"] += w_valid and not aw_valid
            self.coverage["b_stalled"] += "b" in held
            self.coverage["r_stalled"] += "r" in held
            self.coverage["irq"] += dut.irq.value == 1
            for reg in wo:
                if self.hw_port(reg, "strobe").value == 1:
                    assert self.hw_port(reg, "full").value == 0, "WO strobe while full"
                    data = self.hw_port(reg, "data").value
                    assert data.is_resolvable, f"{reg.name} data X/Z with strobe"
                    self.seen_pushes[reg.name].append(data.to_unsigned())
            await RisingEdge(dut.clk)
            self.cycle += 1

    # Bus operations, each checked against the model.

    async def write(self, addr, data):
        """Writes the bytes ``data`` at ``addr`` (within one word) and checks the answer."""
        reg = self.model.register(addr)
        offset = addr % self.map.word_bytes
        async with self.lock(addr):
            answer = await self.master.write(addr, data)
            value = int.from_bytes(data, "little") << 8 * offset
            strb = ((1 << len(data)) - 1) << offset
            full = False
            if self.full_toggles and reg is not None and reg.access is Access.WO:
                full = answer.resp == AXIResp.SLVERR.value   # checked by the pushed words
            want = self.model.write(addr - offset, value, strb, full=full)
        assert answer.resp == want.value, (
            f"seed={self.seed}: write {data.hex()} at {addr:#x} "
            f"({reg.name if reg else 'unmapped'}) answered {answer.resp!r}, want {want.name}")

    async def read(self, addr, length):
        reg = self.model.register(addr)
        offset = addr % self.map.word_bytes
        async with self.lock(addr):
            answer = await self.master.read(addr, length)
            value, want = self.model.read(addr - offset)
        expected = value.to_bytes(self.map.word_bytes, "little")[offset:offset + length]
        where = f"{addr:#x} ({reg.name if reg else 'unmapped'})"
        assert answer.resp == want.value, (
            f"seed={self.seed}: read of {where} answered {answer.resp!r}, want {want.name}")
        if want is AXIResp.OKAY:
            assert answer.data == expected, (
                f"seed={self.seed}: read of {where}: {answer.data.hex()} != {expected.hex()}")

    # The hardware side.

    async def hw_set(self, reg, bits):
        async with self.lock(reg.offset):
            await RisingEdge(self.dut.clk)
            self.hw_port(reg, "set").value = bits & ((1 << self.map.width(reg)) - 1)
            await RisingEdge(self.dut.clk)
            self.hw_port(reg, "set").value = 0
            self.model.hw_set(reg.name, bits)

    async def hw_ro(self, reg, value):
        async with self.lock(reg.offset):
            await RisingEdge(self.dut.clk)
            self.hw_port(reg).value = value & ((1 << self.map.width(reg)) - 1)
            self.model.ro[reg.name] = value

    async def check_irq(self):
        """With IRQ_ENABLE and IRQ_STATUS quiet for two cycles, ``irq`` matches the model."""
        status, enable = (self.map[name] for name in self.map.irq)
        async with self.lock(enable.offset), self.lock(status.offset):
            for _ in range(3):
                await RisingEdge(self.dut.clk)
            await ReadOnly()
            assert self.dut.irq.value == int(self.model.irq), (
                f"seed={self.seed}: irq {self.dut.irq.value} in cycle {self.cycle}, model "
                f"{self.model.irq} (status {self.model.values[status.name]:#x}, enable "
                f"{self.model.values[enable.name]:#x})")
            await RisingEdge(self.dut.clk)

    async def toggle_full(self, probability):
        self.full_toggles = True
        while True:
            await RisingEdge(self.dut.clk)
            for reg in self.map:
                if reg.access is Access.WO:
                    self.hw_port(reg, "full").value = int(self.rng.random() < probability)

    def random_address(self):
        """A mapped register (mostly), a hole in the map, or anywhere in the address space."""
        pick = self.rng.random()
        if pick < 0.75:
            return self.rng.choice(self.map.registers).offset
        if pick < 0.9:
            return self.rng.randrange(0, 2 * self.map.span, self.map.word_bytes)
        return self.rng.randrange(0, 1 << self.addr_width, self.map.word_bytes)

    async def random_worker(self, ops):
        lanes = self.map.word_bytes
        for _ in range(ops):
            word = self.random_address()
            offset = 0 if self.rng.random() < 0.6 else self.rng.randrange(lanes)
            length = (lanes - offset if self.rng.random() < 0.6
                      else self.rng.randint(1, lanes - offset))
            if self.rng.random() < 0.5:
                data = bytes(self.rng.randrange(256) for _ in range(length))
                await self.write(word + offset, data)
            else:
                await self.read(word + offset, length)

    async def hardware_agent(self, done):
        """W1C set pulses, RO changes and irq checks at random times until ``done``."""
        w1c = [reg for reg in self.map if reg.access is Access.W1C]
        ro = [reg for reg in self.map if reg.access is Access.RO]
        while not done():
            for _ in range(self.rng.randrange(1, 20)):
                await RisingEdge(self.dut.clk)
            pick = self.rng.random()
            if pick < 0.4:
                reg = self.rng.choice(w1c)
                await self.hw_set(reg, self.rng.getrandbits(self.map.data_width))
            elif pick < 0.8:
                reg = self.rng.choice(ro)
                await self.hw_ro(reg, self.rng.getrandbits(self.map.data_width))
            elif self.map.irq is not None:
                await self.check_irq()


def _params(dut):
    from sim.cocotb_run import config_from_env

    config = config_from_env()
    addr_width = int(os.environ.get("TESSERA_ADDR_WIDTH", "12"))
    seed = int(os.environ.get("TESSERA_SEED", "1"))
    stall = float(os.environ.get("TESSERA_STALL", "0"))
    ops = int(os.environ.get("TESSERA_OPS", "1000"))
    dut._log.info(f"seed={seed} stall={stall} ops={ops} addr_width={addr_width} "
                  f"config={config}")
    return config, addr_width, seed, stall, ops


if cocotb is not None:
    @cocotb.test()
    async def every_register_after_reset(dut):
        """Every register reads its reset value (CONST: the config's), writes to each kind
        answer as documented, irq follows enable and status."""
        config, addr_width, seed, stall, _ = _params(dut)
        tb = TB(dut, config, addr_width, seed, stall)
        await tb.start()

        async def body():
            for reg in tb.map:
                await tb.read(reg.offset, tb.map.word_bytes)
            for reg in tb.map:
                await tb.write(reg.offset, bytes([0xff] * tb.map.word_bytes))
                await tb.read(reg.offset, tb.map.word_bytes)
            await tb.write(1 << addr_width - 1, b"\x01\x02\x03\x04")   # unmapped
            await tb.read((1 << addr_width) - tb.map.word_bytes, tb.map.word_bytes)
            status, enable = (tb.map[name] for name in tb.map.irq)
            await tb.write(enable.offset, b"\x02\0\0\0")
            await tb.hw_set(status, 0b10)
            await tb.check_irq()
            await tb.write(status.offset, b"\x02\0\0\0")
            await tb.check_irq()

        await with_timeout(body(), 100_000, "ns")
        for name, words in tb.model.pushed.items():
            assert tb.seen_pushes[name] == words, f"{name}: {tb.seen_pushes[name]} != {words}"

    @cocotb.test()
    async def random_concurrent_traffic(dut):
        """Four workers issue random reads and writes (any strobes, mapped and unmapped
        addresses) while the hardware agent acts; every answer is checked on arrival."""
        config, addr_width, seed, stall, ops = _params(dut)
        tb = TB(dut, config, addr_width, seed, stall)
        await tb.start()
        cocotb.start_soon(tb.toggle_full(0.3))
        workers = [cocotb.start_soon(tb.random_worker(ops // 4)) for _ in range(4)]
        agent = cocotb.start_soon(tb.hardware_agent(lambda: all(w.done() for w in workers)))

        async def body():
            for worker in workers:
                await worker
            await agent

        await with_timeout(body(), ops * 200 * 10, "ns")
        for name, words in tb.model.pushed.items():
            assert tb.seen_pushes[name] == words, (
                f"seed={seed}: {name} pushed {len(tb.seen_pushes[name])} words, "
                f"{len(words)} writes answered OKAY")
            dut._log.info(f"{name}: {len(words)} words pushed")
        assert tb.model.pushed["INSN"], "no INSN write was accepted: the test is too short"
        dut._log.info(f"cycles covered: {tb.coverage}")
        if stall:
            missed = [name for name, cycles in tb.coverage.items() if not cycles]
            assert not missed, f"seed={seed}: never seen: {missed}"

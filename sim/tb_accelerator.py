"""cocotb testbench of the whole accelerator (:class:`hdl.top.Accelerator`) on its Verilog.

The host is cocotbext-axi's ``AxiLiteMaster`` on the CSR port, system memory a strict
``AxiRam`` (:class:`sim.tb_dma.CheckedAxiRam`: an access outside the memory fails the test
instead of wrapping) with random back-pressure and read latency. :class:`CocotbDevice` is the
driver backend (:mod:`sw.driver`), so the GEMMs run through the same driver code as on the
functional model.

Settings (environment): ``TESSERA_CONFIG``; ``TESSERA_GEMMS``: a JSON list of
``{"m", "k", "n", "seed", "requant"}``; ``TESSERA_STALL`` (pause probability on every AXI
channel), ``TESSERA_LATENCY`` (read latency in cycles); ``TESSERA_REPORT``: where the JSON
list of results goes.
"""

import json
import os
import random
import time

import numpy as np

from hdl.isa import ErrorCause
from hdl.registers import tessera_register_map
from sw.assembler import to_words

__all__ = ["CocotbDevice"]

CLOCK_NS = 10


def _fields(reg, value):
    return {name.lower(): v for name, v in reg.decode(value).items()}


class CocotbDevice:
    """A driver backend on the simulated accelerator: memory through the AxiRam's backdoor,
    registers and instructions through AXI4-Lite."""

    name = "cocotb"

    def __init__(self, dut, config, *, memory_size, seed=0, stall=0.0, latency=0,
                 timeout_cycles=5_000_000):
        from cocotb.triggers import RisingEdge
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster

        from sim.tb_dma import CheckedAxiRam

        self.dut, self.config = dut, config
        self.map = tessera_register_map(config)
        self.offsets = {reg.name: reg.offset for reg in self.map}
        self.registers = {reg.name: reg for reg in self.map}
        self.rng = random.Random(seed)
        self.latency = latency
        self.timeout_cycles = timeout_cycles
        self.edge = RisingEdge(dut.clk)
        self.csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"),
                                 dut.clk, dut.rst)
        self.ram = CheckedAxiRam(AxiBus.from_prefix(dut, "mem", bus_separator="__"),
                                 dut.clk, dut.rst, base=0, size=memory_size,
                                 rng=np.random.default_rng(seed), cycle=lambda: self.cycle,
                                 latency=latency)
        if stall:
            for channel in (self.ram.read_if.ar_channel, self.ram.read_if.r_channel,
                            self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                            self.ram.write_if.b_channel):
                channel.set_pause_generator(self._pauses(stall))
            for channel in (self.csr.write_if.aw_channel, self.csr.write_if.w_channel,
                            self.csr.write_if.b_channel, self.csr.read_if.ar_channel,
                            self.csr.read_if.r_channel):
                channel.set_pause_generator(self._pauses(stall / 2))

    def _pauses(self, probability):
        rng = random.Random(self.rng.random())
        while True:
            yield rng.random() < probability

    @property
    def cycle(self):
        """Clock cycles since time 0 (from the simulation time: no per-cycle coroutine)."""
        from cocotb.utils import get_sim_time
        return int(get_sim_time("ns")) // CLOCK_NS

    async def start(self):
        """Clock and reset, and (with a read latency) the AR log the AxiRam needs."""
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import ReadOnly

        cocotb.start_soon(Clock(self.dut.clk, CLOCK_NS, unit="ns").start())
        self.dut.rst.value = 1
        for _ in range(3):
            await self.edge
        self.dut.rst.value = 0

        async def log_ar():
            while True:
                await self.edge
                await ReadOnly()
                if self.dut.mem__arvalid.value and self.dut.mem__arready.value:
                    self.ram.ar_cycles.append(self.cycle)
        if self.latency:
            cocotb.start_soon(log_ar())
        for _ in range(2):
            await self.edge

    # --- Registers. ---

    async def read_register(self, name):
        data = await self.csr.read(self.offsets[name], 4)
        return int.from_bytes(data.data, "little")

    async def write_register(self, name, value):
        await self.csr.write(self.offsets[name], value.to_bytes(4, "little"))

    async def control(self, **fields):
        await self.write_register("CONTROL", self.registers["CONTROL"].encode(
            **{k.upper(): v for k, v in fields.items()}))

    async def status(self):
        return _fields(self.registers["STATUS"], await self.read_register("STATUS"))

    async def error(self):
        value = _fields(self.registers["ERROR_CAUSE"], await self.read_register("ERROR_CAUSE"))
        return ErrorCause(value["code"]), value["unit"]

    async def counter(self, name):
        return await self.read_register(name)

    # --- The driver backend. ---

    async def write(self, addr, payload):
        self.ram.write(addr, bytes(payload))

    async def read(self, addr, size):
        return bytes(self.ram.read(addr, size))

    async def push(self, program):
        """Push ``program``'s words, at most INSN_FREE instructions at a time."""
        words = [word for insn in program for word in to_words(insn)]
        while words:
            free = await self.read_register("INSN_FREE")
            for word in words[:4 * free]:
                await self.write_register("INSN", word)
            words = words[4 * free:]

    async def run(self, program):
        """Push ``program`` (it may be longer than the queue: the rest follows as the queue
        drains), run it to END; returns the cycles the accelerator was busy."""
        await self.control(perf_clear=1)
        await self.control(run=1)
        await self.push(program)
        start = self.cycle
        while True:
            status = await self.status()
            if status["error"]:
                cause, unit = await self.error()
                raise DeviceError(cause, unit, await self.read_register("ERROR_ADDR"))
            if status["done"] and not status["busy"]:
                break
            if self.cycle - start > self.timeout_cycles:
                raise TimeoutError(f"no END after {self.timeout_cycles} cycles: {status}")
        await self.control(run=0)
        if self.ram.violations:
            raise AssertionError(f"memory accesses outside the memory: {self.ram.violations}")
        low, high = (await self.read_register("CYCLES_LO"),
                     await self.read_register("CYCLES_HI"))
        return low | high << 32


class DeviceError(Exception):
    """The accelerator stopped with an error."""

    def __init__(self, cause, unit, addr):
        super().__init__(f"{cause.name} (unit {unit}, address {addr:#x})")
        self.cause, self.unit, self.addr = cause, unit, addr


def _settings():
    from sim.cocotb_run import config_from_env
    return (config_from_env(), json.loads(os.environ.get("TESSERA_GEMMS", "[]")),
            float(os.environ.get("TESSERA_STALL", "0")),
            int(os.environ.get("TESSERA_LATENCY", "0")))


def _memory_size(config, gemms):
    from sw.compiler import plan_gemm
    end = max([plan_gemm(config, g["m"], g["k"], g["n"], requant=g["requant"]).end_addr
               for g in gemms] + [1 << 12])
    return 1 << (end - 1).bit_length()


try:
    import cocotb
except ImportError:  # the Amaranth-side tests import this module without cocotb
    cocotb = None

if cocotb is not None:
    @cocotb.test()
    async def gemms_match_golden(dut):
        """Every GEMM of TESSERA_GEMMS end to end, compared with the golden model."""
        from sw.driver import Driver, gemm_operands, golden_gemm

        config, gemms, stall, latency = _settings()
        seed = gemms[0]["seed"] if gemms else 0
        device = CocotbDevice(dut, config, memory_size=_memory_size(config, gemms),
                              seed=seed, stall=stall, latency=latency)
        await device.start()
        driver = Driver(device)
        results = []
        for gemm in gemms:
            a, w, params = gemm_operands(gemm)
            started = time.monotonic()
            result = await driver.gemm(a, w, params)
            wall_s = time.monotonic() - started
            want = golden_gemm(config, a, w, params)
            report = dict(gemm, match=bool(np.array_equal(result.output, want)),
                          cycles=result.cycles, macs=result.macs,
                          utilization=result.utilization(config),
                          exec_cycles=await device.counter("EXEC_CYCLES"),
                          exec_busy=await device.counter("EXEC_BUSY"),
                          stall_dependency=await device.counter("STALL_DEPENDENCY"),
                          stall_memory=await device.counter("STALL_MEMORY"),
                          wall_s=wall_s)
            if not report["match"]:
                row, col = (int(v) for v in np.argwhere(result.output != want)[0])
                report["first_mismatch"] = {"row": row, "column": col,
                                            "expected": int(want[row, col]),
                                            "got": int(result.output[row, col])}
            dut._log.info(f"{report}")
            results.append(report)
        with open(os.environ["TESSERA_REPORT"], "w") as file:
            json.dump(results, file)


def error_programs(config):
    """(name, program or raw words, the expected cause, AXI errors to inject) for every error
    cause; each program is cut short by its error."""
    from hdl.isa import Opcode
    from sw.assembler import Instruction

    def load(sp_addr=0, rows=1, dram_addr=0, dram_stride=0, **flags):
        return Instruction(Opcode.LOAD, dict(sp_addr=sp_addr, rows=rows, dram_addr=dram_addr,
                                             dram_stride=dram_stride), **flags)

    def exec_(act_addr=0, acc_addr=0, rows=1, **flags):
        return Instruction(Opcode.EXEC, dict(weight_addr=0, act_addr=act_addr,
                                             acc_addr=acc_addr, rows=rows, preload=1,
                                             accumulate=0), **flags)

    def store(dest=0x400, **flags):
        return Instruction(Opcode.STORE, dict(acc_addr=0, rows=1, dest=dest, dram_stride=0,
                                              mode=1, to_sp=0), **flags)

    end = Instruction(Opcode.END)
    return [
        ("undefined opcode", [0x5, 0, 0, 0], ErrorCause.UNDEFINED_OPCODE, {}),
        ("zero rows", [load(rows=0), end], ErrorCause.MALFORMED, {}),
        ("scratchpad range", [load(sp_addr=config.sp_depth - 1, rows=2), end],
         ErrorCause.SP_RANGE, {}),
        ("accumulator range", [exec_(acc_addr=config.acc_depth), end],
         ErrorCause.ACC_RANGE, {}),
        ("misaligned", [load(dram_addr=2), end], ErrorCause.DMA_ALIGN, {}),
        ("read error", [load(rows=4, dram_addr=0x100, dram_stride=0x40), end],
         ErrorCause.DMA_READ, {0x180: "SLVERR"}),
        ("write error", [exec_(), store(dest=0x800, push_prev=False), end],
         ErrorCause.DMA_WRITE, {0x800: "DECERR"}),
        ("token underflow", [load(), exec_(pop_prev=True), end],
         ErrorCause.TOKEN_UNDERFLOW, {}),
    ]


if cocotb is not None:
    @cocotb.test()
    async def errors_stop_cleanly(dut):
        """Every error cause: the accelerator stops with it, goes idle (nothing hangs), and
        after SOFT_RESET runs a GEMM correctly. Runs when TESSERA_ERRORS is set."""
        from cocotbext.axi import AxiResp

        from sw.driver import Driver, golden_gemm, random_gemm

        if not os.environ.get("TESSERA_ERRORS"):
            return
        config, _, stall, latency = _settings()
        device = CocotbDevice(dut, config, memory_size=1 << 16, seed=1, stall=stall,
                              latency=latency)
        await device.start()
        insn_queue = await device.read_register("INSN_FREE")

        async def wait_for(condition, what, limit=20_000):
            start = device.cycle
            while True:
                status = await device.status()
                if condition(status):
                    return status
                assert device.cycle - start < limit, f"{what}: still {status}"

        async def soft_reset():
            await device.control(soft_reset=1)
            await device.control(soft_reset=0)
            status = await device.status()
            assert not status["error"] and not status["busy"], status

        cases = error_programs(config)
        # A push into a full queue: more words than it holds, with RUN low.
        cases.append(("queue full", [0] * (4 * insn_queue + 1), ErrorCause.QUEUE_FULL, {}))
        for name, program, cause, errors in cases:
            await soft_reset()
            device.ram.errors = {addr: getattr(AxiResp, kind) for addr, kind in errors.items()}
            words = program if isinstance(program[0], int) else [
                word for insn in program for word in to_words(insn)]
            if cause != ErrorCause.QUEUE_FULL:
                await device.control(run=1)
            for word in words:
                await device.write_register("INSN", word)
            await wait_for(lambda s: s["error"], f"{name}: no error")
            got, unit = await device.error()
            assert got == cause, f"{name}: {got.name}, want {cause.name}"
            queued = cause == ErrorCause.QUEUE_FULL  # those stay queued until the reset
            await wait_for(lambda s, queued=queued: not s["busy"] or queued,
                           f"{name}: never idle")
            irq = _fields(device.registers["IRQ_STATUS"],
                          await device.read_register("IRQ_STATUS"))
            assert irq["error"], f"{name}: IRQ_STATUS.ERROR not set"
            await device.write_register("IRQ_STATUS", 0b11)
            await device.control(run=0)
            dut._log.info(f"{name}: {got.name} (unit {unit}), idle")
        device.ram.errors = {}
        assert not device.ram.violations, device.ram.violations
        await soft_reset()
        rng = np.random.default_rng(7)
        a, w = random_gemm(rng, 9, 13, 6)
        result = await Driver(device).gemm(a, w)
        assert np.array_equal(result.output, golden_gemm(config, a, w)), "no recovery"


def compute_phase_program(config, tiles, rows):
    """Operands on chip: a weight tile and ``rows`` activation rows loaded into each
    scratchpad half once, then ``tiles`` EXECs alternating between the halves (each with a
    preload), accumulating into one block of accumulator rows, then END. The EXEC unit never
    waits for memory: EXEC_CYCLES / EXEC_BUSY is the array's utilization while computing."""
    from hdl.isa import Opcode, row_bytes
    from sw.assembler import Instruction

    dim, half = config.dim, config.sp_depth // 2
    size = row_bytes(config)
    program = []
    for h in range(2):
        program.append(Instruction(Opcode.LOAD, dict(
            sp_addr=h * half, rows=dim + rows, dram_addr=0, dram_stride=size),
            push_next=h == 1))
    for t in range(tiles):
        base = (t % 2) * half
        program.append(Instruction(Opcode.EXEC, dict(
            weight_addr=base, act_addr=base + dim, acc_addr=0, rows=rows, preload=1,
            accumulate=int(t > 0)), pop_prev=t == 0))
    program.append(Instruction(Opcode.END))
    return program


if cocotb is not None:
    @cocotb.test()
    async def compute_phase(dut):
        """Runs :func:`compute_phase_program` when TESSERA_COMPUTE ("tiles,rows") is set and
        reports EXEC_CYCLES and EXEC_BUSY."""
        if not os.environ.get("TESSERA_COMPUTE"):
            return
        config, _, _, _ = _settings()
        tiles, rows = (int(v) for v in os.environ["TESSERA_COMPUTE"].split(","))
        device = CocotbDevice(dut, config, memory_size=1 << 16)
        await device.start()
        cycles = await device.run(compute_phase_program(config, tiles, rows))
        report = {"tiles": tiles, "rows": rows, "cycles": cycles,
                  "exec_cycles": await device.counter("EXEC_CYCLES"),
                  "exec_busy": await device.counter("EXEC_BUSY")}
        assert report["exec_cycles"] == tiles * rows, report
        dut._log.info(f"{report}")
        with open(os.environ["TESSERA_REPORT"], "w") as file:
            json.dump(report, file)

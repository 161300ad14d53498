"""cocotb testbench of ``tt_um_tessera`` (:class:`hdl.tt_um_tessera.TinyTapeoutTop`) on its
generated Verilog, through the Tiny Tapeout pins only: SPI bit-banged on ``ui_in`` /
``uo_out`` by :class:`SpiTransport`, under ``Driver(LinkBackend(...))``, the same driver code
as on a board.

Settings (environment): ``TESSERA_CONFIG``; ``TESSERA_GEMMS`` (a JSON list of
``{"m", "k", "n", "seed", "requant"}``) for ``gemms_match_golden``; ``TT_FAULTS`` set: the
corruption test runs; ``TT_ERRORS`` set: the accelerator-error test runs; ``TT_HALF``: SCK
half-period in clock cycles (default 4: f_SCK = f_clk / 8, the documented limit).
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from hdl.host_link import FILL, Command
from hdl.tt_um_tessera import PINS
from sim.corrupting_transport import CorruptingTransport
from sw.link import AcceleratorError, LinkBackend, Transport

__all__ = ["SpiTransport"]

CLOCK_NS = 10
_UI = {name: bit for bit, name in enumerate(PINS["ui"]) if name}
_UO = {name: bit for bit, name in enumerate(PINS["uo"]) if name}


class SpiTransport(Transport):
    """An SPI host (mode 0, MSB first) on the DUT's ``ui_in`` / ``uo_out`` pins; SCK is high
    and low for ``half`` clock cycles each; one transaction per chip select."""

    def __init__(self, dut, half=4):
        self.dut, self.half = dut, half
        self.pins = 1 << _UI["SPI_CS_N"]

    def _set(self, name, value):
        bit = 1 << _UI[name]
        self.pins = self.pins | bit if value else self.pins & ~bit
        self.dut.ui_in.value = self.pins

    async def _wait(self, halves=1):
        await ClockCycles(self.dut.clk, self.half * halves)

    async def _byte(self, value):
        got = 0
        for bit in reversed(range(8)):
            self._set("SPI_SCK", 0)
            self._set("SPI_MOSI", value >> bit & 1)
            await self._wait()
            got = got << 1 | (int(self.dut.uo_out.value) >> _UO["SPI_MISO"] & 1)
            self._set("SPI_SCK", 1)
            await self._wait()
        return got

    async def begin(self):
        self._set("SPI_CS_N", 0)
        await self._wait()

    async def send(self, data):
        for byte in data:
            await self._byte(byte)

    async def receive(self):
        return await self._byte(FILL)

    async def end(self):
        self._set("SPI_SCK", 0)
        await self._wait()
        self._set("SPI_CS_N", 1)
        await self._wait(2)


async def start(dut):
    """Clock; every input driven from time 0 (Icarus); reset through ``rst_n``."""
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.ena.value = 1
    dut.ui_in.value = 1 << _UI["SPI_CS_N"]
    dut.uio_in.value = 0
    dut.rst_n.value = 0
    await ClockCycles(dut.clk, 5)
    dut.rst_n.value = 1
    await ClockCycles(dut.clk, 5)


def _settings():
    from sim.cocotb_run import config_from_env
    return (config_from_env(), json.loads(os.environ.get("TESSERA_GEMMS", "[]")),
            int(os.environ.get("TT_HALF", "4")))


def _pin(dut, name):
    return int(dut.uo_out.value) >> _UO[name] & 1


async def _gemm(dut, driver, gemm, config):
    from sw.driver import first_mismatch, gemm_operands, golden_gemm

    a, w, params = gemm_operands(gemm)
    result = await driver.gemm(a, w, params)
    want = golden_gemm(config, a, w, params)
    context = f"{gemm} (seed {gemm['seed']})"
    mismatch = first_mismatch(result.output, want)
    if mismatch:
        raise AssertionError(f"{context}: first mismatch {mismatch}")
    retired = await driver.backend.read_register("INSN_COUNT")
    assert retired == result.instructions, f"{context}: {retired} instructions retired, " \
        f"{result.instructions} pushed"
    dut._log.info(f"{context}: match, {result.cycles} cycles, {result.instructions} "
                  f"instructions, link {driver.backend.stats}")
    return result


@cocotb.test()
async def gemms_match_golden(dut):
    """Every GEMM of TESSERA_GEMMS through the SPI pins, compared with the golden model;
    the IRQ pin follows IRQ_STATUS.DONE."""
    from sw.driver import Driver

    config, gemms, half = _settings()
    if not gemms:
        return
    await start(dut)
    backend = LinkBackend(config, SpiTransport(dut, half))
    info = await backend.connect()
    dut._log.info(f"link: {info}")
    assert int(dut.uio_oe.value) == 0 and int(dut.uio_out.value) == 0
    await backend.write_register("IRQ_ENABLE", 0b01)
    driver = Driver(backend)
    for gemm in gemms:
        await _gemm(dut, driver, gemm, config)
        assert _pin(dut, "IRQ") == 1, "IRQ pin low after a GEMM with IRQ_ENABLE.DONE"
        await backend.write_register("IRQ_STATUS", 0b11)
        await ClockCycles(dut.clk, 2)
        assert _pin(dut, "IRQ") == 0, "IRQ pin still high after IRQ_STATUS was cleared"
    assert backend.stats["retries"] == 0, backend.stats


@cocotb.test()
async def link_recovers_from_corruption(dut):
    """A GEMM while request and reply frames are corrupted: a memory write's payload, an
    instruction push, a STATUS poll; the reply of an instruction push (executed, reply lost:
    the retry must not push it twice) and of a memory read. The result is golden."""
    from sw.driver import Driver

    if not os.environ.get("TT_FAULTS"):
        return
    config, _, half = _settings()
    seed = 21
    dut._log.info(f"seed={seed}")
    await start(dut)

    def command(name):
        return lambda request: request[0] == getattr(Command, name).value

    def csr(name, offset):
        return lambda request: request[0] == getattr(Command, name).value and \
            int.from_bytes(request[2:6], "little") == offset

    transport = CorruptingTransport(
        SpiTransport(dut, half), random.Random(seed),
        request_faults=[(3, command("MEM_WRITE")), (5, command("CSR_WRITE_FIXED")),
                        (5, csr("CSR_READ", 0x24))],
        reply_faults=[(5, command("CSR_WRITE_FIXED")), (20, command("CSR_WRITE_FIXED")),
                      (5, command("MEM_READ")), (5, csr("CSR_READ", 0x24))])
    backend = LinkBackend(config, transport)
    driver = Driver(backend)
    await _gemm(dut, driver, dict(m=2, k=3, n=5, seed=seed, requant=True), config)
    dut._log.info(f"faults: {transport.fired}; retries: {backend.problems}")
    assert len(transport.fired) == 7, transport.fired
    assert backend.stats["retries"] == 7, backend.stats
    await _gemm(dut, driver, dict(m=1, k=1, n=1, seed=seed + 1, requant=False), config)


@cocotb.test()
async def accelerator_error_is_reported(dut):
    """A LOAD outside the RAM: the RAM answers DECERR, run() raises DMA_READ with the address;
    after SOFT_RESET a GEMM is right. Bad link requests raise without retries."""
    from hdl.isa import ErrorCause, Opcode
    from sw.assembler import Instruction
    from sw.driver import Driver
    from sw.link import LinkStatusError

    if not os.environ.get("TT_ERRORS"):
        return
    config, _, half = _settings()
    await start(dut)
    backend = LinkBackend(config, SpiTransport(dut, half))
    program = [Instruction(Opcode.LOAD, dict(sp_addr=0, rows=1, dram_addr=0x1000,
                                             dram_stride=0)),
               Instruction(Opcode.END)]
    try:
        await backend.run(program)
    except AcceleratorError as error:
        assert error.cause == ErrorCause.DMA_READ and error.addr == 0x1000, error
        dut._log.info(f"raised: {error}")
    else:
        raise AssertionError("a LOAD outside the RAM did not raise")
    await backend.control(soft_reset=1)
    await backend.control(soft_reset=0)
    for request, status in [(lambda: backend.read(backend.info.ram_bytes - 2, 4), "BAD_ADDRESS"),
                            (lambda: backend.read_register("INSN"), "BUS_ERROR")]:
        try:
            await request()
        except LinkStatusError as error:
            assert error.status.name == status, error
        else:
            raise AssertionError(f"no {status}")
    await _gemm(dut, Driver(backend), dict(m=3, k=2, n=2, seed=30, requant=False), config)
    assert backend.stats["retries"] == 0, backend.stats

"""The LOAD unit in the Amaranth simulator against the functional model's LOAD."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.config import TesseraConfig, preset
from hdl.isa import ErrorCause, Opcode, row_bytes
from hdl.load_unit import LoadUnit
from sim.functional import AcceleratorModel, SystemMemory
from sim.streams import idle_cycles
from sw.assembler import Instruction, encode

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6
MEMORY = 1 << 14


def load(sp_addr, rows, dram_addr, dram_stride):
    return Instruction(Opcode.LOAD, dict(sp_addr=sp_addr, rows=rows, dram_addr=dram_addr,
                                         dram_stride=dram_stride))


def run_load_unit(config, program, memory, *, seed, stall=0.0, error_addr=None,
                  cycles=20_000):
    """Returns (the unit, scratchpad rows written {addr: row}, done pulses, DMA commands,
    the final error cause)."""
    dut = LoadUnit(config)
    rng = np.random.default_rng(seed)
    beat_bytes = config.bus_data_width // 8
    written, done, commands, cause = {}, [0], [], [ErrorCause.NONE]

    async def instructions(ctx):
        """Offers ``program`` in order, cycle by cycle (it runs in the background: a unit
        stopped by an error never takes the rest)."""
        queue = [encode(insn) for insn in program]
        offered = False
        async for _, _, ready in ctx.tick().sample(dut.ctl.insn.ready):
            if offered and ready:
                queue.pop(0)
            offered = bool(queue) and not idle_cycles(rng, stall)
            ctx.set(dut.ctl.insn.valid, offered)
            if offered:
                ctx.set(dut.ctl.insn.payload, queue[0])

    async def dma(ctx):
        """A DMA read engine: each command's beats in order, ``error`` from error_addr on.
        Written cycle by cycle (no waiting inside a transfer), as it runs in the background."""
        beats, offer = [], None
        async for _, _, cmd_valid, cmd_ready, cmd, data_ready in ctx.tick().sample(
                dut.dma_cmd.valid, dut.dma_cmd.ready, dut.dma_cmd.payload, dut.dma_data.ready):
            if offer is not None and data_ready:
                beats.pop(0)
            if cmd_valid and cmd_ready:
                commands.append(cmd)
                failing = False
                for r in range(cmd.rows):
                    for b in range(cmd.row_beats):
                        addr = cmd.addr + r * cmd.stride + b * beat_bytes
                        failing |= addr == error_addr or addr + beat_bytes > MEMORY
                        data = 0 if failing else int.from_bytes(
                            memory.read(addr, beat_bytes), "little")
                        beats.append({"data": data, "row_last": b == cmd.row_beats - 1,
                                      "last": r == cmd.rows - 1 and b == cmd.row_beats - 1,
                                      "error": failing})
            offer = beats[0] if beats and not idle_cycles(rng, stall) else None
            ctx.set(dut.dma_data.valid, offer is not None)
            if offer is not None:
                ctx.set(dut.dma_data.payload, offer)
            ctx.set(dut.dma_cmd.ready, not idle_cycles(rng, stall))

    async def scratchpad(ctx):
        async for _, _, valid, ready, beat in ctx.tick().sample(
                dut.sp_write.valid, dut.sp_write.ready, dut.sp_write.payload):
            if valid and ready:
                written[int(beat.addr)] = [int(v) for v in beat.row]
            ctx.set(dut.sp_write.ready, not idle_cycles(rng, stall))

    async def monitor(ctx):
        """Counts done pulses; checks that no more instructions are taken and not done than
        ``max_outstanding`` (the dispatcher's cap on the unit)."""
        taken = 0
        async for _, _, pulse, error, valid, ready in ctx.tick().sample(
                dut.ctl.done, dut.ctl.error, dut.ctl.insn.valid, dut.ctl.insn.ready):
            done[0] += pulse
            cause[0] = error
            taken += valid and ready
            assert taken - done[0] <= dut.max_outstanding, \
                f"seed={seed}: {taken - done[0]} instructions outstanding"

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    for bench in (instructions, dma, scratchpad, monitor):
        sim.add_testbench(bench, background=True)
    sim.run_until(CLOCK * cycles)
    return dut, written, done[0], commands, cause[0]


def model_rows(config, program, memory):
    model = AcceleratorModel(config, memory)
    cause, _ = model.execute_program(program)
    return model, cause


def random_memory(rng):
    memory = SystemMemory(MEMORY)
    memory.write(0, rng.integers(0, 256, size=MEMORY, dtype=np.uint8).tobytes())
    return memory


def random_loads(config, rng, count):
    beat = config.bus_data_width // 8
    size = row_bytes(config)
    program = []
    for _ in range(count):
        rows = int(rng.choice([1, 2, config.dim, int(rng.integers(1, 40))]))
        sp_addr = int(rng.integers(0, config.sp_depth - rows + 1))
        stride = int(rng.choice([size, size * int(rng.integers(1, 9)), 0]))
        top = MEMORY - (rows - 1) * stride - size
        dram_addr = int(rng.integers(0, top // beat)) * beat
        program.append(load(sp_addr, rows, dram_addr, stride))
    return program


@pytest.mark.parametrize("config", [preset("tiny"), preset("small"), preset("large"),
                                    TesseraConfig(name="dim16-bus32", dim=16)],
                         ids=lambda c: c.name)
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_loads_match_model(config, stall):
    seed = 60 + config.dim + int(10 * stall)
    print(f"seed={seed} config={config.name} stall={stall}")
    rng = np.random.default_rng(seed)
    memory = random_memory(rng)
    program = random_loads(config, rng, 12)
    _, written, done, _, cause = run_load_unit(config, program, memory, seed=seed,
                                               stall=stall)
    assert cause == ErrorCause.NONE
    # Later loads may overwrite rows of earlier ones: compare the final contents.
    model, model_cause = model_rows(config, program, memory)
    assert model_cause == ErrorCause.NONE
    touched = {insn.sp_addr + r for insn in program for r in range(insn.rows)}
    for addr in sorted(touched):
        want = model._lanes(model.sp[addr:addr + 1], True)[0].tolist()
        assert written.get(addr) == want, f"seed={seed}: scratchpad row {addr}"
    assert done == len(program)


@pytest.mark.parametrize("insn, cause", [
    (load(0, 0, 0, 4), ErrorCause.MALFORMED),
    (load(510, 3, 0, 4), ErrorCause.SP_RANGE),
    (load(0, 1, 2, 4), ErrorCause.DMA_ALIGN),
    (load(0, 2, 0, 6), ErrorCause.DMA_ALIGN),
])
def test_checks_stop_the_unit(insn, cause):
    """A failing check: the cause is latched, nothing is written, no done, and the next
    instruction is not taken."""
    config = preset("tiny")
    memory = random_memory(np.random.default_rng(1))
    _, model_cause = model_rows(config, [insn], memory)
    assert model_cause == cause
    _, written, done, commands, got = run_load_unit(
        config, [insn, load(0, 1, 0, 4)], memory, seed=1, cycles=300)
    assert (written, done, commands, got) == ({}, 0, [], cause)


def test_dma_error_mid_transfer():
    """An error beat in the middle: rows before it are written, none after (not even of the
    next LOAD, whose command may already be out); no done; nothing hangs."""
    config = preset("tiny")
    memory = random_memory(np.random.default_rng(2))
    program = [load(0, 10, 0x100, 4), load(20, 4, 0, 4)]
    _, written, done, commands, cause = run_load_unit(config, program, memory, seed=2,
                                                      error_addr=0x100 + 4 * 6, stall=0.2)
    assert cause == ErrorCause.DMA_READ
    assert sorted(written) == list(range(6)) and done == 0
    assert len(commands) <= 2

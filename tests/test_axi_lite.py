"""Register maps, their generated host views, and the AXI4-Lite register bank in the Amaranth
simulator (every access kind, byte strobes, channel orderings, back-pressure, errors, irq),
checked against :class:`sim.tb_axi_lite.RegisterBankModel`."""

import random
import re
import subprocess

import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hdl.axi_lite import AXI4LiteRegisterBank, AXI4LiteSignature, AXIResp
from hdl.config import PRESETS, TesseraConfig, preset
from hdl.registers import (
    REGMAP_VERSION,
    TESSERA_ID,
    Access,
    Field,
    Register,
    RegisterMap,
    tessera_register_map,
)
from sim.tb_axi_lite import RegisterBankModel
from sw.regmap import c_header, host_constants, markdown_table, python_module

CLOCK = 1e-6

#: Every access kind, fields with gaps and in several byte lanes, a hole at 0x18.
TEST_MAP = RegisterMap("TEST", [
    Register("SCRATCH", 0x00, Access.RW, 0xdeadbeef, "A whole word."),
    Register("MODE", 0x04, Access.RW, 0x500, "Two fields with a gap.",
             (Field("A", 0, 4), Field("B", 8, 5))),
    Register("HWVAL", 0x08, Access.RO, 0, "From the hardware."),
    Register("MAGIC", 0x0C, Access.CONST, 0xc0ffee00, "A constant."),
    Register("EVENTS", 0x10, Access.W1C, 0x1, "Sticky events.",
             (Field("X", 0), Field("Y", 9), Field("Z", 31))),
    Register("EVENTS_EN", 0x14, Access.RW, 0, "Interrupt enables.",
             (Field("X", 0), Field("Y", 9), Field("Z", 31))),
    Register("PUSH", 0x1C, Access.WO, 0, "A queue of words."),
    Register("PUSH_BYTE", 0x20, Access.WO, 0, "A queue of bytes (lane 1).",
             (Field("V", 8, 8),)),
], irq=("EVENTS", "EVENTS_EN"), description="test map")
TEST_ADDR_WIDTH = 8


def raw(port):
    return Value.cast(port)


# Register maps.

def _reg(name="R", offset=0, access=Access.RW, reset=0, fields=()):
    return Register(name, offset, access, reset, "", fields)


MAP_ERRORS = [
    (lambda: _reg("r"), ValueError,
     r"^Register name must be an upper-case identifier \(\[A-Z\]\[A-Z0-9_\]\*\), not 'r'$"),
    (lambda: _reg(offset=-4), ValueError,
     r"^Register R offset must be an integer of at least 0, not -4$"),
    (lambda: _reg(access="RW"), TypeError, r"^Register R access must be an Access, not 'RW'$"),
    (lambda: _reg(fields=(Field("A", 0, 4), Field("A", 8))), ValueError,
     r"^Register R has two fields named A$"),
    (lambda: _reg(fields=(Field("A", 0, 4), Field("B", 3))), ValueError,
     r"^Register R field B \[3\] overlaps another field$"),
    (lambda: _reg(reset=0x10, fields=(Field("A", 0, 4),)), ValueError,
     r"^Register R reset value 0x10 sets bits outside its fields \(mask 0xf\)$"),
    (lambda: _reg(access=Access.WO, reset=1), ValueError,
     r"^Register R is write-only \(no state\): its reset value must be 0, not 0x1$"),
    (lambda: Field("A", 0, 0), ValueError,
     r"^Field A width must be an integer of at least 1, not 0$"),
    (lambda: RegisterMap("M", [_reg("A"), _reg("A", 4)]), ValueError,
     r"^Register name A is used twice$"),
    (lambda: RegisterMap("M", [_reg("A", 8), _reg("B", 8)]), ValueError,
     r"^Register B at offset 0x8 overlaps register A$"),
    (lambda: RegisterMap("M", [_reg("A", 6)]), ValueError,
     r"^Register A offset 0x6 is not a multiple of 4 bytes$"),
    (lambda: RegisterMap("M", [_reg("A", 4)], data_width=64), ValueError,
     r"^Register A offset 0x4 is not a multiple of 8 bytes$"),
    (lambda: RegisterMap("M", [_reg("A", reset=1 << 32)]), ValueError,
     r"^Register A reset value 0x100000000 does not fit 32 bits$"),
    (lambda: RegisterMap("M", [_reg("A", fields=(Field("F", 30, 4),))]), ValueError,
     r"^Register A field F \[33:30\] does not fit 32 bits$"),
    (lambda: RegisterMap("M", [], data_width=16), ValueError,
     r"^Register map data_width must be 32 or 64, not 16$"),
    (lambda: RegisterMap("M", ["A"]), TypeError,
     r"^Register map entries must be Register objects, not 'A'$"),
    (lambda: RegisterMap("M", [_reg("S", 0, Access.W1C), _reg("E", 4)], irq=("S", "X")),
     ValueError, r"^Register map irq names register X, which is not in the map$"),
    (lambda: RegisterMap("M", [_reg("S", 0), _reg("E", 4)], irq=("S", "E")), ValueError,
     r"^Register map irq register S must be W1C, not RW$"),
    (lambda: AXI4LiteRegisterBank(TEST_MAP, addr_width=5), ValueError,
     r"^addr_width must be 6 to 64 for register map TEST, not 5$"),
    (lambda: AXI4LiteRegisterBank(TEST_MAP, addr_width="8"), TypeError,
     r"^addr_width must be an integer, not '8'$"),
    (lambda: AXI4LiteRegisterBank([_reg()]), TypeError,
     r"^register_map must be a RegisterMap, not \[.*\]$"),
    (lambda: AXI4LiteSignature(addr_width=8, data_width=16), ValueError,
     r"^AXI4-Lite data_width must be 32 or 64, not 16$"),
    (lambda: AXI4LiteSignature(addr_width=0), ValueError,
     r"^AXI4-Lite addr_width must be a positive integer, not 0$"),
    (lambda: AXI4LiteSignature(addr_width=8, data_width=32.0), TypeError,
     r"^AXI4-Lite data_width must be an integer, not 32.0$"),
    (lambda: Register(5, 0, Access.RW), TypeError, r"^Register name must be a string, not 5$"),
    (lambda: _reg("SIGNATURE"), ValueError, r"^Register name SIGNATURE is reserved: the "
                                            r"hardware port would be the interface's "
                                            r"'signature'$"),
    (lambda: Register("R", "0", Access.RW), TypeError,
     r"^Register R offset must be an integer, not '0'$"),
    (lambda: Register("R", 0, Access.RW, description=None), TypeError,
     r"^Register R description must be a string, not None$"),
    (lambda: Register("R", 0, Access.RW, fields=("A",)), TypeError,
     r"^Register R fields must be Field objects, not 'A'$"),
    (lambda: Field("A", 0, description=3), TypeError,
     r"^Field A description must be a string, not 3$"),
    (lambda: RegisterMap("M", [], data_width="32"), TypeError,
     r"^Register map data_width must be an integer, not '32'$"),
    (lambda: RegisterMap("M", [_reg("S", 0, Access.W1C)], irq="S"), TypeError,
     r"^Register map irq must be a \(status, enable\) pair of register names, not 'S'$"),
]


@pytest.mark.parametrize("build, error, message", MAP_ERRORS,
                         ids=[f"error{i}" for i in range(len(MAP_ERRORS))])
def test_map_errors(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_register_fields():
    mode = TEST_MAP["MODE"]
    assert mode.encode(A=3, B=0x1f) == 0x1f03
    assert mode.decode(0xffff_ffff) == {"A": 0xf, "B": 0x1f}
    with pytest.raises(ValueError, match=r"^Register MODE field B value 32 does not fit 5 "
                                         r"bit\(s\)$"):
        mode.encode(B=32)
    assert TEST_MAP.mask(mode) == 0x1f0f and TEST_MAP.width(mode) == 13
    assert TEST_MAP.at(0x22) is TEST_MAP["PUSH_BYTE"] and TEST_MAP.at(0x18) is None
    assert TEST_MAP.span == 0x24 and TEST_MAP.addr_bits == 6


@pytest.mark.parametrize("name", PRESETS)
def test_tessera_map_describes_config(name):
    config = preset(name)
    rmap = tessera_register_map(config)
    assert rmap["ID"].reset == TESSERA_ID == 0x54535241
    assert rmap["VERSION"].decode(rmap["VERSION"].reset) == dict(
        MAJOR=REGMAP_VERSION[0], MINOR=REGMAP_VERSION[1])
    fields = {}
    for reg in ("CONFIG0", "CONFIG1", "CONFIG2", "CONFIG3"):
        fields |= rmap[reg].decode(rmap[reg].reset)
    assert fields == {
        "DIM": config.dim, "ACT_WIDTH": config.act_width, "ACT_SIGNED": config.act_signed,
        "WEIGHT_WIDTH": config.weight_width, "WEIGHT_SIGNED": config.weight_signed,
        "ACC_WIDTH": config.acc_width,
        "SP_DEPTH_LOG2": config.sp_depth.bit_length() - 1,
        "SP_BANKS_LOG2": config.sp_banks.bit_length() - 1,
        "ACC_DEPTH_LOG2": config.acc_depth.bit_length() - 1,
        "ACC_BANKS_LOG2": config.acc_banks.bit_length() - 1,
        "BUS_DATA_WIDTH": config.bus_data_width, "BUS_ADDR_WIDTH": config.bus_addr_width,
        "ROW_ADDR_WIDTH": config.addr_width, "POSTPROC_LANES": config.postproc_lanes_per_cycle,
        "POSTPROC_MULTIPLY_CYCLES": config.postproc_multiply_cycles,
    }
    assert {reg.access for reg in rmap} == set(Access)
    assert rmap.irq == ("IRQ_STATUS", "IRQ_ENABLE")
    assert rmap["IRQ_STATUS"].fields == rmap["IRQ_ENABLE"].fields
    assert rmap.span <= 0x100 and "ERROR_ADDR_HI" not in {r.name for r in rmap}


def test_tessera_map_wide_addresses_and_limits():
    wide = tessera_register_map(preset("tiny").replace(bus_addr_width=48))
    assert wide["ERROR_ADDR_HI"].access is Access.RO
    big = TesseraConfig(name="big", dim=256, sp_depth=512, acc_depth=512)
    with pytest.raises(ValueError, match=r"^Config 'big' does not fit the register map: "
                                         r"Register CONFIG0 field DIM value 256 does not fit 8 "
                                         r"bit\(s\)$"):
        tessera_register_map(big)


# Generated host views.

def test_c_header_agrees_with_map(build_dir):
    rmap = tessera_register_map(preset("small").replace(bus_addr_width=40))
    header = c_header(rmap)
    defines = dict(re.findall(r"^#define (\w+) (\S+)$", header, re.M))
    want = {"TESSERA_DATA_WIDTH": 32}
    for reg in rmap:
        want[f"TESSERA_{reg.name}_OFFSET"] = reg.offset
        want[f"TESSERA_{reg.name}_RESET"] = reg.reset
        for field in reg.fields:
            name = f"TESSERA_{reg.name}_{field.name}"
            want |= {f"{name}_SHIFT": field.offset, f"{name}_WIDTH": field.width,
                     f"{name}_MASK": field.mask}
    guard = "TESSERA_REGS_H"
    assert header.count(f"#ifndef {guard}\n#define {guard}\n") == 1
    assert header.rstrip().endswith(f"#endif /* {guard} */")
    assert {k: int(v.rstrip("u"), 0) for k, v in defines.items() if k != guard} == want
    # The C compiler agrees on every value.
    (build_dir / "tessera_regs.h").write_text(header)
    checks = "\n".join(f"_Static_assert({name} == {value:#x}ull, \"{name}\");"
                       for name, value in want.items())
    (build_dir / "check.c").write_text(f'#include "tessera_regs.h"\n#include "tessera_regs.h"\n'
                                       f"{checks}\n")
    result = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                             "check.c"], cwd=build_dir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_markdown_table_agrees_with_map():
    rmap = tessera_register_map(preset("tiny"))
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            for line in markdown_table(rmap).splitlines()[2:]]
    want = []
    for reg in rmap:
        access = "RO (constant)" if reg.access is Access.CONST else reg.access.value
        want.append([f"0x{reg.offset:03x}", reg.name, "[31:0]", "", access,
                     f"0x{reg.reset:08x}", reg.description])
        for field in reg.fields:
            value = reg.decode(reg.reset)[field.name]
            want.append(["", "", field.bits, field.name, "", hex(value), field.description])
    assert rows == want


def test_python_constants_agree_with_map():
    rmap = tessera_register_map(preset("small"))
    namespace = {}
    exec(python_module(rmap), namespace)
    assert namespace["REGISTERS"] == host_constants(rmap)
    assert namespace["IRQ"] == ("IRQ_STATUS", "IRQ_ENABLE")
    for reg in rmap:
        assert namespace[f"{reg.name}_OFFSET"] == reg.offset
        assert namespace[f"{reg.name}_RESET"] == reg.reset
        for field in reg.fields:
            assert namespace[f"{reg.name}_{field.name}_MASK"] == field.mask
    assert host_constants(rmap)["ID"]["access"] == "RO"


# The register bank in the Amaranth simulator.

async def axi_write(ctx, bus, addr, data, strb=None, *, aw_delay=0, w_delay=0, b_delay=0):
    """One write: AW after ``aw_delay`` cycles and W after ``w_delay`` (each held until its
    READY), then BREADY after ``b_delay`` more cycles. Returns the response."""
    strb = (1 << len(bus.wstrb)) - 1 if strb is None else strb
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, strb)
    aw_done = w_done = False
    cycle = 0
    while not (aw_done and w_done):
        ctx.set(bus.awvalid, not aw_done and cycle >= aw_delay)
        ctx.set(bus.wvalid, not w_done and cycle >= w_delay)
        _, _, awvalid, awready, wvalid, wready = await ctx.tick().sample(
            bus.awvalid, bus.awready, bus.wvalid, bus.wready)
        aw_done |= bool(awvalid and awready)
        w_done |= bool(wvalid and wready)
        cycle += 1
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    for _ in range(b_delay):
        await ctx.tick()
    ctx.set(bus.bready, 1)
    resp, = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    return AXIResp(resp)


async def axi_read(ctx, bus, addr, *, ar_delay=0, r_delay=0):
    """One read: AR after ``ar_delay`` cycles, RREADY after ``r_delay`` more. Returns
    ``(data, resp)``."""
    for _ in range(ar_delay):
        await ctx.tick()
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    for _ in range(r_delay):
        await ctx.tick()
    ctx.set(bus.rready, 1)
    data, resp = await ctx.tick().sample(bus.rdata, bus.rresp).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    return data, AXIResp(resp)


def simulate(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.run()


def handshake_log(dut, log):
    """A background testbench appending ``(cycle, channel)`` for every handshake."""
    bus = dut.bus

    async def monitor(ctx):
        cycle = 0
        async for _, _, *values in ctx.tick().sample(
                bus.awvalid, bus.awready, bus.wvalid, bus.wready, bus.bvalid, bus.bready,
                bus.arvalid, bus.arready, bus.rvalid, bus.rready):
            for channel, (valid, ready) in zip(("aw", "w", "b", "ar", "r"),
                                               zip(values[::2], values[1::2], strict=True),
                                               strict=True):
                if valid and ready:
                    log.append((cycle, channel))
            cycle += 1
    return monitor


def make_bank(rmap=TEST_MAP, addr_width=TEST_ADDR_WIDTH, late_rresp=False):
    return (AXI4LiteRegisterBank(rmap, addr_width=addr_width, late_rresp=late_rresp),
            RegisterBankModel(rmap, addr_width))


#: Both read decoders: RRESP decoded in the AR handshake cycle, or from the selects after it.
LATE_RRESP = pytest.mark.parametrize("late_rresp", [False, True], ids=["early", "late"])


async def check_all_reads(ctx, dut, model, context=""):
    for reg in model.map:
        got = await axi_read(ctx, dut.bus, reg.offset)
        want = model.read(reg.offset)
        assert got == want, f"{context}{reg.name}: {got} != {want}"


@pytest.mark.parametrize("name", ["tiny", "small"])
@LATE_RRESP
def test_tessera_bank_reset_values(name, late_rresp):
    rmap = tessera_register_map(preset(name))
    dut, model = make_bank(rmap, 12, late_rresp)

    async def bench(ctx):
        await check_all_reads(ctx, dut, model)
        assert model.read(0)[0] == TESSERA_ID

    simulate(dut, bench)


@LATE_RRESP
def test_every_access_kind_with_strobes(late_rresp):
    """A fixed sequence over every register with full, partial, zero and unaligned strobes."""
    dut, model = make_bank(late_rresp=late_rresp)
    rng = random.Random(7)
    hwval = 0x89abcdef

    async def bench(ctx):
        ctx.set(raw(dut.regs.hwval), hwval)
        model.ro["HWVAL"] = hwval
        for step in range(200):
            reg = rng.choice(TEST_MAP.registers)
            strb = rng.choice([0xf, 0xf, 0x0, 0x1, 0x2, 0x4, 0x8, 0x3, 0xc, 0x6, 0xe])
            addr = reg.offset + rng.choice([0, 0, 1, 2, 3])   # the low bits are ignored
            data = rng.getrandbits(32)
            got = await axi_write(ctx, dut.bus, addr, data, strb)
            want = model.write(reg.offset, data, strb)
            assert got == want, f"step {step}: write {reg.name} strb {strb:#x}: {got} != {want}"
            for check in TEST_MAP:
                read = await axi_read(ctx, dut.bus, check.offset + rng.choice([0, 3]))
                assert read == model.read(check.offset), f"step {step}: {check.name}"
        assert ctx.get(raw(dut.regs.scratch)) == model.values["SCRATCH"]
        assert ctx.get(raw(dut.regs.mode)) == model.values["MODE"]

    pushes = []

    async def pusher(ctx):
        async for _, _, strobe, data, strobe_byte, data_byte in ctx.tick().sample(
                dut.regs.push.strobe, dut.regs.push.data, dut.regs.push_byte.strobe,
                raw(dut.regs.push_byte.data)):
            if strobe:
                pushes.append(("PUSH", data))
            if strobe_byte:
                pushes.append(("PUSH_BYTE", data_byte))

    simulate(dut, bench, background=[pusher])
    want = [(name, word) for name in ("PUSH", "PUSH_BYTE") for word in model.pushed[name]]
    assert sorted(pushes) == sorted(want) and len(want) > 5


@pytest.mark.parametrize("aw_delay, w_delay", [(0, 0), (0, 1), (0, 4), (1, 0), (4, 0), (2, 3)])
def test_write_channel_orderings(aw_delay, w_delay):
    """AW before, with or after W: both are handshaken together in the cycle after the later
    one arrives, and B is valid in the next cycle."""
    dut, model = make_bank()
    log = []

    async def bench(ctx):
        assert await axi_write(ctx, dut.bus, 0x00, 0x1234_5678, aw_delay=aw_delay,
                               w_delay=w_delay) is AXIResp.OKAY
        assert await axi_write(ctx, dut.bus, 0x30, 0x1, aw_delay=w_delay,
                               w_delay=aw_delay) is AXIResp.DECERR
        assert await axi_read(ctx, dut.bus, 0x00) == (0x1234_5678, AXIResp.OKAY)

    simulate(dut, bench, background=[handshake_log(dut, log)])
    first = {channel: cycle for cycle, channel in reversed(log)}
    assert first["aw"] == first["w"] == max(aw_delay, w_delay) + 1
    assert first["b"] == first["aw"] + AXI4LiteRegisterBank.write_latency


def test_b_back_pressure():
    """B stays valid with a stable response until BREADY; meanwhile the next write is refused,
    and executes once B left."""
    dut, model = make_bank()
    bus = dut.bus
    b_log = []

    async def bench(ctx):
        ctx.set(bus.bready, 0)
        for addr, data in [(0x0, 0x11), (0x30, 0x22)]:   # OKAY, then DECERR (refused)
            ctx.set(bus.awaddr, addr)
            ctx.set(bus.wdata, data)
            ctx.set(bus.wstrb, 0xf)
            ctx.set(bus.awvalid, 1)
            ctx.set(bus.wvalid, 1)
            accepted = 0
            for _ in range(12):
                _, _, awready, wready = await ctx.tick().sample(bus.awready, bus.wready)
                assert awready == wready
                if awready:
                    accepted += 1
                    break
            ctx.set(bus.awvalid, 0)
            ctx.set(bus.wvalid, 0)
            if addr == 0x30:
                assert not accepted, "a second write was accepted while B was stalled"
            else:
                assert accepted
        assert ctx.get(raw(dut.regs.scratch)) == 0x11
        for _ in range(5):
            await ctx.tick()
        ctx.set(bus.bready, 1)
        while not b_log:
            _, _, bvalid, bresp = await ctx.tick().sample(bus.bvalid, bus.bresp)
            if bvalid:
                b_log.append(AXIResp(bresp))
        ctx.set(bus.bready, 0)
        assert await axi_write(ctx, bus, 0x30, 0x22) is AXIResp.DECERR
        b_log.append(AXIResp.DECERR)
        assert await axi_read(ctx, bus, 0x4) == (model.values["MODE"], AXIResp.OKAY)

    async def stability(ctx):
        previous = None
        async for _, _, bvalid, bready, bresp in ctx.tick().sample(bus.bvalid, bus.bready,
                                                                     bus.bresp):
            if previous is not None:
                assert bvalid and bresp == previous, "B changed before BREADY"
            previous = bresp if bvalid and not bready else None

    simulate(dut, bench, background=[stability])
    assert b_log == [AXIResp.OKAY, AXIResp.DECERR]


@LATE_RRESP
def test_r_back_pressure(late_rresp):
    """R stays valid with stable data until RREADY; meanwhile the next AR is refused."""
    dut, model = make_bank(late_rresp=late_rresp)
    bus = dut.bus
    answers = []

    async def bench(ctx):
        ctx.set(bus.rready, 0)
        for addr, accept in [(0x0, True), (0x0C, False)]:
            ctx.set(bus.araddr, addr)
            ctx.set(bus.arvalid, 1)
            accepted = False
            for _ in range(6):
                _, _, arready = await ctx.tick().sample(bus.arready)
                if arready:
                    accepted = True
                    break
            ctx.set(bus.arvalid, 0)
            assert accepted == accept
        ctx.set(raw(dut.regs.hwval), 0x5)
        for _ in range(4):
            await ctx.tick()
        ctx.set(bus.rready, 1)
        while not answers:
            _, _, rvalid, rdata, rresp = await ctx.tick().sample(bus.rvalid, bus.rdata,
                                                                 bus.rresp)
            if rvalid:
                answers.append((rdata, AXIResp(rresp)))
        ctx.set(bus.rready, 0)
        answers.append(await axi_read(ctx, bus, 0x0C))

    async def stability(ctx):
        previous = None
        async for _, _, rvalid, rready, rdata, rresp in ctx.tick().sample(
                bus.rvalid, bus.rready, bus.rdata, bus.rresp):
            if previous is not None:
                assert rvalid and (rdata, rresp) == previous, "R changed before RREADY"
            previous = (rdata, rresp) if rvalid and not rready else None

    simulate(dut, bench, background=[stability])
    assert answers == [model.read(0x0), model.read(0x0C)]


@LATE_RRESP
def test_full_throughput_and_parallel_read_write(late_rresp):
    """With BREADY and RREADY high, one write completes every 2 cycles and, in parallel, one
    read every 3; a read executing in the cycle of a write to the same register returns the
    old value."""
    dut, _ = make_bank(late_rresp=late_rresp)
    bus = dut.bus
    log, reads = [], []
    count = 8

    async def writer(ctx):
        ctx.set(bus.bready, 1)
        ctx.set(bus.wstrb, 0xf)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        for i in range(count):
            ctx.set(bus.awaddr, 0x00)
            ctx.set(bus.wdata, i + 1)
            await ctx.tick().until(bus.awready & bus.wready)
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        for _ in range(3):
            await ctx.tick()

    async def reader(ctx):
        ctx.set(bus.rready, 1)
        await ctx.tick()   # some reads then execute in the cycles of writes
        ctx.set(bus.araddr, 0x00)
        ctx.set(bus.arvalid, 1)
        for _ in range(count):
            await ctx.tick().until(bus.arready)
        ctx.set(bus.arvalid, 0)
        for _ in range(3):
            await ctx.tick()

    async def collect(ctx):
        async for _, _, rvalid, rdata in ctx.tick().sample(bus.rvalid, bus.rdata):
            if rvalid:
                reads.append(rdata)

    simulate(dut, writer, reader, background=[handshake_log(dut, log), collect])
    cycles = {channel: [cycle for cycle, name in log if name == channel]
              for channel in ("aw", "w", "b", "ar", "r")}
    for channel, start, period in [("aw", 1, 2), ("w", 1, 2), ("b", 2, 2), ("ar", 1, 3),
                                   ("r", 1 + AXI4LiteRegisterBank.read_latency, 3)]:
        assert cycles[channel] == list(range(start, start + period * count, period)), (
            channel, cycles[channel])
    executed = [cycle + 1 for cycle in cycles["ar"]]   # the cycle each read executes
    assert set(executed) & set(cycles["aw"])
    # Write i (data i + 1) is visible from the cycle after its handshake.
    want = [sum(w < e for w in cycles["aw"]) or 0xdeadbeef for e in executed]
    assert reads == want


def test_w1c_set_wins_and_irq():
    """Hardware sets, host clears by writing 1 (per strobed lane); a set and a clear of one
    bit in the same cycle leave it set; irq is the registered OR of status & enable."""
    dut, model = make_bank()
    bus = dut.bus
    events = raw(dut.regs.events.set)
    irqs = []

    async def pulse(ctx, bits):
        ctx.set(events, bits)
        await ctx.tick()
        ctx.set(events, 0)

    async def bench(ctx):
        assert ctx.get(dut.irq) == 0
        assert await axi_read(ctx, bus, 0x10) == (0x1, AXIResp.OKAY)      # reset value
        await pulse(ctx, 0x8000_0200)
        assert await axi_read(ctx, bus, 0x10) == (0x8000_0201, AXIResp.OKAY)
        # Clear bit 31 with only lane 0 strobed: nothing; then with lane 3.
        assert await axi_write(ctx, bus, 0x10, 0x8000_0000, 0x1) is AXIResp.OKAY
        assert await axi_read(ctx, bus, 0x10) == (0x8000_0201, AXIResp.OKAY)
        assert await axi_write(ctx, bus, 0x10, 0xffff_ffff, 0x8) is AXIResp.OKAY
        assert await axi_read(ctx, bus, 0x10) == (0x0000_0201, AXIResp.OKAY)
        # Enable Y: irq rises (Y is set), clearing Y drops it.
        assert await axi_write(ctx, bus, 0x14, 0x200) is AXIResp.OKAY
        await ctx.tick()
        assert ctx.get(dut.irq) == 1
        # The clear of Y executes in the cycle a set of Y arrives: Y stays set.
        ctx.set(bus.awaddr, 0x10)
        ctx.set(bus.wdata, 0x200)
        ctx.set(bus.wstrb, 0xf)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        ctx.set(bus.bready, 1)
        await ctx.tick()
        assert ctx.get(bus.awready) and ctx.get(bus.wready)   # the handshake cycle
        ctx.set(events, 0x200)
        await ctx.tick()
        ctx.set(events, 0)
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        await ctx.tick()
        ctx.set(bus.bready, 0)
        assert await axi_read(ctx, bus, 0x10) == (0x0000_0201, AXIResp.OKAY)
        assert await axi_write(ctx, bus, 0x10, 0x200) is AXIResp.OKAY
        await ctx.tick()
        assert ctx.get(dut.irq) == 0
        assert await axi_read(ctx, bus, 0x10) == (0x0000_0001, AXIResp.OKAY)

    async def monitor(ctx):
        async for _, _, irq in ctx.tick().sample(dut.irq):
            irqs.append(irq)

    simulate(dut, bench, background=[monitor])
    assert 1 in irqs and irqs[-1] == 0


def test_wo_push_refusals():
    """A WO write pushes with a one-cycle strobe; ``full`` or a missing byte lane answers
    SLVERR and pushes nothing; reading a WO register answers SLVERR."""
    dut, _ = make_bank()
    bus, push = dut.bus, dut.regs.push
    pushes = []

    async def bench(ctx):
        assert await axi_write(ctx, bus, 0x1C, 0xaaaa_0001) is AXIResp.OKAY
        ctx.set(push.full, 1)
        assert await axi_write(ctx, bus, 0x1C, 0xaaaa_0002) is AXIResp.SLVERR
        ctx.set(push.full, 0)
        assert await axi_write(ctx, bus, 0x1C, 0xaaaa_0003, 0x7) is AXIResp.SLVERR
        assert await axi_write(ctx, bus, 0x1C, 0xaaaa_0004, aw_delay=3) is AXIResp.OKAY
        assert await axi_read(ctx, bus, 0x1C) == (0, AXIResp.SLVERR)
        # PUSH_BYTE only needs lane 1.
        assert await axi_write(ctx, bus, 0x20, 0x0000_5a00, 0x2) is AXIResp.OKAY
        assert await axi_write(ctx, bus, 0x20, 0x0000_5b00, 0x1) is AXIResp.SLVERR

    async def monitor(ctx):
        async for _, _, strobe, data, byte_strobe, byte_data in ctx.tick().sample(
                push.strobe, push.data, dut.regs.push_byte.strobe,
                raw(dut.regs.push_byte.data)):
            if strobe:
                pushes.append(data)
            if byte_strobe:
                pushes.append(byte_data)

    simulate(dut, bench, background=[monitor])
    assert pushes == [0xaaaa_0001, 0xaaaa_0004, 0x5a00]


@LATE_RRESP
def test_errors_change_nothing(late_rresp):
    """Writes to RO and CONST registers answer SLVERR; unmapped addresses (a hole, past the
    map, the top of the address space) DECERR for reads and writes; no register changes."""
    dut, model = make_bank(late_rresp=late_rresp)
    bus = dut.bus

    async def bench(ctx):
        for addr in (0x08, 0x0C):
            assert await axi_write(ctx, bus, addr, 0xffff_ffff) is AXIResp.SLVERR
        for addr in (0x18, 0x24, 0x80, 0xfc, 0xff):
            assert await axi_write(ctx, bus, addr, 0xffff_ffff) is AXIResp.DECERR
            assert await axi_read(ctx, bus, addr) == (0, AXIResp.DECERR)
        await check_all_reads(ctx, dut, model)

    simulate(dut, bench)


@LATE_RRESP
def test_64_bit_bank(late_rresp):
    """A 64-bit bank: eight byte lanes, 8-byte words, the upper lanes honoured."""
    rmap = RegisterMap("WIDE", [
        Register("A", 0x00, Access.RW, 0x0123_4567_89ab_cdef),
        Register("B", 0x08, Access.WO, 0, "", (Field("HI", 32, 32),)),
        Register("C", 0x10, Access.CONST, 0xfedc_ba98_7654_3210),
    ], data_width=64)
    dut, model = make_bank(rmap, 6, late_rresp)
    bus = dut.bus

    async def bench(ctx):
        for addr, data, strb in [(0x00, 0xffff_ffff_0000_0000, 0xc0), (0x04, 0, 0x0f),
                                 (0x08, 0x1122_3344_0000_0000, 0xf0),
                                 (0x08, 0x1122_3344_0000_0000, 0x70)]:
            got = await axi_write(ctx, bus, addr, data, strb)
            assert got == model.write(addr, data, strb), hex(addr)
        await check_all_reads(ctx, dut, model)
        assert await axi_read(ctx, bus, 0x18) == (0, AXIResp.DECERR)

    simulate(dut, bench)
    assert model.values["A"] == 0xffff_4567_0000_0000 and model.pushed["B"] == [0x1122_3344 << 32]


@LATE_RRESP
def test_random_orderings_against_model(late_rresp):
    """Random writes and reads with random AW/W/B/AR/R delays, one at a time."""
    dut, model = make_bank(late_rresp=late_rresp)
    seed = 11
    rng = random.Random(seed)
    print(f"seed={seed}")

    async def bench(ctx):
        for step in range(300):
            addr = rng.choice([*(r.offset for r in TEST_MAP), 0x18, rng.randrange(256)])
            if rng.random() < 0.5:
                data, strb = rng.getrandbits(32), rng.getrandbits(4)
                full = rng.random() < 0.3
                ctx.set(dut.regs.push.full, full)
                ctx.set(dut.regs.push_byte.full, full)
                got = await axi_write(ctx, dut.bus, addr, data, strb,
                                      aw_delay=rng.randrange(4), w_delay=rng.randrange(4),
                                      b_delay=rng.randrange(3))
                want = model.write(addr - addr % 4, data, strb, full=full)
            else:
                got = await axi_read(ctx, dut.bus, addr, ar_delay=rng.randrange(3),
                                     r_delay=rng.randrange(3))
                want = model.read(addr - addr % 4)
            assert got == want, f"seed={seed} step {step} at {addr:#x}: {got} != {want}"

    simulate(dut, bench)


# Cost on FPGAs (yosys synthesis only).

@pytest.mark.parametrize("family, luts, flops", [
    ("ecp5", r"LUT4", r"TRELLIS_FF"),
    ("ice40", r"SB_LUT4", r"SB_DFF"),
])
def test_tessera_bank_cost(family, luts, flops, build_dir):
    """The Tessera map's bank (``small``) stays small: its flip-flops are the write handshake
    and response registers plus the RW and W1C bits; LUTs mostly the read multiplexer."""
    from sw.synth import synth_cells

    rmap = tessera_register_map(preset("small"))
    cells = synth_cells(AXI4LiteRegisterBank(rmap, addr_width=12), family, build_dir)
    lut_count = sum(n for name, n in cells.items() if re.match(luts, name))
    ff_count = sum(n for name, n in cells.items() if re.match(flops, name))
    print(f"{family}: {lut_count} LUT4, {ff_count} FF ({cells})")
    readable = sum(r.access is not Access.WO for r in rmap)
    holding = 1 + 1 + readable          # AWREADY/WREADY, the read executing, its selects
    responses = (1 + 2) + (1 + 32 + 2)                   # B, R
    state = sum(rmap.width(r) for r in rmap if r.access in (Access.RW, Access.W1C))
    assert ff_count <= holding + responses + state + 1   # + irq
    # The read AND-OR over every readable register (25 for small) dominates.
    assert lut_count < 40 * readable, f"{lut_count} LUT4 for {readable} readable registers"

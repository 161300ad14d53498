"""The ISA layouts and the assembler: encodings, round trips and every refusal."""

import numpy as np
import pytest

from hdl.config import preset
from hdl.isa import (
    INSN_WIDTH,
    Opcode,
    Unit,
    acc_row_bytes,
    config_layout,
    end_layout,
    exec_layout,
    load_layout,
    param_block_bytes,
    row_bytes,
    store_layout,
    unit_of,
)
from sw.assembler import DEPENDENCY_FLAGS, Instruction, decode, encode, from_words, to_words

LAYOUTS = {Opcode.LOAD: load_layout, Opcode.EXEC: exec_layout, Opcode.STORE: store_layout,
           Opcode.CONFIG: config_layout, Opcode.END: end_layout}


@pytest.mark.parametrize("opcode", list(Opcode))
def test_every_layout_is_one_instruction_wide(opcode):
    layout = LAYOUTS[opcode]()
    assert layout.size == INSN_WIDTH
    # The header (opcode and flags) sits in the low byte of every instruction.
    assert layout["header"].offset == 0 and layout["header"].width == 8


def test_encoding_of_a_load_by_hand():
    """Fields at the offsets the layout documents: the opcode in bits 0-2, push_next in bit 6,
    then sp_addr, rows, dram_addr, dram_stride."""
    insn = Instruction(Opcode.LOAD, dict(sp_addr=0x12, rows=3, dram_addr=0x1000,
                                         dram_stride=0x40), push_next=True)
    expected = (0 | 1 << 6) | 0x12 << 8 | 3 << 24 | 0x1000 << 40 | 0x40 << 72
    assert encode(insn) == expected
    assert to_words(insn) == [expected & 0xFFFFFFFF, (expected >> 32) & 0xFFFFFFFF,
                              (expected >> 64) & 0xFFFFFFFF, expected >> 96]


def random_instruction(rng):
    opcode = Opcode(int(rng.choice([o.value for o in Opcode])))
    layout = LAYOUTS[opcode]()
    operands = {name: int(rng.integers(0, 1 << min(field.width, 62)))
                for name, field in layout if name not in ("header", "reserved")}
    flags = {flag: bool(rng.integers(0, 2)) for flag in DEPENDENCY_FLAGS}
    unit = unit_of(opcode)
    if unit in (Unit.LOAD, Unit.DISPATCH):
        flags.update(pop_prev=False, push_prev=False)
    if unit in (Unit.STORE, Unit.DISPATCH):
        flags.update(pop_next=False, push_next=False)
    return Instruction(opcode, operands, **flags)


def test_round_trip_random_instructions():
    seed = 7
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    for _ in range(2000):
        insn = random_instruction(rng)
        assert decode(encode(insn)) == insn
        assert from_words(to_words(insn)) == insn
        assert encode(insn) < 1 << INSN_WIDTH


@pytest.mark.parametrize("raw", [4, 5, 6])
def test_undefined_opcodes_do_not_decode(raw):
    with pytest.raises(ValueError, match=rf"^undefined opcode {raw}$"):
        decode(raw | 0xABCD << 8)


def test_units():
    assert [unit_of(o) for o in Opcode] == [Unit.LOAD, Unit.EXEC, Unit.STORE, Unit.STORE,
                                            Unit.DISPATCH]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(opcode=0), TypeError, r"^opcode must be an Opcode, not 0$"),
    (dict(opcode=Opcode.CONFIG, operands={"dram_addr": 0, "rows": 1}), ValueError,
     r"^CONFIG has no operand 'rows'$"),
    (dict(opcode=Opcode.CONFIG), ValueError, r"^CONFIG needs operand 'dram_addr'$"),
    (dict(opcode=Opcode.CONFIG, operands={"dram_addr": 1 << 32}), ValueError,
     r"^CONFIG operand dram_addr must fit 32 bits \(0 to 4294967295\), not 4294967296$"),
    (dict(opcode=Opcode.CONFIG, operands={"dram_addr": -4}), ValueError,
     r"^CONFIG operand dram_addr must fit 32 bits \(0 to 4294967295\), not -4$"),
    (dict(opcode=Opcode.CONFIG, operands={"dram_addr": 1.0}), TypeError,
     r"^CONFIG operand dram_addr must be an integer, not 1\.0$"),
    (dict(opcode=Opcode.END, push_next=1), TypeError, r"^push_next must be a bool, not 1$"),
    (dict(opcode=Opcode.END, push_next=True), ValueError,
     r"^END has no next unit to pop from or push to$"),
    (dict(opcode=Opcode.CONFIG, operands={"dram_addr": 0}, pop_next=True), ValueError,
     r"^CONFIG has no next unit to pop from or push to$"),
    (dict(opcode=Opcode.LOAD, operands=dict(sp_addr=0, rows=1, dram_addr=0, dram_stride=0),
          pop_prev=True), ValueError, r"^LOAD has no previous unit to pop from or push to$"),
])
def test_instruction_rejects(kwargs, error, message):
    with pytest.raises(error, match=message):
        Instruction(**kwargs)


def test_from_words_needs_four():
    with pytest.raises(ValueError, match=r"^an instruction is 4 words, not 3$"):
        from_words([0, 0, 0])


def test_memory_row_sizes():
    """Rows are whole bus beats: dim int8 lanes, or dim int32 lanes, rounded up."""
    sizes = {name: (row_bytes(preset(name)), acc_row_bytes(preset(name)),
                    param_block_bytes(preset(name)))
             for name in ("micro", "tiny", "small", "large", "asic")}
    assert sizes == {"micro": (4, 8, 48), "tiny": (4, 16, 80), "small": (8, 32, 144),
                     "large": (16, 48, 208), "asic": (16, 64, 272)}


def test_disassembly():
    insn = Instruction(Opcode.EXEC, dict(weight_addr=0x10, act_addr=0x14, acc_addr=0, rows=7,
                                         preload=1, accumulate=0), pop_prev=True)
    assert str(insn) == ("EXEC weight_addr=0x10 act_addr=0x14 acc_addr=0x0 rows=7 preload=1 "
                         "accumulate=0 [pop_prev]")

"""Assembler and disassembler of the Tessera ISA, from the layouts of :mod:`hdl.isa`."""

from dataclasses import dataclass, field

from hdl.isa import (
    INSN_WIDTH,
    Opcode,
    Unit,
    config_layout,
    end_layout,
    exec_layout,
    header_layout,
    load_layout,
    store_layout,
    unit_of,
)

__all__ = ["DEPENDENCY_FLAGS", "Instruction", "decode", "encode", "from_words", "to_words"]

#: The dependency flags of every instruction.
DEPENDENCY_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")

_LAYOUTS = {Opcode.LOAD: load_layout, Opcode.EXEC: exec_layout, Opcode.STORE: store_layout,
            Opcode.CONFIG: config_layout, Opcode.END: end_layout}
_WORDS = INSN_WIDTH // 32


def _operand_names(opcode):
    return [name for name, _ in _LAYOUTS[opcode]() if name not in ("header", "reserved")]


@dataclass(frozen=True)
class Instruction:
    """One instruction: ``opcode``, its operands (every field of its layout, by name) and its
    dependency flags. Checked at construction: an unknown or missing operand, a value that does
    not fit its field, or a flag its unit cannot have raises ``ValueError``/``TypeError``."""
    opcode: Opcode
    operands: dict = field(default_factory=dict)
    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    def __post_init__(self):
        if not isinstance(self.opcode, Opcode):
            raise TypeError(f"opcode must be an Opcode, not {self.opcode!r}")
        layout = _LAYOUTS[self.opcode]()
        names = _operand_names(self.opcode)
        unknown = sorted(set(self.operands) - set(names))
        if unknown:
            raise ValueError(f"{self.opcode.name} has no operand {unknown[0]!r}")
        missing = [name for name in names if name not in self.operands]
        if missing:
            raise ValueError(f"{self.opcode.name} needs operand {missing[0]!r}")
        for name in names:
            value, width = self.operands[name], layout[name].width
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{self.opcode.name} operand {name} must be an integer, "
                                f"not {value!r}")
            if not 0 <= value < 1 << width:
                raise ValueError(f"{self.opcode.name} operand {name} must fit {width} bits "
                                 f"(0 to {(1 << width) - 1}), not {value!r}")
        unit = unit_of(self.opcode)
        for flag in DEPENDENCY_FLAGS:
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, not {getattr(self, flag)!r}")
        if unit in (Unit.LOAD, Unit.DISPATCH) and (self.pop_prev or self.push_prev):
            raise ValueError(f"{self.opcode.name} has no previous unit to pop from or push to")
        if unit in (Unit.STORE, Unit.DISPATCH) and (self.pop_next or self.push_next):
            raise ValueError(f"{self.opcode.name} has no next unit to pop from or push to")

    @property
    def unit(self):
        return unit_of(self.opcode)

    def __getattr__(self, name):
        try:
            return self.__dict__["operands"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __str__(self):
        operands = " ".join(f"{name}={value:#x}" if "addr" in name or name == "dest"
                            else f"{name}={value}" for name, value in self.operands.items())
        flags = " ".join(f for f in DEPENDENCY_FLAGS if getattr(self, f))
        return " ".join(part for part in (self.opcode.name, operands, flags and f"[{flags}]")
                        if part)


def encode(insn):
    """``insn`` as an integer of :data:`hdl.isa.INSN_WIDTH` bits."""
    header = {"opcode": insn.opcode, **{f: int(getattr(insn, f)) for f in DEPENDENCY_FLAGS}}
    const = _LAYOUTS[insn.opcode]().const({"header": header, **insn.operands})
    return const.as_value().value


def decode(bits):
    """The :class:`Instruction` encoded in ``bits``; ``ValueError`` for an undefined opcode
    (which the hardware reports as ``ErrorCause.UNDEFINED_OPCODE``)."""
    header = header_layout().from_bits(bits & ((1 << header_layout().size) - 1))
    raw_opcode = bits & ((1 << Opcode.as_shape().width) - 1)
    try:
        opcode = Opcode(raw_opcode)
    except ValueError:
        raise ValueError(f"undefined opcode {raw_opcode}") from None
    view = _LAYOUTS[opcode]().from_bits(bits)
    return Instruction(opcode, {name: int(getattr(view, name)) for name in _operand_names(opcode)},
                       **{flag: bool(getattr(header, flag)) for flag in DEPENDENCY_FLAGS})


def to_words(insn):
    """The four 32-bit words the host writes for ``insn``, least significant first."""
    bits = encode(insn)
    return [(bits >> (32 * i)) & 0xFFFF_FFFF for i in range(_WORDS)]


def from_words(words):
    if len(words) != _WORDS:
        raise ValueError(f"an instruction is {_WORDS} words, not {len(words)}")
    return decode(sum(int(w) << (32 * i) for i, w in enumerate(words)))

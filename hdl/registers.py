"""Declarative register maps, and the Tessera accelerator's register map.

A :class:`RegisterMap` is the one description of a bank of control and status registers: the
AXI4-Lite slave (:class:`hdl.axi_lite.AXI4LiteRegisterBank`) is generated from it, and so are
the host-side constants, the C header and the Markdown register table (:mod:`sw.regmap`).
:func:`tessera_register_map` is the accelerator's own map, derived from a
:class:`~hdl.config.TesseraConfig`.

Every register is one bus word wide (``data_width`` bits) at a word-aligned byte offset. A
register may declare named bit fields; then only the field bits are implemented (the others
read as zero and ignore writes) and the hardware port is a :class:`~amaranth.lib.data.View`
with those fields. Without fields all ``data_width`` bits are implemented.
"""

import enum
import re
from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["REGMAP_VERSION", "TESSERA_ID", "Access", "Field", "Register", "RegisterMap",
           "tessera_register_map"]

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class Access(enum.Enum):
    """How the host and the hardware see a register.

    ``RW``: the host reads and writes (byte strobes honoured); the value goes out to the
    hardware. ``RO``: the hardware drives the value in, the host reads it; a host write answers
    SLVERR and changes nothing. ``CONST``: read-only constant (the reset value), no hardware
    port and no flip-flops; host writes answer SLVERR. ``W1C``: sticky status bits: a hardware
    ``set`` pulse sets bits, the host clears a bit by writing 1 to it (0 leaves it; a bit set
    and cleared in the same cycle stays set, so no event is lost). ``WO``: write-only pulse: a
    host write presents the data with a one-cycle ``strobe`` (e.g. a queue push); the hardware
    refuses it with ``full`` and the host gets SLVERR. Reading a WO register answers SLVERR.
    """
    RW = "RW"
    RO = "RO"
    CONST = "CONST"
    W1C = "W1C"
    WO = "WO"

    @property
    def host(self):
        """The access as the host sees it (a constant is read-only)."""
        return "RO" if self is Access.CONST else self.value

    @property
    def readable(self):
        return self is not Access.WO

    @property
    def writable(self):
        return self in (Access.RW, Access.W1C, Access.WO)


def _check_name(kind, name):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, not {name!r}")
    if not _NAME.match(name):
        raise ValueError(f"{kind} name must be an upper-case identifier ([A-Z][A-Z0-9_]*), "
                         f"not {name!r}")


def _check_int(what, value, minimum=0):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be an integer of at least {minimum}, not {value!r}")


@dataclass(frozen=True)
class Field:
    """A named bit field of a register: bits ``offset .. offset + width - 1``."""

    name: str
    offset: int
    width: int = 1
    description: str = ""

    def __post_init__(self):
        _check_name("Field", self.name)
        _check_int(f"Field {self.name} offset", self.offset)
        _check_int(f"Field {self.name} width", self.width, minimum=1)
        if not isinstance(self.description, str):
            raise TypeError(f"Field {self.name} description must be a string, "
                            f"not {self.description!r}")

    @property
    def mask(self):
        """The field's bits, in place."""
        return ((1 << self.width) - 1) << self.offset

    @property
    def bits(self):
        """``"[msb:lsb]"`` or ``"[bit]"``."""
        msb = self.offset + self.width - 1
        return f"[{msb}:{self.offset}]" if self.width > 1 else f"[{self.offset}]"


@dataclass(frozen=True)
class Register:
    """One register of a :class:`RegisterMap`.

    Parameters
    ----------
    name : str
        Upper-case identifier (``"IRQ_STATUS"``); the hardware port is its lower-case form.
    offset : int
        Byte offset; a multiple of the map's word size.
    access : Access
    reset : int
        Value after reset (RW, W1C), the constant (CONST), or the documented value after
        reset that the hardware drives (RO). WO registers hold no value: 0.
    description : str
    fields : tuple of Field
        Named bit fields; none means the whole word is one value.

    The width checks that depend on the bus (fields and reset value within ``data_width``)
    are made by the :class:`RegisterMap`.
    """

    name: str
    offset: int
    access: Access
    reset: int = 0
    description: str = ""
    fields: tuple = ()

    def __post_init__(self):
        _check_name("Register", self.name)
        if self.name == "SIGNATURE":
            raise ValueError("Register name SIGNATURE is reserved: the hardware port would be "
                             "the interface's 'signature'")
        _check_int(f"Register {self.name} offset", self.offset)
        if not isinstance(self.access, Access):
            raise TypeError(f"Register {self.name} access must be an Access, "
                            f"not {self.access!r}")
        _check_int(f"Register {self.name} reset value", self.reset)
        if not isinstance(self.description, str):
            raise TypeError(f"Register {self.name} description must be a string, "
                            f"not {self.description!r}")
        object.__setattr__(self, "fields", tuple(self.fields))
        names, used = set(), 0
        for field in self.fields:
            if not isinstance(field, Field):
                raise TypeError(f"Register {self.name} fields must be Field objects, "
                                f"not {field!r}")
            if field.name in names:
                raise ValueError(f"Register {self.name} has two fields named {field.name}")
            if used & field.mask:
                raise ValueError(f"Register {self.name} field {field.name} {field.bits} "
                                 f"overlaps another field")
            names.add(field.name)
            used |= field.mask
        if self.fields and self.reset & ~used:
            raise ValueError(f"Register {self.name} reset value {self.reset:#x} sets bits "
                             f"outside its fields (mask {used:#x})")
        if self.access is Access.WO and self.reset:
            raise ValueError(f"Register {self.name} is write-only (no state): its reset value "
                             f"must be 0, not {self.reset:#x}")

    @property
    def hw_name(self):
        """Name of the register's hardware port."""
        return self.name.lower()

    def field(self, name):
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"Register {self.name} has no field {name!r}")

    def encode(self, **values):
        """The register value with each named field set to its value (others 0)."""
        word = 0
        for name, value in values.items():
            field = self.field(name)
            if not isinstance(value, int) or not 0 <= value < 1 << field.width:
                raise ValueError(f"Register {self.name} field {field.name} value {value!r} "
                                 f"does not fit {field.width} bit(s)")
            word |= value << field.offset
        return word

    def decode(self, word):
        """``{field name: value}`` of a register value."""
        return {f.name: (word >> f.offset) & ((1 << f.width) - 1) for f in self.fields}


class RegisterMap:
    """A bank of registers, checked at construction.

    Parameters
    ----------
    name : str
        Upper-case identifier; the prefix of the generated C macros.
    registers : iterable of Register
    data_width : int
        Bus data width, 32 or 64: the width of every register.
    irq : tuple of (str, str) or None
        ``(status, enable)``: the names of a W1C and an RW register; the bank's ``irq``
        output is the OR of ``status & enable``.
    description : str

    Raises
    ------
    TypeError
        A parameter has the wrong type.
    ValueError
        Two registers share a name or an offset, an offset is not a multiple of the word
        size, a field or a reset value does not fit ``data_width``, or ``irq`` names a missing
        register or one of the wrong access.
    """

    def __init__(self, name, registers, *, data_width=32, irq=None, description=""):
        _check_name("Register map", name)
        _check_int("Register map data_width", data_width)
        if data_width not in (32, 64):
            raise ValueError(f"Register map data_width must be 32 or 64, not {data_width!r}")
        self.name = name
        self.data_width = data_width
        self.description = description
        registers = tuple(registers)
        by_name, by_offset = {}, {}
        for reg in registers:
            if not isinstance(reg, Register):
                raise TypeError(f"Register map entries must be Register objects, not {reg!r}")
            if reg.name in by_name:
                raise ValueError(f"Register name {reg.name} is used twice")
            if reg.offset % self.word_bytes:
                raise ValueError(f"Register {reg.name} offset {reg.offset:#x} is not a multiple "
                                 f"of {self.word_bytes} bytes")
            if reg.offset in by_offset:
                raise ValueError(f"Register {reg.name} at offset {reg.offset:#x} overlaps "
                                 f"register {by_offset[reg.offset].name}")
            if reg.reset >= 1 << data_width:
                raise ValueError(f"Register {reg.name} reset value {reg.reset:#x} does not fit "
                                 f"{data_width} bits")
            for field in reg.fields:
                if field.offset + field.width > data_width:
                    raise ValueError(f"Register {reg.name} field {field.name} {field.bits} does "
                                     f"not fit {data_width} bits")
            by_name[reg.name] = reg
            by_offset[reg.offset] = reg
        self.registers = tuple(sorted(registers, key=lambda r: r.offset))
        self._by_name = by_name
        if irq is not None:
            if (not isinstance(irq, tuple) or len(irq) != 2
                    or not all(isinstance(n, str) for n in irq)):
                raise TypeError(f"Register map irq must be a (status, enable) pair of register "
                                f"names, not {irq!r}")
            for name, access in zip(irq, (Access.W1C, Access.RW), strict=True):
                if name not in by_name:
                    raise ValueError(f"Register map irq names register {name}, which is not in "
                                     f"the map")
                if by_name[name].access is not access:
                    raise ValueError(f"Register map irq register {name} must be {access.value}, "
                                     f"not {by_name[name].access.value}")
        self.irq = irq

    @property
    def word_bytes(self):
        return self.data_width // 8

    @property
    def span(self):
        """Bytes from offset 0 to the end of the last register."""
        return max((r.offset for r in self.registers), default=0) + self.word_bytes

    @property
    def addr_bits(self):
        """Fewest byte-address bits that reach every register."""
        return max(1, (self.span - 1).bit_length())

    def __getitem__(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"Register map {self.name} has no register {name!r}") from None

    def __iter__(self):
        return iter(self.registers)

    def __len__(self):
        return len(self.registers)

    def __repr__(self):
        return f"RegisterMap({self.name!r}, {len(self)} registers)"

    def at(self, offset):
        """The register at byte ``offset`` (any byte of its word), or ``None``."""
        aligned = offset - offset % self.word_bytes
        for reg in self.registers:
            if reg.offset == aligned:
                return reg
        return None

    # What the hardware implements.

    def mask(self, reg):
        """Implemented bits of ``reg``: its fields, or the whole word."""
        if not reg.fields:
            return (1 << self.data_width) - 1
        mask = 0
        for field in reg.fields:
            mask |= field.mask
        return mask

    def width(self, reg):
        """Width of ``reg``'s hardware port: up to its highest field bit, or the whole word."""
        return self.mask(reg).bit_length()

    def shape(self, reg):
        """Shape of ``reg``'s hardware port: a layout of its fields, or ``unsigned``."""
        if not reg.fields:
            return unsigned(self.data_width)
        return data.FlexibleLayout(self.width(reg), {
            f.name.lower(): data.Field(unsigned(f.width), f.offset) for f in reg.fields})

    def init(self, reg):
        """Initializer of ``reg``'s port (its reset value) for :meth:`shape`."""
        if not reg.fields:
            return reg.reset
        return {name.lower(): value for name, value in reg.decode(reg.reset).items()}

    @property
    def signature(self):
        """Hardware-side ports of the bank (as the bank drives them), one per register.

        RW: ``Out(shape)``, the value. RO: ``In(shape)``, the value to read. W1C:
        ``Out(Signature({"value": Out(shape), "set": In(shape)}))``. WO:
        ``Out(Signature({"data": Out(shape), "strobe": Out(1), "full": In(1)}))``. CONST
        registers have no port.
        """
        members = {}
        for reg in self.registers:
            shape = self.shape(reg)
            if reg.access is Access.RW:
                members[reg.hw_name] = Out(shape, init=self.init(reg))
            elif reg.access is Access.RO:
                members[reg.hw_name] = In(shape)
            elif reg.access is Access.W1C:
                members[reg.hw_name] = Out(wiring.Signature({
                    "value": Out(shape, init=self.init(reg)), "set": In(shape)}))
            elif reg.access is Access.WO:
                members[reg.hw_name] = Out(wiring.Signature({
                    "data": Out(shape), "strobe": Out(1), "full": In(1)}))
        return wiring.Signature(members)


# The Tessera accelerator's map.

#: ``ID`` register: ASCII ``"TSRA"`` read as a big-endian word.
TESSERA_ID = int.from_bytes(b"TSRA", "big")

#: (major, minor) of the register map; the major changes when a register moves or changes
#: meaning, the minor when one is added.
REGMAP_VERSION = (0, 2)


def _log2(value):
    return value.bit_length() - 1


def tessera_register_map(config):
    """The register map of an accelerator built from ``config`` (a TesseraConfig).

    Preliminary: issue #7 wires it to the dispatcher, the units and the DMA. The CONFIG
    registers describe ``config`` so that a driver can check it talks to the hardware it was
    built for; 64-bit bus addresses add ``ERROR_ADDR_HI``.

    Raises
    ------
    ValueError
        A configuration value does not fit its CONFIG field.
    """
    def const(name, offset, description, fields, **values):
        reg = Register(name, offset, Access.CONST, 0, description, fields)
        try:
            return Register(name, offset, Access.CONST, reg.encode(**values), description,
                            fields)
        except ValueError as error:
            raise ValueError(f"Config {config.name!r} does not fit the register map: "
                             f"{error}") from None

    lo16, hi16 = (0, 16), (16, 16)
    registers = [
        Register("ID", 0x00, Access.CONST, TESSERA_ID,
                 "Identifies a Tessera accelerator: ASCII 'TSRA' (0x54535241)."),
        const("VERSION", 0x04, "Register map version.", (
            Field("MINOR", *lo16, "Incremented when registers are added."),
            Field("MAJOR", *hi16, "Incremented when a register moves or changes meaning."),
        ), MAJOR=REGMAP_VERSION[0], MINOR=REGMAP_VERSION[1]),
        const("CONFIG0", 0x08, "Array geometry and lane widths.", (
            Field("DIM", 0, 8, "The array is DIM x DIM processing elements."),
            Field("ACT_WIDTH", 8, 7, "Bits of an activation lane."),
            Field("ACT_SIGNED", 15, 1, "Activations are signed."),
            Field("WEIGHT_WIDTH", 16, 7, "Bits of a weight lane."),
            Field("WEIGHT_SIGNED", 23, 1, "Weights are signed."),
            Field("ACC_WIDTH", 24, 8, "Bits of an accumulator lane (signed)."),
        ), DIM=config.dim, ACT_WIDTH=config.act_width, ACT_SIGNED=int(config.act_signed),
            WEIGHT_WIDTH=config.weight_width, WEIGHT_SIGNED=int(config.weight_signed),
            ACC_WIDTH=config.acc_width),
        const("CONFIG1", 0x0C, "On-chip memories (rows of DIM lanes).", (
            Field("SP_DEPTH_LOG2", 0, 8, "log2 of the scratchpad rows."),
            Field("SP_BANKS_LOG2", 8, 8, "log2 of the scratchpad banks."),
            Field("ACC_DEPTH_LOG2", 16, 8, "log2 of the accumulator rows."),
            Field("ACC_BANKS_LOG2", 24, 8, "log2 of the accumulator banks."),
        ), SP_DEPTH_LOG2=_log2(config.sp_depth), SP_BANKS_LOG2=_log2(config.sp_banks),
            ACC_DEPTH_LOG2=_log2(config.acc_depth), ACC_BANKS_LOG2=_log2(config.acc_banks)),
        const("CONFIG2", 0x10, "Buses and post-processing.", (
            Field("BUS_DATA_WIDTH", 0, 8, "Bits of a DMA data beat (32, 64 or 128)."),
            Field("BUS_ADDR_WIDTH", 8, 8, "Bits of a DMA byte address."),
            Field("ROW_ADDR_WIDTH", 16, 8, "Bits of a row address in instructions."),
            Field("POSTPROC_LANES", 24, 8, "Lanes the post-processing computes at a time."),
        ), BUS_DATA_WIDTH=config.bus_data_width, BUS_ADDR_WIDTH=config.bus_addr_width,
            ROW_ADDR_WIDTH=config.addr_width, POSTPROC_LANES=config.postproc_lanes_per_cycle),
        const("CONFIG3", 0x14, "Post-processing throughput.", (
            Field("POSTPROC_MULTIPLY_CYCLES", 0, 8, "Cycles each group of POSTPROC_LANES lanes "
                  "takes (its multiply): a row takes DIM / POSTPROC_LANES * "
                  "POSTPROC_MULTIPLY_CYCLES cycles."),
        ), POSTPROC_MULTIPLY_CYCLES=config.postproc_multiply_cycles),
        Register("CONTROL", 0x20, Access.RW, 0, "Run control (levels, not pulses).", (
            Field("RUN", 0, 1, "While 1, the dispatcher issues instructions from the queue; "
                  "0 pauses it after the instructions already issued."),
            Field("SOFT_RESET", 1, 1, "While 1, the units, the queues and the error state are "
                  "held in reset (the registers here are not)."),
            Field("PERF_CLEAR", 2, 1, "While 1, the performance counters are held at 0."),
        )),
        Register("STATUS", 0x24, Access.RO, 0, "Accelerator state.", (
            Field("BUSY", 0, 1, "An instruction is executing, or queued and not stopped by "
                  "an error (after an error BUSY falls once the units drained: then "
                  "SOFT_RESET)."),
            Field("DONE", 1, 1, "An END instruction completed and nothing was pushed since."),
            Field("ERROR", 2, 1, "An error stopped the dispatcher (see ERROR_CAUSE)."),
            Field("INSN_FULL", 3, 1, "The instruction queue is full: a write to INSN would be "
                  "dropped and stop the accelerator with QUEUE_FULL."),
            Field("INSN_EMPTY", 4, 1, "The instruction queue is empty."),
        )),
        Register("ERROR_CAUSE", 0x28, Access.RO, 0, "The first error since reset.", (
            Field("CODE", 0, 8, "What went wrong: an hdl.isa.ErrorCause value (0: none)."),
            Field("UNIT", 8, 2, "The unit that failed: an hdl.isa.Unit value."),
        )),
        Register("ERROR_ADDR", 0x2C, Access.RO, 0,
                 "Byte address (low 32 bits) of the failing DMA access; defined while ERROR "
                 "holds a DMA cause (at 50 MHz and below it follows the bursts in flight "
                 "before). With a DMA address space narrower than 32 bits (tiny: 16), an "
                 "address refused for its high bits reads with all of them set."),
    ]
    if config.bus_addr_width > 32:
        registers.append(Register("ERROR_ADDR_HI", 0x30, Access.RO, 0,
                                  "High bits of the failing DMA access's byte address."))
    irq_fields = (
        Field("DONE", 0, 1, "An END instruction completed."),
        Field("ERROR", 1, 1, "An error stopped the dispatcher."),
    )
    registers += [
        Register("IRQ_ENABLE", 0x40, Access.RW, 0, "Which IRQ_STATUS bits raise the interrupt.",
                 irq_fields),
        Register("IRQ_STATUS", 0x44, Access.W1C, 0,
                 "Interrupt causes (sticky; write 1 to clear).", irq_fields),
        Register("INSN", 0x50, Access.WO, 0,
                 "Pushes one 32-bit word into the instruction queue, low word of an "
                 "instruction first. A word pushed into a full queue is dropped and latches "
                 "the error QUEUE_FULL; a write that does not strobe all four bytes answers "
                 "SLVERR and pushes nothing."),
        Register("INSN_FREE", 0x54, Access.RO, 0,
                 "Instructions the queue can still take (push at most this many)."),
        Register("CYCLES_LO", 0x80, Access.RO, 0, "Cycles while RUN and BUSY, low word (read "
                 "HI, LO, HI again; retry if HI changed)."),
        Register("CYCLES_HI", 0x84, Access.RO, 0, "Cycles while RUN and BUSY, high word."),
        Register("INSN_COUNT", 0x88, Access.RO, 0, "Instructions retired (wraps)."),
        Register("EXEC_CYCLES", 0x8C, Access.RO, 0,
                 "Cycles the array computed (activation rows entered; wraps)."),
        Register("DMA_READ_BEATS", 0x90, Access.RO, 0, "DMA read data beats (wraps)."),
        Register("DMA_WRITE_BEATS", 0x94, Access.RO, 0, "DMA write data beats (wraps)."),
        Register("LOAD_BUSY", 0x98, Access.RO, 0, "Cycles the LOAD unit was busy (wraps)."),
        Register("EXEC_BUSY", 0x9C, Access.RO, 0, "Cycles the EXEC unit was busy (wraps)."),
        Register("STORE_BUSY", 0xA0, Access.RO, 0, "Cycles the STORE unit was busy (wraps)."),
        Register("STALL_DEPENDENCY", 0xA4, Access.RO, 0,
                 "Unit-cycles a unit's next instruction waited for a token (wraps)."),
        Register("STALL_MEMORY", 0xA8, Access.RO, 0,
                 "Cycles the LOAD or STORE unit was busy while the DMA moved no beat for it "
                 "(waiting for system memory; wraps)."),
        Register("BANK_CONFLICTS", 0xAC, Access.RO, 0,
                 "Cycles a scratchpad or accumulator access waited for a bank (wraps)."),
    ]
    return RegisterMap("TESSERA", registers, irq=("IRQ_STATUS", "IRQ_ENABLE"),
                       description=f"Tessera CSRs ({config.name})")

"""The Tessera instruction set **(contract)**: one definition for the decoder and the assembler.

Every instruction is :data:`INSN_WIDTH` (128) bits, pushed by the host as four 32-bit words
(least significant first). It starts with a :func:`header_layout`: the opcode and four
dependency flags. The layouts below are ``data.StructLayout`` s: the hardware decodes with
``Signal(LOAD)`` views, the assembler (:mod:`sw.assembler`) encodes with ``layout.const``.

Units and dependency tokens (as in TVM's VTA): LOAD, EXEC and STORE run concurrently, each from
its own queue, in that order along the data flow. Between neighbours there are two token
counters each way (LOAD -> EXEC "operands ready", EXEC -> LOAD "buffer free", EXEC -> STORE
"results ready", STORE -> EXEC "accumulator free"). An instruction with ``pop_prev`` /
``pop_next`` waits for (and takes) a token from its previous / next unit before it starts;
with ``push_prev`` / ``push_next`` it gives one to that unit once its own effects are complete
(memory written). LOAD has no previous unit and STORE no next one: those flags are malformed.

Memory layout (what the driver writes, what LOAD and STORE move): a scratchpad row is ``dim``
int8 lanes, which occupies :func:`row_bytes` bytes in memory (``dim`` rounded up to whole bus
beats, zero padded); an int32 output row occupies :func:`acc_row_bytes`; a post-processing
parameter block (CONFIG) is :func:`param_block_bytes` bytes of little-endian int32 words:
per column ``bias, multiplier, shift, 0``, then ``zero_point, act_min, act_max, 0``.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "ADDR_BITS", "DRAM_ADDR_BITS", "INSN_WIDTH", "MAX_TOKENS", "ErrorCause", "Opcode", "Unit",
    "acc_row_bytes", "config_layout", "end_layout", "exec_layout", "header_layout",
    "load_layout", "check_dma_addresses", "param_block_bytes", "row_bytes", "store_layout",
    "unit_of", "unit_signature",
]

#: Bits of an instruction.
INSN_WIDTH = 128
#: Tokens one unit may have given another and that are not taken yet, at most: one more is
#: ``TOKEN_OVERFLOW`` (the dispatcher's counters are 8 bits).
MAX_TOKENS = 255
#: Bits of an on-chip row address field (scratchpad, accumulator) and of a row count.
ADDR_BITS = 16
#: Bits of a byte address or byte stride in system memory.
DRAM_ADDR_BITS = 32


class Opcode(enum.Enum, shape=3):
    """What an instruction does; the encodings 4 to 6 are undefined (an error)."""
    LOAD = 0    # system memory -> scratchpad rows (2-D: rows with a byte stride)
    EXEC = 1    # optional weight preload, then activation rows -> array -> accumulator rows
    STORE = 2   # accumulator rows -> post-processing -> system memory or scratchpad
    CONFIG = 3  # post-processing parameters of one column tile, from system memory
    END = 7     # done (and the interrupt) once every unit has finished


class ErrorCause(enum.Enum, shape=4):
    """The sticky error cause the accelerator reports (the first error wins)."""
    NONE = 0
    UNDEFINED_OPCODE = 1   # an opcode of 4, 5 or 6
    MALFORMED = 2          # a flag its unit cannot have, zero rows, to_sp without REQUANT
    SP_RANGE = 3           # a scratchpad row at or beyond sp_depth
    ACC_RANGE = 4          # an accumulator row at or beyond acc_depth
    DMA_ALIGN = 5          # a system-memory address or stride not a multiple of the beat size
    DMA_READ = 6           # SLVERR/DECERR on a read burst
    DMA_WRITE = 7          # SLVERR/DECERR on a write burst
    QUEUE_FULL = 8         # an instruction pushed into a full queue
    TOKEN_UNDERFLOW = 9    # a unit waits for a token its neighbour can no longer give
    TOKEN_OVERFLOW = 10    # a unit gives a neighbour a token beyond MAX_TOKENS untaken ones


class Unit(enum.Enum):
    """The unit (and queue) that runs an opcode; END is the dispatcher's own."""
    LOAD = 0
    EXEC = 1
    STORE = 2
    DISPATCH = 3


_UNIT_OF = {Opcode.LOAD: Unit.LOAD, Opcode.EXEC: Unit.EXEC, Opcode.STORE: Unit.STORE,
            Opcode.CONFIG: Unit.STORE, Opcode.END: Unit.DISPATCH}


def unit_of(opcode):
    """The :class:`Unit` that executes ``opcode``."""
    return _UNIT_OF[Opcode(opcode)]


def header_layout():
    """Opcode and dependency flags: the low 8 bits of every instruction."""
    return data.StructLayout({
        "opcode": Opcode,
        "pop_prev": 1,
        "pop_next": 1,
        "push_prev": 1,
        "push_next": 1,
        "reserved": 1,
    })


def _instruction(fields):
    layout = data.StructLayout({"header": header_layout(), **fields})
    pad = INSN_WIDTH - layout.size
    assert pad >= 0, fields
    return data.StructLayout({"header": header_layout(), **fields, "reserved": unsigned(pad)})


def load_layout():
    """LOAD: ``rows`` rows from ``dram_addr + r * dram_stride`` to scratchpad ``sp_addr + r``."""
    return _instruction({
        "sp_addr": ADDR_BITS,
        "rows": ADDR_BITS,
        "dram_addr": DRAM_ADDR_BITS,
        "dram_stride": DRAM_ADDR_BITS,
    })


def exec_layout():
    """EXEC: with ``preload``, the weight tile is scratchpad rows ``weight_addr + k`` (k < dim,
    row k meets activation lane k); then for ``r < rows``: accumulator row ``acc_addr + r``
    = (or += with ``accumulate``) scratchpad row ``act_addr + r`` times the weight tile. Without
    ``preload`` the tile of the previous EXEC is used again."""
    return _instruction({
        "weight_addr": ADDR_BITS,
        "act_addr": ADDR_BITS,
        "acc_addr": ADDR_BITS,
        "rows": ADDR_BITS,
        "preload": 1,
        "accumulate": 1,
    })


def store_layout():
    """STORE: for ``r < rows``, accumulator row ``acc_addr + r`` through the post-processing
    (``mode``: a :class:`hdl.postproc.PostMode` value) to ``dest + r * dram_stride`` in
    system memory, or with ``to_sp`` (int8 ``REQUANT`` rows only) to scratchpad row
    ``dest + r``. The parameters are those of the latest CONFIG before it."""
    return _instruction({
        "acc_addr": ADDR_BITS,
        "rows": ADDR_BITS,
        "dest": DRAM_ADDR_BITS,
        "dram_stride": DRAM_ADDR_BITS,
        "mode": 2,
        "to_sp": 1,
    })


def config_layout():
    """CONFIG: load the post-processing parameter block at ``dram_addr``."""
    return _instruction({"dram_addr": DRAM_ADDR_BITS})


def end_layout():
    """END: no operands."""
    return _instruction({})


def _round_up(value, step):
    return -(-value // step) * step


def check_dma_addresses(config):
    """The units hand the ISA's 32-bit byte addresses and strides to the DMA whole (its
    commands' fields are :func:`hdl.burst_splitter.command_addr_width` bits). On a narrower
    bus (tiny: ``bus_addr_width`` 16, its 64 KiB of system memory) the accelerator's physical
    address space is ``2**bus_addr_width`` bytes: a LOAD, STORE or CONFIG whose address or
    stride has any bit at or above ``bus_addr_width``, or whose rows would run past
    ``2**bus_addr_width``, is refused by the DMA (``DMAError.RANGE``; the unit reports
    ``DMA_READ`` or ``DMA_WRITE``) and changes nothing in memory; an address is never cut.
    So every ``bus_addr_width`` a config allows (12 to 64 bits) is fine.

    Raises
    ------
    ValueError
        ``config.bus_addr_width`` is below 12 (one 4 KiB page).
    """
    if config.bus_addr_width < 12:
        raise ValueError(f"bus_addr_width must be at least 12 (a 4 KiB page) for the "
                         f"accelerator, not {config.bus_addr_width!r}")


def row_bytes(config):
    """Bytes one scratchpad row (``dim`` int8 lanes) occupies in system memory."""
    return _round_up(config.dim * config.act_width // 8, config.bus_data_width // 8)


def acc_row_bytes(config):
    """Bytes one int32 output row (``dim`` lanes) occupies in system memory."""
    return _round_up(config.dim * 4, config.bus_data_width // 8)


def param_block_bytes(config):
    """Bytes of a CONFIG parameter block: ``dim + 1`` records of four int32 words."""
    return _round_up(16 * (config.dim + 1), config.bus_data_width // 8)


def unit_signature():
    """The port between the dispatcher and a unit (LOAD, EXEC or STORE), seen from the unit.

    ``insn``: raw instructions of the unit's own opcodes, handed over once their ``pop``
    tokens were taken. ``done``: pulses once per completed instruction, in the order they were
    accepted; "completed" means its effects are visible to every other unit (rows written into
    the scratchpad or accumulator, write responses received), so the dispatcher may then push
    the instruction's tokens. A unit may accept the next instruction before the previous one
    is done (pipelining). ``busy``: an accepted instruction is not done yet. ``error``: sticky,
    the first :class:`ErrorCause` the unit met (``NONE`` until then; only reset clears it).
    An instruction that fails a check (malformed, out of range, misaligned) has no effect and
    never pulses ``done``; after an error a unit accepts no further instruction, lets what it
    started on a bus finish (a DMA transfer drains), and then drops ``busy``.
    """
    return wiring.Signature({
        "insn": In(stream.Signature(INSN_WIDTH)),
        "done": Out(1),
        "busy": Out(1),
        "error": Out(ErrorCause),
    })

"""A single-port RAM: iCE40UP SPRAM tiles on an UltraPlus, an inferred memory elsewhere."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .sram import select_row

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "SinglePortRAM", "has_spram"]

#: One SB_SPRAM256KA: 16,384 words of 16 bits, written by nibble (MASKWREN).
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16
#: An iCE40UP5K has four.
SPRAM_TILES = 4


def has_spram(platform):
    """Whether ``platform`` (an Amaranth platform, or None) is an iCE40 UltraPlus (SPRAM)."""
    return str(getattr(platform, "device", "")).startswith("iCE40UP")


class SinglePortRAM(wiring.Component):
    """``depth`` words of ``width`` bits with one port: a write or a read per cycle.

    Timing: a cycle with any ``w_en`` bit writes the enabled bytes of ``w_data`` at
    ``addr``; a cycle with ``r_en`` (and no write) reads ``addr``, and ``r_data`` holds that
    word in the next cycle only (afterwards it is undefined). No stalls.

    On an iCE40 UltraPlus (:func:`has_spram`) it is ``width / 16`` x ``depth / 16384``
    ``SB_SPRAM256KA`` instances (a byte enable drives two nibble enables); elsewhere, or in
    Amaranth's simulator, a :class:`Memory` with one read and one write port on the same
    address, which yosys maps to block RAM (ECP5 DP16KD, SKY130 macros through the handoff
    seam).

    Parameters
    ----------
    width : int
        Bits per word: a positive multiple of 8 (of 16 on an UltraPlus).
    depth : int
        Words: a positive power of two (on an UltraPlus at least 16,384, and at most
        four SPRAM tiles in all).

    Members
    -------
    addr : In(range(depth))
    w_data : In(width)
    w_en : In(width // 8)
    r_en : In(1)
    r_data : Out(width)
    """

    def __init__(self, *, width, depth):
        for name, value in (("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool):
                self._MustUse__silence = True
                raise TypeError(f"{name} must be an integer, not {value!r}")
        if width < 8 or width % 8:
            self._MustUse__silence = True
            raise ValueError(f"width must be a positive multiple of 8, not {width!r}")
        if depth < 2 or depth & (depth - 1):
            self._MustUse__silence = True
            raise ValueError(f"depth must be a power of two of at least 2, not {depth!r}")
        self.width, self.depth = width, depth
        super().__init__({
            "addr": In(range(depth)),
            "w_data": In(width),
            "w_en": In(width // 8),
            "r_en": In(1),
            "r_data": Out(width),
        })

    def spram_tiles(self):
        """``(columns, rows)`` of SB_SPRAM256KA tiles; ValueError if they do not fit."""
        if self.width % SPRAM_WIDTH or self.depth < SPRAM_DEPTH:
            raise ValueError(f"SPRAM needs width a multiple of {SPRAM_WIDTH} and depth at "
                             f"least {SPRAM_DEPTH}, not {self.width} x {self.depth}")
        columns, rows = self.width // SPRAM_WIDTH, self.depth // SPRAM_DEPTH
        if columns * rows > SPRAM_TILES:
            raise ValueError(f"{self.width} x {self.depth} needs {columns * rows} SPRAM tiles; "
                             f"an iCE40UP5K has {SPRAM_TILES}")
        return columns, rows

    def elaborate(self, platform):
        m = Module()
        if has_spram(platform):
            return self._spram(m)
        m.submodules.memory = memory = Memory(shape=self.width, depth=self.depth, init=[])
        write = memory.write_port(granularity=8)
        read = memory.read_port()
        m.d.comb += [
            write.addr.eq(self.addr), write.data.eq(self.w_data), write.en.eq(self.w_en),
            read.addr.eq(self.addr), read.en.eq(self.r_en & ~self.w_en.any()),
            self.r_data.eq(read.data),
        ]
        return m

    def _spram(self, m):
        columns, rows = self.spram_tiles()
        row = self.addr[14:] if rows > 1 else Const(0, 1)
        read_row = Signal.like(row)
        m.d.sync += read_row.eq(row)
        writing = self.w_en.any()
        outputs = []
        for r in range(rows):
            selected = row == r
            words = []
            for c in range(columns):
                out = Signal(SPRAM_WIDTH, name=f"spram_{r}_{c}_out")
                # Byte enable -> the two nibble write enables of that byte.
                mask = Cat(*(self.w_en[2 * c + i // 2] for i in range(4)))
                m.submodules[f"spram_{r}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr[:14], i_DATAIN=self.w_data[16 * c:16 * c + 16],
                    i_MASKWREN=mask, i_WREN=writing,
                    i_CHIPSELECT=selected & (writing | self.r_en), i_CLOCK=ClockSignal(),
                    i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1),
                    o_DATAOUT=out)
                words.append(out)
            outputs.append(Cat(*words))
        m.d.comb += self.r_data.eq(select_row(outputs, read_row))
        return m

"""One SRAM bank, and the seam where a foundry flow puts a real SRAM macro.

Design choice (the memory seam): every memory of Tessera is a :class:`SRAM1R1W`. For FPGAs and
simulation it elaborates to an inline ``lib.memory.Memory``, which yosys maps to block RAM
(iCE40 EBR, ECP5 DP16KD). Elaborated for a platform whose ``sram_macros`` attribute is true
(the foundry handoff), it becomes an ``Instance`` of ``tessera_sram_1r1w_<depth>x<width>``:
one module name per memory shape, however many instances share it, whose behavioural body
:func:`sram_behavioural_module` gives once, separately, so that a real macro can replace that
file without touching the rest. An ``Instance`` was chosen over renaming modules after
elaboration because Amaranth 0.5 names an inlined memory after its place in the hierarchy, so a
rename pass would have to find and merge identical modules, while the ``Instance`` makes the
boundary explicit in the RTL itself.
"""

from contextlib import contextmanager

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SRAM1R1W", "has_ice40_ebr", "poisoned_collisions", "select_row",
           "sram_behavioural_module", "sram_module_name"]

#: One SB_RAM40_4K in its 256 x 16 mode (the only one used here: plain bit order).
EBR_DEPTH, EBR_WIDTH = 256, 16


_poisoned = False


@contextmanager
def poisoned_collisions(enabled=True):
    """Test hook: every :class:`SRAM1R1W` with ``collision="any"`` elaborated inside this
    context for simulation (no platform) answers a read of the row written in the same cycle
    with that row's old value inverted, rather than the new row. An owner that relies on
    such a read (instead of forwarding the written row, as it promised) then reads
    garbage, as it would from an iCE40 ``SB_RAM40_4K`` or a macro; outside the context the
    inline memory is transparent and would hide the bug. Elaboration happens when the
    simulator is built: create it inside the context. ``enabled=False`` turns the hook off
    inside an enabled context."""
    global _poisoned
    saved, _poisoned = _poisoned, bool(enabled)
    try:
        yield
    finally:
        _poisoned = saved


def has_ice40_ebr(platform):
    """Whether ``platform`` (an Amaranth platform, or None) is an iCE40 (SB_RAM40_4K)."""
    return str(getattr(platform, "device", "")).startswith(("iCE40", "iCE5LP"))


def sram_module_name(depth, width):
    return f"tessera_sram_1r1w_{depth}x{width}"


class SRAM1R1W(wiring.Component):
    """Synchronous memory with one read and one write port, ``depth`` rows of ``width`` bits.

    Timing: ``r_data`` is the row at ``r_addr`` one cycle after ``r_en``, and holds while
    ``r_en`` is low. A read and a write of the same row in one cycle return the old row (not
    transparent, like most SRAM macros); the new row is read from the next cycle on.
    With ``collision="any"`` the owner promises never to use the data of such a read (it
    forwards the written row itself), and the read may return anything (a macro the old row,
    an iCE40 EBR undefined data; inside :func:`poisoned_collisions` the simulation returns
    the old row inverted, so that tests catch a broken promise): inline,
    the read port is then transparent, which FPGAs build more cheaply (yosys gives an iCE40
    EBR old-data reads with a delayed write plus transparency logic: ``2 * width`` flip-flops
    instead of ``width``); a macro keeps returning the old row. On an iCE40
    (:func:`has_ice40_ebr`) a ``collision="any"`` bank of a width that is a multiple of 16 is
    built from ``SB_RAM40_4K`` instances directly (256 x 16 each), whose same-row read is
    simply undefined: no flip-flops, no logic besides a row select for depths over 256.
    Contents are undefined after power-up (zero in simulation).

    Parameters
    ----------
    depth, width : int
    collision : "old" or "any"
        What a read of the row written in the same cycle returns: the old row, or either.

    Members
    -------
    r_addr, r_en, r_data : read port.
    w_addr, w_en, w_data : write port.
    """

    def __init__(self, depth, width, *, collision="old"):
        if collision not in ("old", "any"):
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise ValueError(f"SRAM collision must be 'old' or 'any', not {collision!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"SRAM depth must be a positive integer, not {depth!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"SRAM width must be a positive integer, not {width!r}")
        self.depth, self.width, self.collision = depth, width, collision
        super().__init__({
            "r_addr": In(range(depth)),
            "r_en": In(1),
            "r_data": Out(width),
            "w_addr": In(range(depth)),
            "w_en": In(1),
            "w_data": In(width),
        })

    @property
    def module_name(self):
        return sram_module_name(self.depth, self.width)

    def elaborate(self, platform):
        if getattr(platform, "sram_macros", False):
            return Instance(
                self.module_name,
                i_clk=ClockSignal(),
                i_r_addr=self.r_addr, i_r_en=self.r_en, o_r_data=self.r_data,
                i_w_addr=self.w_addr, i_w_en=self.w_en, i_w_data=self.w_data,
            )
        if (self.collision == "any" and self.width % EBR_WIDTH == 0
                and has_ice40_ebr(platform)):
            return self._ice40_ebr()
        m = Module()
        m.submodules.memory = memory = Memory(shape=self.width, depth=self.depth,
                                              init=[])
        write = memory.write_port()
        poisoned = self.collision == "any" and _poisoned and platform is None
        transparent = self.collision == "any" and not poisoned
        read = memory.read_port(transparent_for=(write,) if transparent else ())
        m.d.comb += [
            read.addr.eq(self.r_addr), read.en.eq(self.r_en), self.r_data.eq(read.data),
            write.addr.eq(self.w_addr), write.en.eq(self.w_en), write.data.eq(self.w_data),
        ]
        if poisoned:
            collided = Signal()  # the held answer was read as its row was written
            with m.If(self.r_en):
                m.d.sync += collided.eq(self.w_en & (self.r_addr == self.w_addr))
            m.d.comb += self.r_data.eq(Mux(collided, ~read.data, read.data))
        return m

    def _ice40_ebr(self):
        """``SB_RAM40_4K`` tiles, ``width / 16`` wide and ``ceil(depth / 256)`` deep; the
        output holds while ``r_en`` is low (the tiles' RE), so does the registered row select."""
        m = Module()
        rows = -(-self.depth // EBR_DEPTH)
        r_row, w_row = self.r_addr[8:], self.w_addr[8:]
        read_row = Signal(range(rows))
        if rows > 1:
            with m.If(self.r_en):
                m.d.sync += read_row.eq(r_row)
        outputs = []
        for r in range(rows):
            words = []
            for c in range(self.width // EBR_WIDTH):
                out = Signal(EBR_WIDTH, name=f"ebr_{r}_{c}_out")
                m.submodules[f"ebr_{r}_{c}"] = Instance(
                    "SB_RAM40_4K",
                    p_READ_MODE=Const(0, 2), p_WRITE_MODE=Const(0, 2),
                    i_RCLK=ClockSignal(), i_RCLKE=Const(1, 1),
                    i_RE=self.r_en & (r_row == r) if rows > 1 else self.r_en,
                    i_RADDR=Cat(self.r_addr[:8], Const(0, 11 - min(8, len(self.r_addr)))),
                    i_WCLK=ClockSignal(), i_WCLKE=Const(1, 1),
                    i_WE=self.w_en & (w_row == r) if rows > 1 else self.w_en,
                    i_WADDR=Cat(self.w_addr[:8], Const(0, 11 - min(8, len(self.w_addr)))),
                    i_MASK=Const(0, 16), i_WDATA=self.w_data[EBR_WIDTH * c:EBR_WIDTH * (c + 1)],
                    o_RDATA=out)
                words.append(out)
            outputs.append(Cat(*words))
        m.d.comb += self.r_data.eq(select_row(outputs, read_row))
        return m


def select_row(outputs, row):
    """``outputs[row]``: the read data of a memory built of rows of primitives (a chain of
    multiplexers on the row read last)."""
    data = outputs[0]
    for r in range(1, len(outputs)):
        data = Mux(row == r, outputs[r], data)
    return data


def sram_behavioural_module(depth, width):
    """The behavioural body of one memory shape: ``(module, ports)`` to convert as module
    :func:`sram_module_name`, with exactly the ports of the ``Instance`` (``clk``, the two
    ports, no reset: an SRAM has none)."""
    m = Module()
    m.domains.sync = sync = ClockDomain("sync", reset_less=True)
    m.submodules.sram = sram = SRAM1R1W(depth, width)
    return m, [sync.clk, sram.r_addr, sram.r_en, sram.r_data, sram.w_addr, sram.w_en,
               sram.w_data]

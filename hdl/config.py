"""The one configuration object of the accelerator **(contract)**.

Every part of Tessera (RTL, golden model, compiler, driver, generated headers) derives its widths,
sizes and clock targets from a :class:`TesseraConfig`. It checks itself at construction: a value
of the wrong kind raises :class:`TypeError`, an inconsistent value :class:`ValueError`; both name
the parameter and echo the value.
"""

from dataclasses import dataclass, fields, replace
from numbers import Real

from amaranth.hdl import Shape, signed, unsigned

__all__ = ["MULTIPLIERS", "PRESETS", "TesseraConfig", "preset"]

#: Multiplier implementations a processing element can use.
#:
#: ``"behavioural"``: the ``*`` operator; the synthesis tool chooses (the ASIC default).
#: ``"lut"``: a structural shift-and-add multiplier built from muxes and adders, which yosys
#: cannot turn back into a DSP block, so a design can bound how many DSPs it asks for.
#: ``"dsp"``: the ``*`` operator, meant to become a hard DSP block; with ``max_dsp`` set, only the
#: first ``max_dsp * dsp_products`` processing elements (row-major) get one and the rest use
#: ``"lut"``. With ``dsp_products=2`` consecutive DSP PEs share one block (two 8x8 products in
#: an iCE40UP SB_MAC16, :class:`hdl.ice40_dual_mult.ICE40DualMultiplier`).
MULTIPLIERS = ("behavioural", "lut", "dsp")


def _check_int(name, value, *, minimum):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        if minimum == 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
        raise ValueError(f"{name} must be an integer of at least {minimum}, not {value!r}")


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")


@dataclass(frozen=True)
class TesseraConfig:
    """Parameters of one Tessera accelerator instance.

    Parameters
    ----------
    name : str
        Preset name, reported by the tools.
    dim : int
        The systolic array is ``dim`` x ``dim`` processing elements.
    act_width, act_signed : int, bool
        Width and signedness of an activation lane.
    weight_width, weight_signed : int, bool
        Width and signedness of a weight lane.
    acc_width : int
        Width of the (always signed) accumulation; sums wrap modulo ``2**acc_width``.
        At least ``act_width + weight_width``, so that a single product never wraps.
    tag_width : int
        Width of the opaque tag an activation row carries to its result row.
    target_mhz : float
        Clock frequency the design is built for.
    multiplier : str
        One of :data:`MULTIPLIERS`.
    max_dsp : int or None
        With ``multiplier="dsp"``: at most this many DSP blocks; ``None`` means a DSP
        multiplier for every processing element.
    dsp_products : int
        Products one DSP block computes: 1, or 2 for the iCE40UP's SB_MAC16 in its 8x8 mode
        (signed 8-bit activations and weights only).
    product_stages : int
        Registers between each PE's multiplier and its adder: 1, or 2 where routing from a
        DSP block to the adder limits fmax (each one adds a cycle of array latency).
    sp_depth, sp_banks : int
        Scratchpad rows (``dim`` activation lanes each) in all, and how many banks they are
        split into (by the top address bits, so two banks are the two ping-pong halves).
        Powers of two; at least 2 banks of at least ``dim`` rows each.
    sp_single_port : bool
        Scratchpad banks have one port (iCE40 SPRAM): a read and a write to the same bank in
        one cycle conflict, and the write waits.
    acc_depth, acc_banks : int
        Accumulator rows (``dim`` lanes of ``acc_width``) in all, and their banks (at least 2:
        one is accumulated into while the store path drains the other).
    acc_registered : bool
        The accumulator issues its bank reads from flip-flops and registers the banks'
        outputs (:class:`hdl.accumulator.Accumulator`'s ``registered``: an answer a cycle
        later, more flip-flops): for a big FPGA whose block RAMs spread over the die. Fast
        clocks only.
    addr_width : int
        Width of a row address in requests (an ISA field): wider than the memories need, so
        that an out-of-range address can be detected and refused instead of wrapping.
    postproc_lanes : int or None
        Lanes the post-processing computes at a time; it divides ``dim``, and a row of ``dim``
        lanes takes ``dim // postproc_lanes * postproc_multiply_cycles`` cycles
        (:attr:`postproc_row_cycles`). ``None`` means ``dim`` (one row per multiply).
    postproc_multiply_cycles : int
        Cycles the post-processing's 32 x 32 multiply takes per lane: 1 (pipelined, one lane
        group per cycle), or 2, 4, 8, 16 or 32 (digit-serial: a 32 x ``32 / cycles`` partial
        product per cycle, one lane group every ``postproc_multiply_cycles`` cycles).
    bus_data_width : int
        Data width of the AXI4 DMA master: 32, 64 or 128 bits.
    bus_addr_width : int
        Byte-address width of the AXI buses (12 to 64).
    bus_id_width : int
        AXI4 ID width of the DMA master.
    dma_outstanding : int
        Read bursts the DMA keeps in flight (enough to hide the memory's read latency).
    dma_max_burst : int
        Longest AXI burst the DMA issues (a power of two, 1 to 256 beats); its read buffer
        holds two of them, in flip-flops on an ASIC.
    insn_queue_depth : int
        Instructions (128 bits each) the instruction queue holds.
    perf_counter_width : int
        Bits of each performance counter (1 to 32; CYCLES has twice as many): a counter
        wraps modulo ``2**perf_counter_width`` and reads zero-extended to its 32-bit register.
    unit_queue_depth : int
        Instructions each of the dispatcher's LOAD, EXEC and STORE queues holds (flip-flops,
        only the fields the unit needs): how far the dispatcher can run ahead of a unit that
        waits for a token.

    Raises
    ------
    TypeError
        A parameter has the wrong type.
    ValueError
        A parameter has an invalid value.
    """

    name: str = "custom"
    dim: int = 4
    act_width: int = 8
    act_signed: bool = True
    weight_width: int = 8
    weight_signed: bool = True
    acc_width: int = 32
    tag_width: int = 16
    target_mhz: float = 30.0
    multiplier: str = "behavioural"
    max_dsp: int | None = None
    dsp_products: int = 1
    product_stages: int = 1
    sp_depth: int = 1024
    sp_banks: int = 2
    sp_single_port: bool = False
    acc_depth: int = 256
    acc_banks: int = 2
    acc_registered: bool = False
    addr_width: int = 16
    postproc_lanes: int | None = None
    postproc_multiply_cycles: int = 1
    bus_data_width: int = 32
    bus_addr_width: int = 32
    bus_id_width: int = 4
    dma_outstanding: int = 4
    dma_max_burst: int = 256
    insn_queue_depth: int = 64
    unit_queue_depth: int = 4
    perf_counter_width: int = 32

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, not {self.name!r}")
        _check_int("dim", self.dim, minimum=1)
        _check_int("act_width", self.act_width, minimum=1)
        _check_bool("act_signed", self.act_signed)
        _check_int("weight_width", self.weight_width, minimum=1)
        _check_bool("weight_signed", self.weight_signed)
        _check_int("acc_width", self.acc_width, minimum=1)
        if self.acc_width < self.act_width + self.weight_width:
            raise ValueError(
                f"acc_width must be at least act_width + weight_width "
                f"({self.act_width + self.weight_width}), not {self.acc_width!r}")
        _check_int("tag_width", self.tag_width, minimum=1)
        if not isinstance(self.target_mhz, Real) or isinstance(self.target_mhz, bool):
            raise TypeError(f"target_mhz must be a real number, not {self.target_mhz!r}")
        if not self.target_mhz > 0:
            raise ValueError(f"target_mhz must be positive, not {self.target_mhz!r}")
        if self.multiplier not in MULTIPLIERS:
            raise ValueError(
                f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {self.multiplier!r}")
        if self.max_dsp is not None:
            _check_int("max_dsp", self.max_dsp, minimum=0)
            if self.multiplier != "dsp":
                raise ValueError(
                    f"max_dsp only applies to multiplier='dsp', not {self.multiplier!r}")
        if self.dsp_products not in (1, 2) or isinstance(self.dsp_products, bool):
            raise ValueError(f"dsp_products must be 1 or 2, not {self.dsp_products!r}")
        if self.dsp_products == 2 and (
                self.multiplier != "dsp" or (self.act_width, self.weight_width) != (8, 8)
                or not (self.act_signed and self.weight_signed)):
            raise ValueError("dsp_products=2 (two 8x8 products per SB_MAC16) needs "
                             "multiplier='dsp' and signed 8-bit activations and weights")
        _check_int("product_stages", self.product_stages, minimum=1)
        _check_int("addr_width", self.addr_width, minimum=1)
        _check_bool("sp_single_port", self.sp_single_port)
        _check_bool("acc_registered", self.acc_registered)
        if self.acc_registered and not self.fast_clock:
            raise ValueError(f"acc_registered needs a fast clock (target_mhz above "
                             f"{self.FAST_CLOCK_MHZ}), not {self.target_mhz!r}")
        if self.postproc_lanes is not None:
            _check_int("postproc_lanes", self.postproc_lanes, minimum=1)
            if self.dim % self.postproc_lanes:
                raise ValueError(f"postproc_lanes must divide dim ({self.dim}), "
                                 f"not {self.postproc_lanes!r}")
        _check_int("postproc_multiply_cycles", self.postproc_multiply_cycles, minimum=1)
        if 32 % self.postproc_multiply_cycles:
            raise ValueError(f"postproc_multiply_cycles must be 1, 2, 4, 8, 16 or 32, "
                             f"not {self.postproc_multiply_cycles!r}")
        _check_int("bus_data_width", self.bus_data_width, minimum=1)
        if self.bus_data_width not in (32, 64, 128):
            raise ValueError(f"bus_data_width must be 32, 64 or 128, not {self.bus_data_width!r}")
        _check_int("bus_addr_width", self.bus_addr_width, minimum=12)
        if self.bus_addr_width > 64:
            raise ValueError(f"bus_addr_width must be at most 64, not {self.bus_addr_width!r}")
        _check_int("bus_id_width", self.bus_id_width, minimum=1)
        _check_int("dma_outstanding", self.dma_outstanding, minimum=1)
        _check_int("dma_max_burst", self.dma_max_burst, minimum=1)
        if self.dma_max_burst > 256 or self.dma_max_burst & (self.dma_max_burst - 1):
            raise ValueError(f"dma_max_burst must be a power of two from 1 to 256, "
                             f"not {self.dma_max_burst!r}")
        _check_int("insn_queue_depth", self.insn_queue_depth, minimum=2)
        _check_int("unit_queue_depth", self.unit_queue_depth, minimum=1)
        _check_int("perf_counter_width", self.perf_counter_width, minimum=1)
        if self.perf_counter_width > 32:
            raise ValueError(f"perf_counter_width must be at most 32, "
                             f"not {self.perf_counter_width!r}")
        for memory in ("sp", "acc"):
            depth, banks = getattr(self, f"{memory}_depth"), getattr(self, f"{memory}_banks")
            _check_int(f"{memory}_depth", depth, minimum=1)
            _check_int(f"{memory}_banks", banks, minimum=2)
            if banks & (banks - 1):
                raise ValueError(f"{memory}_banks must be a power of two, not {banks!r}")
            if depth & (depth - 1):
                raise ValueError(f"{memory}_depth must be a power of two, not {depth!r}")
            # Double buffering: every bank holds at least one tile of dim rows.
            if depth < banks * self.dim:
                raise ValueError(f"{memory}_depth must be at least {memory}_banks * dim "
                                 f"({banks * self.dim}), not {depth!r}")
            if depth > 1 << self.addr_width:
                raise ValueError(
                    f"{memory}_depth must fit addr_width ({1 << self.addr_width} rows), "
                    f"not {depth!r}")

    # Derived values: computed here once, never retyped elsewhere.

    #: Clocks above this (MHz) are "fast": blocks keep registers there that cut a path across
    #: units, and at or below it they trade them for area (the iCE40 presets).
    FAST_CLOCK_MHZ = 50

    @property
    def fast_clock(self) -> bool:
        """``target_mhz`` above :attr:`FAST_CLOCK_MHZ`."""
        return self.target_mhz > self.FAST_CLOCK_MHZ

    @property
    def sp_bank_depth(self) -> int:
        return self.sp_depth // self.sp_banks

    @property
    def acc_bank_depth(self) -> int:
        return self.acc_depth // self.acc_banks

    @property
    def act_shape(self) -> Shape:
        return signed(self.act_width) if self.act_signed else unsigned(self.act_width)

    @property
    def weight_shape(self) -> Shape:
        return signed(self.weight_width) if self.weight_signed else unsigned(self.weight_width)

    @property
    def acc_shape(self) -> Shape:
        return signed(self.acc_width)

    @property
    def postproc_lanes_per_cycle(self) -> int:
        return self.dim if self.postproc_lanes is None else self.postproc_lanes

    @property
    def postproc_row_cycles(self) -> int:
        """Cycles the post-processing takes per row of ``dim`` lanes: one multiply of
        ``postproc_multiply_cycles`` cycles per group of ``postproc_lanes`` lanes."""
        return self.dim // self.postproc_lanes_per_cycle * self.postproc_multiply_cycles

    @property
    def macs_per_cycle(self) -> int:
        return self.dim * self.dim

    def pe_multiplier(self, row: int, col: int) -> str:
        """Multiplier implementation of processing element (``row``, ``col``)."""
        if not (0 <= row < self.dim and 0 <= col < self.dim):
            raise ValueError(f"PE ({row}, {col}) is outside a {self.dim}x{self.dim} array")
        if self.multiplier == "dsp" and self.max_dsp is not None:
            return "dsp" if row * self.dim + col < self.max_dsp * self.dsp_products else "lut"
        return self.multiplier

    @property
    def dsp_count(self) -> int:
        """How many DSP blocks the processing elements ask for."""
        pes = sum(self.pe_multiplier(r, c) == "dsp"
                  for r in range(self.dim) for c in range(self.dim))
        return -(-pes // self.dsp_products)

    def replace(self, **changes) -> "TesseraConfig":
        """A copy with ``changes`` applied (and checked)."""
        names = {f.name for f in fields(self)}
        for key in changes:
            if key not in names:
                raise TypeError(f"TesseraConfig has no parameter {key!r}")
        return replace(self, **changes)


_BASE = TesseraConfig()

#: Named presets (see the table in README.md).
PRESETS = {
    # Tiny Tapeout on SKY130: every memory is flip-flops; no hard multipliers.
    # Post-processing one lane per cycle: one requantizer instead of two. Bursts of at most 8
    # beats and 4 queued instructions keep the DMA buffer and the queue small (they were 65 %
    # of micro's cells with 256 and 64).
    "micro": replace(_BASE, name="micro", dim=2, target_mhz=50.0, sp_depth=8, acc_depth=8,
                     postproc_lanes=1, dma_max_burst=8, insn_queue_depth=4),
    # iCEBreaker (iCE40UP5K): 16 PEs, two per SB_MAC16 (8x8 mode): all 8 DSPs, no LUT multiplier.
    # Scratchpad 512 x 32 bit (4 EBR), accumulator 2 x 128 x 128 bit (16 EBR) of 30.
    # Post-processing one lane at a time with a digit-serial multiply (32 x 4 bits a cycle,
    # 8 cycles a lane: a row every 32 cycles, enough for K >= 128): its multiplier is in LUTs,
    # and the pipelined 32 x 32 one cost 2.9k of the UP5K's 5,280 LCs; 32 x 8 bits a cycle
    # cost 157 LCs more, and its four chained adds were among the longest paths.
    # Bursts of 16 beats and 16 queued instructions: the DMA buffer and the queue are a
    # sixteenth and a quarter of the defaults (the UP5K has 30 EBR and 5,280 LCs).
    # Unit queues of 1 instruction: the dispatcher's queues are flip-flops (2 cost 243 FF
    # more and saved no GEMM cycle). Tags of 9 bits: an accumulator row and the accumulate
    # flag, all EXEC needs (the array and the post-processing carry the tag beside every row
    # in flight). Two DMA bursts in flight
    # cover the on-chip system memory's (SPRAM) latency; the DMA's per-burst queues are
    # flip-flops. Performance counters of 24 bits (CYCLES 48): each wraps after 0.5 s.
    # A 16-bit DMA address space: the board's 64 KiB of SPRAM (a command reaching past it is
    # refused with RANGE; the compiler refuses a GEMM that does not fit).
    "tiny": replace(_BASE, name="tiny", dim=4, target_mhz=30.0, multiplier="dsp", max_dsp=8,
                    dsp_products=2, dma_max_burst=16, insn_queue_depth=16,
                    sp_depth=512, acc_depth=256, postproc_lanes=1, postproc_multiply_cycles=8,
                    unit_queue_depth=1,
                    tag_width=9, dma_outstanding=2, perf_counter_width=24, bus_addr_width=16),
    # OrangeCrab 25F (LFE5U-25F): 28 MULT18X18D, 24 for PEs and 4 for the post-processing's
    # partial products (one lane per cycle: a row every 8 cycles, enough for K >= 64; eight
    # lanes took 32 MULT18X18D). Scratchpad 4096 x 64 bit, accumulator 1024 x 256 bit: 32 of
    # 56 DP16KD.
    "small": replace(_BASE, name="small", dim=8, target_mhz=80.0, multiplier="dsp", max_dsp=24,
                     sp_depth=4096, acc_depth=1024, bus_data_width=64, postproc_lanes=1),
    # ULX3S 85F (LFE5U-85F): 156 MULT18X18D, 144 for the PEs and 12 for post-processing
    # (3 lanes per cycle, 4 partial products each; a row every 4 cycles).
    # product_stages=2: with 1, the MULT18X18D-to-adder routing limited the 85F to 71 MHz.
    # acc_registered: the accumulator's 48 DP16KD spread over the die (bank output -> adder
    # was the critical path, 16.8 ns).
    "large": replace(_BASE, name="large", dim=12, target_mhz=75.0, multiplier="dsp",
                     product_stages=2, sp_depth=8192, acc_depth=2048, bus_data_width=128,
                     postproc_lanes=3, acc_registered=True),
    # Foundry flow: the synthesis tool maps the multipliers. Bursts of 64 beats (1 KiB): the
    # DMA read buffer (2 bursts, flip-flops) is a quarter of the 256-beat one's 66k flops.
    "asic": replace(_BASE, name="asic", dim=16, target_mhz=100.0, sp_depth=4096, acc_depth=1024,
                    bus_data_width=128, dma_max_burst=64),
}


def preset(name: str) -> TesseraConfig:
    """The preset called ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"Preset name must be a string, not {name!r}")
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown config {name!r}; presets are {', '.join(PRESETS)}") from None

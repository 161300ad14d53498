"""Post-processing of accumulator rows: per-channel bias, int8 requantization, activation."""

from amaranth.hdl import (
    Array,
    Cat,
    Const,
    EnableInserter,
    Instance,
    Module,
    Mux,
    Signal,
    signed,
    unsigned,
)
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ecp5_mult import ECP5Multiplier, dsp_floorplan
from .multiplier import multiply
from .response_buffer import ResponseBuffer

__all__ = ["SHIFT_SHAPE", "PostMode", "PostProcess", "acc_row_layout", "out_row_layout",
           "param_layout", "params_by_word"]

#: Width of the requantization arithmetic: TFLite's int32 accumulator, bias and multiplier.
REQUANT_WIDTH = 32

#: Shape of the shift parameter. The supported shifts are -31..30 (``sim.model.SHIFT_MIN`` ..
#: ``SHIFT_MAX``, TFLite's range); the hardware uses the low 5 bits of the left (positive) or
#: right (negative) shift amount, so -32 and 31 are not supported.
SHIFT_SHAPE = signed(6)

_INT32_MIN = -(1 << (REQUANT_WIDTH - 1))
_INT32_MAX = (1 << (REQUANT_WIDTH - 1)) - 1


def _thermometer(value, count):
    """``Cat(value >= k for k in range(count))`` for a small unsigned ``value`` as LUT logic:
    its low 3 bits and its high bits decoded apart, then one 3-input function a bit (a
    ``>=`` each would be a carry chain of ``len(value)`` bits)."""
    low_bits = min(3, len(value))
    low, high = value[:low_bits], value[low_bits:]
    low_at_least = [Cat(low == u for u in range(v, 1 << low_bits)).any()
                    for v in range(1 << low_bits)]
    high_is = [high == u for u in range(1 << len(high))]
    bits = []
    for k in range(count):
        k_high, k_low = divmod(k, 1 << low_bits)
        if k_high >= len(high_is):
            bits.append(Const(0, 1))
            continue
        above = Cat(high_is[k_high + 1:]).any() if k_high + 1 < len(high_is) else Const(0, 1)
        bits.append(above | high_is[k_high] & low_at_least[k_low])
    return Cat(bits)


def _sticky_shift(m, value, amount, flip, name):
    """``value >> amount`` (arithmetic) in stages of 16, 8, 4, 2 and 1 bits, and whether a
    dropped bit differs from ``flip``: each stage ORs the bits it drops, so the bits
    dropped by the early (wide) stages are known early. Returns (shifted, dropped)."""
    stages = range(len(amount) - 1, -1, -1)
    differs = []
    for k in stages:
        w = 1 << k
        differs.append(amount[k] & (value[:w] ^ flip.replicate(w)).any())
        shifted = Signal(len(value), name=f"{name}_{w}")
        m.d.comb += shifted.eq(Mux(amount[k], Cat(value[w:], value[-1].replicate(w)), value))
        value = shifted
    dropped = Signal(name=f"{name}_dropped")  # here: the stages are no port of a user's module
    m.d.comb += dropped.eq(Cat(differs).any())
    return value.as_signed(), dropped


def _is_ice40(platform):
    """Whether ``platform`` (an Amaranth platform, or None) is an iCE40 part."""
    return str(getattr(platform, "device", "")).startswith("iCE40")


#: SB_LUT4 function of a conditional add bit (inputs I0 = enable, I1 = x, I2 = y, I3 = carry
#: in): ``x ^ y ^ carry`` if enabled, else ``x``.
_COND_ADD_LUT = sum(1 << i for i in range(16)
                    if ((i >> 1 ^ i >> 2 ^ i >> 3) & 1 if i & 1 else i >> 1 & 1))
#: The same with x and y swapped (I1 = y, I2 = x): the top bit's.
_COND_ADD_TOP_LUT = sum(1 << i for i in range(16)
                        if ((i >> 1 ^ i >> 2 ^ i >> 3) & 1 if i & 1 else i >> 2 & 1))


def _cond_add(m, x, y, enable, width, lsb, ice40, name):
    """``x + y`` if ``enable``, else ``x`` (``x`` and ``y`` signed; the low ``lsb`` bits of
    ``y`` are zeros, so ``x``'s pass through), in one bit more than the wider operand (at
    most ``width``: modulo ``2**width``). On an iCE40 one LUT a bit: the carry chain always
    adds ``y`` and the bit's LUT, which computes the sum beside it, returns ``x`` instead
    where disabled (yosys maps ``Mux(enable, x + y, x)`` to a sum LUT and a mux LUT a bit).
    Returns a kept wire (or yosys merges the adds).

    The top bit's operand inputs (both sign bits) repeat the bit's below it, and yosys'
    ``ice40_wrapcarry`` pairs an ``SB_CARRY`` with any ``SB_LUT4`` of the same operand inputs
    (I1, I2 = the carry's I0, I1); paired with the LUT above it, a carry would feed its own
    box (abc9: "no_loops"). So the top bit's LUT and a carry of its own (its output unused)
    take the operands swapped: they pair with each other, and the bit stays in the chain
    (its carry in on I3, no LUT to lead the carry out; nextpnr adds one where the carry
    drives anything else). Every bit below the top has operand inputs of its own (the
    sum is no wider than needed) provided neither operand repeats a bit within its width:
    pass ``v[k:]`` and ``v.shift_left(k)``, not ``v >> k`` or ``v << k`` (as wide as ``v``,
    or as a shift by up to ``2**k - 1`` bits: copies of the sign on top)."""
    size = min(width, max(len(x), len(y)) + 1)
    total = Signal(signed(size), name=name, attrs={"keep": 1})
    xs, ys = (Cat(v, v[-1].replicate(max(0, size - len(v))))[:size] for v in (x, y))
    if not ice40:
        m.d.comb += total.eq(Mux(enable, xs + ys, xs))
        return total
    carry = Signal(size - lsb, name=f"{name}_carry")
    m.d.comb += total[:lsb].eq(xs[:lsb])
    carry_in = Const(0, 1)
    for i in range(lsb, size - 1):
        m.submodules[f"{name}_lut_{i}"] = Instance(
            "SB_LUT4", p_LUT_INIT=Const(_COND_ADD_LUT, 16), i_I0=enable, i_I1=xs[i],
            i_I2=ys[i], i_I3=carry_in, o_O=total[i])
        m.submodules[f"{name}_carry_{i}"] = Instance(
            "SB_CARRY", i_I0=xs[i], i_I1=ys[i], i_CI=carry_in, o_CO=carry[i - lsb])
        carry_in = carry[i - lsb]
    m.submodules[f"{name}_lut_top"] = Instance(
        "SB_LUT4", p_LUT_INIT=Const(_COND_ADD_TOP_LUT, 16), i_I0=enable, i_I1=ys[-1],
        i_I2=xs[-1], i_I3=carry_in, o_O=total[-1])
    m.submodules[f"{name}_carry_top"] = Instance(
        "SB_CARRY", i_I0=ys[-1], i_I1=xs[-1], i_CI=carry_in,
        o_CO=Signal(name=f"{name}_carry_out"), a_keep=1)
    return total


#: SB_LUT4 functions of a 4:1 mux in two LUTs a bit: the first (I0 = sel[0], I1 = sel[1],
#: I2 = a, I3 = b) gives ``sel[1] ? sel[0] : (sel[0] ? b : a)``, the second (I0 = the
#: first, I1 = sel[1], I2 = c, I3 = d) ``sel[1] ? (first ? d : c) : first``.
_MUX4_LUTS = (
    sum(1 << i for i in range(16)
        if (i & 1 if i & 2 else i >> (3 if i & 1 else 2) & 1)),
    sum(1 << i for i in range(16)
        if (i >> (3 if i & 1 else 2) & 1 if i & 2 else i & 1)),
)


def _mux4(m, choices, sel, ice40, name):
    """``choices[sel]`` of 4 values of one width (``sel`` 2 bits): on an iCE40 two
    ``SB_LUT4`` a bit (yosys maps the 6-input function to three). Returns a wire."""
    out = Signal(len(choices[0]), name=name)
    if not ice40:
        m.d.comb += out.eq(Array(choices)[sel])
        return out
    first = Signal(len(out), name=f"{name}_first")
    a, b, c, d = choices
    for i in range(len(out)):
        m.submodules[f"{name}_lut_{i}"] = Instance(
            "SB_LUT4", p_LUT_INIT=Const(_MUX4_LUTS[0], 16), i_I0=sel[0], i_I1=sel[1],
            i_I2=a[i], i_I3=b[i], o_O=first[i])
        m.submodules[f"{name}_mux_{i}"] = Instance(
            "SB_LUT4", p_LUT_INIT=Const(_MUX4_LUTS[1], 16), i_I0=first[i], i_I1=sel[1],
            i_I2=c[i], i_I3=d[i], o_O=out[i])
    return out


class PostMode(enum.Enum, shape=2):
    """What :class:`PostProcess` makes of an accumulator row.

    ``REQUANT``: ``acc + bias``, requantized, offset by the zero point and clamped to the
    activation range: int8 lanes. ``ACC``: the accumulator unchanged, int32 lanes (spilling
    partial sums, debugging). ``ACC_BIAS``: ``acc + bias`` wrapped to int32 (int32 outputs).
    The encoding 3 is reserved and acts as ``ACC_BIAS``.
    """
    REQUANT = 0
    ACC = 1
    ACC_BIAS = 2


def acc_row_layout(config):
    """One accumulator row, its mode, the swap flag and a tag returned with the output row."""
    return data.StructLayout({
        "row": data.ArrayLayout(config.acc_shape, config.dim),
        "mode": PostMode,
        "swap": 1,
        "tag": config.tag_width,
    })


def out_row_layout(config):
    """One output row: ``row.int8`` lanes (``REQUANT``; the upper bits are unspecified) or
    ``row.int32`` lanes (the other modes), with the mode and the tag of its input row."""
    return data.StructLayout({
        "row": data.UnionLayout({
            "int8": data.ArrayLayout(signed(8), config.dim),
            "int32": data.ArrayLayout(signed(REQUANT_WIDTH), config.dim),
        }),
        "mode": PostMode,
        "tag": config.tag_width,
    })


def params_by_word(config):
    """The parameter port takes the CONFIG block word by word (see :func:`param_layout`):
    with a serial multiply of 4 or more cycles, which keeps the channel parameters in block
    RAM and writes one word a cycle anyway."""
    return config.postproc_multiply_cycles >= 4


def param_layout(config):
    """One beat of the parameter port.

    Writes ``bias``, ``multiplier`` and ``shift`` of output column ``column`` into the shadow
    set. The beat with ``last`` set also writes the per-tile ``zero_point``, ``act_min`` and
    ``act_max`` (ignored on other beats) and completes the set. A ``column`` of ``dim`` or
    more writes no column.

    With :func:`params_by_word`: one word of the CONFIG parameter block (:mod:`hdl.isa`)
    instead, ``value`` at word ``index``: word ``index % 4`` of record ``index // 4`` (bias,
    multiplier, shift of that column; record ``dim``: zero point, act_min, act_max, their
    low 8 bits), written into the shadow set as it is accepted; each record's fourth word
    writes nothing. A record's multiplier word must come before its shift word (the words
    in index order, as the block has them). A beat with ``last`` (whatever its index)
    completes the set.
    """
    if params_by_word(config):
        return data.StructLayout({
            "index": unsigned((4 * config.dim + 3).bit_length()),
            "value": signed(REQUANT_WIDTH),
            "last": 1,
        })
    return data.StructLayout({
        "column": unsigned(max(1, (config.dim - 1).bit_length())),
        "bias": signed(REQUANT_WIDTH),
        "multiplier": signed(REQUANT_WIDTH),
        "shift": SHIFT_SHAPE,
        "zero_point": signed(8),
        "act_min": signed(8),
        "act_max": signed(8),
        "last": 1,
    })


def _channel_layout():
    return data.StructLayout({
        "bias": signed(REQUANT_WIDTH),
        "multiplier": signed(REQUANT_WIDTH),
        "shift": SHIFT_SHAPE,
    })


def _tile_layout():
    return data.StructLayout({"zero_point": signed(8), "act_min": signed(8), "act_max": signed(8)})


class PostProcess(wiring.Component):
    """Bias, TFLite int8 requantization and activation of ``dim`` columns.

    For an input row in mode ``REQUANT`` every lane ``n`` computes, bit-exactly as TFLite's
    integer kernels (LiteRT's reference int8 CONV_2D; see :func:`sim.model.requantize`)::

        x = acc[n] + bias[n]                      # int32, wraps modulo 2**32
        y = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
                x << max(shift[n], 0), multiplier[n]), max(-shift[n], 0))
        out[n] = min(max(y + zero_point, act_min), act_max)

    This is TFLite's *double rounding* (gemmlowp) variant, the one LiteRT builds by default
    (``TFLITE_SINGLE_ROUNDING`` unset). The high multiply rounds ties up; the divide by
    ``2**right`` rounds ties away from zero. (LiteRT's reference FULLY_CONNECTED is floating
    point and differs from this, by one, at rounding ties.) Where C++ is undefined: the left
    shift saturates to int32; ``y + zero_point`` is exact (a huge ``y`` clamps instead of
    wrapping). Activation none / ReLU / ReLU6 is the choice of ``act_min`` / ``act_max`` (see
    :func:`sim.model.activation_range`). Mode ``ACC`` passes the accumulator through as int32,
    ``ACC_BIAS`` passes ``acc + bias``.

    Parameters are per output column (per channel; per tensor is the same values in every
    column) plus per tile. ``params`` beats write a shadow set; an ``acc_rows`` row with
    ``swap`` set is the first to use the most recently completed shadow set (it waits, with
    ``acc_rows.ready`` low, until the ``last`` beat of that set has been accepted). While a
    completed set waits for its swap, and for :attr:`param_hold` cycles after the swap while
    the pipeline stages pick it up, ``params.ready`` is low. After reset the active set is all
    zeros (every int8 output is 0).

    With a serial multiply of 4 or more cycles (:func:`params_by_word`) the per-column
    parameters of both sets are in block RAM (``lanes`` x 32 bits wide, 2 sets x lane groups
    x 4 words: 2 iCE40 EBR for one lane) instead of flip-flops, and ``params`` takes the
    CONFIG block's words, one a cycle (each goes straight into the RAM or, the tile's, into
    their flip-flops: no beat register here or in the STORE unit); a lane group reads
    its words in its first three cycles (the multiplier again in the others: only its last
    two digits are held in flip-flops), and a swap flips which set the rows read (the tile
    parameters keep their flip-flop copies). Until the first swap after a reset the words
    read are taken as zeros (read from a zero word written in the cycle after a reset, in
    which no row starts: the RAM's contents are never relied on).

    The datapath computes :attr:`lanes` = ``config.postproc_lanes`` lanes at a time (``dim``
    by default). With fewer, a row's lane groups (lanes ``0..lanes-1``, then the next
    ``lanes``, ...) enter the datapath one after the other: one datapath of ``lanes``
    requantizers serves all ``dim`` columns, and each group's results go straight into the
    row's output slot. With :attr:`multiply_cycles` = ``config.postproc_multiply_cycles``
    above 1 the 32 x 32 multiply is digit-serial: a group stays at the datapath's input for
    ``multiply_cycles`` cycles, and one stage accumulates a 32 x ``32 / multiply_cycles``-bit
    partial product per cycle (lowest digit first) instead of the three-stage pipelined
    multiply. With the pipelined multiply an accepted row waits in an input register while
    its groups enter; with the serial multiply the row stays on ``acc_rows`` instead and is
    accepted in the cycle its last group enters, :attr:`accept_delay` cycles after it
    started (only the entering group's lanes are registered); a digit counter runs on
    between rows and a row starts only at its digit 0, so every step uses its hardware in
    the same cycles of each group's window (with the parameters in block RAM one barrel
    shifter serves the left shift and the rounding shift). The output of the serial
    multiply is one row register, the ``out_rows`` payload (see Back-pressure).

    Timing (a row *starts* when it is accepted into the input register, or with the serial
    multiply when its first group enters):

    - Latency: :attr:`latency` = 10 + :attr:`row_cycles` cycles from a row's start to its
      output row (11 at full width; with a free output; 11 + :attr:`row_cycles` with row
      slots, the clamp's results then registered before the slot): input register (or the entering
      group's register), one cycle per further lane group, bias add beside the lane's left
      shift and the bits it moves out, the saturating left shift, a 3-stage
      32 x 32 multiply (16 x 16 partial products, their middle sum, the final sum: four
      17 x 17-bit signed multipliers per lane, one ECP5 MULT18X18D each; of iCE40's 16 x 16
      SB_MAC16 only the two same-signedness products map), the high-multiply rounding, the
      rounding right shift in 2 stages (nudge add, barrel shift), the zero point, then the
      clamp into the output buffer or slot. With the serial multiply it is 6 +
      :attr:`row_cycles`: the multiply is one stage, :attr:`row_cycles` counts its cycles,
      the high-multiply rounding rides on the nudge add, and the barrel shift and the zero
      point share a stage (tiny's clock is slow). With the parameters in block RAM it is 5
      + :attr:`row_cycles`: the multiply adds the high-multiply rounding's 2**30 (its
      first digit's sum starts there), so the barrel shift takes the product's register
      (no nudge; the shift's rounding, from the bits it drops, rides on the zero point
      add).
    - Throughput: one row every :attr:`row_cycles` = ``dim / lanes * multiply_cycles``
      cycles (one per cycle at full width with the pipelined multiply), in every mode. A
      parameter switch costs no bubble when each tile has at least :attr:`min_tile_rows` rows
      (and the parameter beats are ready in time). With the serial multiply the next row
      must be on ``acc_rows`` within ``multiply_cycles - 1`` cycles of the previous one's
      acceptance for no bubble (a response buffer refilled by a 2-cycle read is in time); a
      row arriving later waits for the next digit 0 (up to ``multiply_cycles - 1`` cycles
      more).
    - Back-pressure: the pipeline never stalls; rows in flight land in an output buffer (or
      row slots) of :attr:`buffer_depth` entries and rows start on credit (rows started and
      not yet out < depth), so a low ``out_rows.ready`` drops or duplicates nothing, and the
      full rate is sustained while the consumer takes each row within ``output_cycles``
      cycles. With the serial multiply a group's results wait in the zero point step's
      registers until the output row register holds no complete row, and the whole datapath
      (entry included) stalls in a cycle in which the next group's results would overwrite
      them: nothing is lost, :attr:`buffer_depth` rows are accepted while ``out_rows`` is
      held off, and the full rate is sustained while the consumer takes each row within
      ``2 * multiply_cycles - 2`` cycles of its ``valid`` (by beats, tiny: each beat within
      6 cycles of its ``valid``). ``out_rows.valid`` does not depend on
      ``out_rows.ready``.

    Parameters
    ----------
    config : TesseraConfig
        ``dim`` lanes of ``acc_width`` (at most 32; narrower accumulators are sign-extended),
        ``postproc_lanes`` of them computed at a time, each multiply taking
        ``postproc_multiply_cycles`` cycles.
    multiplier : str or None
        Implementation of the partial-product (or digit-product) multipliers (see
        :data:`hdl.config.MULTIPLIERS`; ``"dsp"`` means the ``*`` operator). ``None``:
        ``"lut"`` with the serial multiply or if ``config.multiplier`` is ``"lut"``, else
        ``"behavioural"``. The serial multiply's ``"lut"`` adds its partial products in a
        tree of carry chains; with the parameters in block RAM in two chains of conditional
        adds instead, on an iCE40 one ``SB_LUT4`` and ``SB_CARRY`` a bit (instances: yosys
        spends two LUTs a bit on them), elsewhere ``Mux(b, x + y, x)``.
    output_cycles : int
        Cycles the consumer may take per output row (e.g. one per bus beat of it) with the
        full rate sustained: it sizes the output buffer.
    out_beat_bits : int or None
        With the serial multiply: the consumer takes the output row in beats of this many
        bits (one lane group: ``32 * postproc lanes``, which must hold an int8 row), lowest
        first, from the payload's low bits (the rest are 0), and the output row register is
        one beat: ``out_rows.valid`` is high while the row's next beat is there (an int8
        row's one beat once its last group landed; an int32 row's beats each as its group
        lands: a row's beats may have gaps), and ``out_next_beat`` or ``out_rows.ready``
        takes it (the consumer counts a row's beats; mode and tag hold for all of them).

    Members
    -------
    acc_rows : In(stream.Signature(acc_row_layout(config)))
    params : In(stream.Signature(param_layout(config)))
    out_rows : Out(stream.Signature(out_row_layout(config)))
    out_next_beat : In(1)
        Only with ``out_beat_bits`` (see there).

    Raises
    ------
    ValueError
        ``config.acc_width`` is wider than 32 bits.
    """

    #: Pipeline step (0 = the input register's output) at which the bias, the left shift and
    #: the multiplier operands are used; the later steps depend on how long the multiply takes.
    _BIAS_STEP, _SHIFT_STEP, _MULTIPLY_STEP = 0, 0, 1

    def __init__(self, config, *, multiplier=None, output_cycles=1, out_beat_bits=None):
        if config.acc_width > REQUANT_WIDTH:
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise ValueError(
                f"PostProcess needs acc_width of at most {REQUANT_WIDTH}, "
                f"not {config.acc_width!r}")
        if multiplier is None:
            # The serial multiply is there to stay out of DSP blocks: LUTs.
            serial = config.postproc_multiply_cycles > 1
            multiplier = "lut" if config.multiplier == "lut" or serial else "behavioural"
        self.config = config
        self.multiplier = multiplier
        self.output_cycles = output_cycles
        # The output row register shifts out by beats (serial multiply only): a beat is one
        # landing group of int32 lanes, so that shifting out and landing move it alike.
        self.out_beat_bits = out_beat_bits if config.postproc_multiply_cycles > 1 else None
        group_bits = REQUANT_WIDTH * config.postproc_lanes_per_cycle
        if self.out_beat_bits is not None and (self.out_beat_bits != group_bits
                                               or 8 * config.dim > group_bits):
            self._MustUse__silence = True
            raise ValueError(f"out_beat_bits must be a lane group's {group_bits} bits "
                             f"(32 x postproc lanes) and hold an int8 row ({8 * config.dim} "
                             f"bits), not {out_beat_bits!r}")
        members = {
            "acc_rows": In(stream.Signature(acc_row_layout(config))),
            "params": In(stream.Signature(param_layout(config))),
            "out_rows": Out(stream.Signature(out_row_layout(config))),
        }
        if self.out_beat_bits is not None:
            members["out_next_beat"] = In(1)
        super().__init__(members)

    @property
    def lanes(self):
        """Lanes computed at a time (``config.postproc_lanes``, ``dim`` by default)."""
        return self.config.postproc_lanes_per_cycle

    @property
    def multiply_cycles(self):
        """Cycles the multiply takes per lane group (``config.postproc_multiply_cycles``)."""
        return self.config.postproc_multiply_cycles

    @property
    def _product_step(self):
        """Step at which the 64-bit product is in a register: after 3 pipeline stages, or
        after the one stage that accumulates the serial multiply's partial products."""
        return self._MULTIPLY_STEP + 1 + (3 if self.multiply_cycles == 1 else 1)

    @property
    def _round_step(self):
        """Step of the rounding right shift's first stage (uses the right shift): with the
        parameters in block RAM the product's register itself (its high half is rounded
        already: the multiply adds 2**30)."""
        return self._product_step + (0 if self._params_in_ram else 1)

    @property
    def _zero_point_step(self):
        """Step at which the zero point and the activation bounds are used (the serial
        multiply's slower clock allows the barrel shift and the zero point in one step)."""
        return self._round_step + (0 if self.multiply_cycles > 1 else 2)

    @property
    def row_cycles(self):
        """Cycles per row: the throughput is one row every ``row_cycles`` cycles."""
        return self.config.postproc_row_cycles

    @property
    def latency(self):
        """Cycles from an accepted input row to its output row."""
        # Input register, one cycle per further lane group and multiply cycle, the datapath
        # steps 0.._zero_point_step, the clamp's register (row slots), the output buffer.
        return (1 + (self.row_cycles - 1) + (self._zero_point_step + 1) + self._in_slots
                + 1)

    @property
    def _in_slots(self):
        """Output rows are assembled in row slots, lane group by lane group (pipelined
        multiply, more than one group); the clamp's results are registered on the way in."""
        return self.config.dim // self.lanes > 1 and self.multiply_cycles == 1

    @property
    def accept_delay(self):
        """Cycles a row stays on ``acc_rows`` after it started: ``row_cycles -
        multiply_cycles`` with the serial multiply (the row is accepted as its last group
        enters), else 0."""
        return self.row_cycles - self.multiply_cycles if self.multiply_cycles > 1 else 0

    @property
    def buffer_depth(self):
        """Output rows the output buffer holds: enough to run at full rate. With the serial
        multiply: rows accepted while ``out_rows`` is held off (the output row and the rows
        accepted before the stall)."""
        if self.multiply_cycles > 1:
            # With the first held row out, the next row's first group waits at the zero point
            # step, and the datapath stalls as its second group gets there, _zero_point_step +
            # 2 * multiply_cycles cycles after that row started; rows are accepted
            # row_cycles - multiply_cycles cycles after they start.
            stall = self._zero_point_step + 3 * self.multiply_cycles - 1
            return 1 + stall // self.row_cycles
        # An entry is free again latency + output_cycles cycles after its row was accepted (a
        # consumer slower than a row every row_cycles is the bottleneck: the depth is enough).
        hold = min(self.output_cycles, self.row_cycles)
        return -(-(self.latency + hold) // self.row_cycles)

    @property
    def param_hold(self):
        """Cycles after a swap before ``params`` accepts the next set's first beat (by word:
        1; a word of the tile's record waits :attr:`tile_hold` cycles)."""
        return 1 if self._params_in_ram else self._tile_copied

    @property
    def tile_hold(self):
        """Cycles after a swap before ``params`` accepts a word of the tile's record (by
        word), or a beat (else): until the zero point step has copied the tile parameters."""
        return self._tile_copied

    @property
    def _tile_copied(self):
        """Cycles after a swap until the zero point step has copied the tile parameters (with
        the serial multiply one more: the copying cycle may be stalled; with the parameters
        in block RAM the copy is in the swap row's first group's last cycle there)."""
        if self._params_in_ram:
            return self._zero_point_step + self.multiply_cycles + 1
        return self._zero_point_step + (1 if self.multiply_cycles > 1 else 0)

    @property
    def _tag_queue_depth(self):
        """Tags of started rows whose first lane is not yet in the output row (serial
        multiply): a row's first lane enters it at most ``_zero_point_step + 2 *
        multiply_cycles`` datapath cycles after the row started."""
        return 1 + (self._zero_point_step + 2 * self.multiply_cycles) // self.row_cycles

    @property
    def min_tile_rows(self):
        """Rows per parameter set for which the set switches cost no bubble (its beats, or
        by word its block's ``4 * (dim + 1)`` words, one a cycle)."""
        if self._params_in_ram:  # the tile's record is the block's last 4 words
            words = 4 * (self.config.dim + 1)
            last_beat = max(self.param_hold + words - 1, self.tile_hold + 3)
        else:
            last_beat = max(self.param_hold + self.config.dim - 1, self._tile_copied)
        return -(-(last_beat + 1) // self.row_cycles)

    @property
    def _params_in_ram(self):
        """The channel parameters are in block RAM and come by word (:func:`params_by_word`)."""
        return params_by_word(self.config)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        dim, lanes, digits = cfg.dim, self.lanes, self.multiply_cycles
        groups = dim // lanes
        width = REQUANT_WIDTH
        round_step, zero_point_step = self._round_step, self._zero_point_step
        # The serial multiply shifts its product's low bits out; the rounding needs bits 30+.
        pass_shift = 0 if digits == 1 else min(width - width // digits, width - 2)

        # --- Parameters: a shadow set written by beats, then copied per pipeline step. ---
        # With a serial multiply of 4 or more cycles (`in_ram`) the channel parameters are
        # in block RAM instead, read word by word as a lane group enters.
        in_ram = self._params_in_ram
        if not in_ram:
            shadow = Signal(data.ArrayLayout(_channel_layout(), dim))
        shadow_tile = Signal(_tile_layout())
        shadow_full = Signal()

        # Output rows leave through a credit-based buffer (whole rows, pipelined multiply) or
        # row slots (lane groups); its credit decides acc_rows.ready. With the serial multiply
        # they leave through one output row register instead, and the datapath (`dp`, every
        # register that keeps the rows' timing) stalls while a lane waits for it: `advance`.
        streamed = digits > 1
        in_slots = self._in_slots  # groups > 1 and not streamed
        credit = Signal()
        if streamed:
            advance = Signal()
            dp = Module()
            m.submodules.datapath = EnableInserter(advance)(dp)
            m.d.comb += credit.eq(advance)
        else:
            dp = m
        if not in_slots and not streamed:
            m.submodules.buffer = buffer = ResponseBuffer(
                out_row_layout(cfg), self.latency - 1, depth=self.buffer_depth)
            wiring.connect(m, wiring.flipped(self.out_rows), buffer.output)
            m.d.comb += credit.eq(buffer.ready)

        # A row's lane groups enter the datapath one after the other, one group per multiply
        # (each for `digits` cycles, digit 0 first). With the pipelined multiply the input
        # register holds the row meanwhile, and the next row is accepted in the cycle its last
        # group's last digit enters. With the serial multiply the row stays on acc_rows (it
        # is accepted as its last group's first digit enters: the upstream then has
        # `digits - 1` cycles to present the next row) and only the entering group's lanes
        # are registered, held for the group's digits.
        digit_bits = (digits - 1).bit_length()
        row_swap = Signal(name="row_swap")  # a copy: see `held` below
        m.d.comb += row_swap.eq(self.acc_rows.payload.swap)
        swap_ready = ~(self.acc_rows.valid & row_swap) | shadow_full
        if streamed:
            # The digit counts on, also between rows: a row starts only at digit 0, so the
            # digit of every step is that of the entering group, delayed (no register), and
            # each step uses its hardware in the same cycles of every group's window.
            digit = Signal(digit_bits, name="digit")
            dp.d.sync += digit.eq(digit + 1)  # digits is a power of 2
            group = Signal(range(groups), name="group")
            last_group = group == groups - 1
            last_cycle = last_group & (digit == digits - 1)
            busy = Signal()  # amid a row (on acc_rows until its last group enters)
            param_clear = Signal(name="param_clear", init=int(in_ram))  # see the param. RAM
            row_fire = (self.acc_rows.valid & ~busy & (digit == 0) & credit
                        & swap_ready & ~param_clear)  # the row starts
            active = row_fire | busy
            row_ready = active & last_group & (digit == 0)
            # The datapath (its own module with the serial multiply) gets copies of the
            # fields it reads, so that the others (the tag) are no port of it.
            # (With the parameters in block RAM and 4 groups the lane select reads acc_rows.)
            mux_row = in_ram and groups == 4
            held = Signal(data.StructLayout({"mode": PostMode} if mux_row else {
                "row": acc_row_layout(cfg).members["row"], "mode": PostMode}), name="held_row")
            m.d.comb += held.mode.eq(self.acc_rows.payload.mode)
            if not mux_row:
                m.d.comb += held.row.eq(self.acc_rows.payload.row)
            row_mode = Signal(PostMode)  # the mode, also after the row was accepted
            with dp.If(row_fire):
                dp.d.sync += [row_mode.eq(held.mode), busy.eq(1)]
            with dp.If(active & (digit == digits - 1)):
                dp.d.sync += group.eq(Mux(last_group, 0, group + 1))
                with dp.If(last_group):
                    dp.d.sync += busy.eq(0)
        else:
            row_cycle = Signal(range(self.row_cycles))  # the group, the digit in the low bits
            group, digit = row_cycle[digit_bits:], row_cycle[:digit_bits]
            last_cycle = row_cycle == self.row_cycles - 1
            held = Signal(acc_row_layout(cfg))
            active = Signal()
            row_ready = credit & swap_ready & (~active | last_cycle)
            row_fire = self.acc_rows.valid & row_ready
            with m.If(row_fire):
                m.d.sync += [held.eq(self.acc_rows.payload), row_cycle.eq(0), active.eq(1)]
            with m.Elif(active & last_cycle):
                m.d.sync += active.eq(0)
            with m.Elif(active):
                m.d.sync += row_cycle.eq(row_cycle + 1)
        swap_fire = row_fire & row_swap

        # swap_at[k] is high k cycles after a swap row was accepted: step k's copy of the
        # parameters is loaded at the end of that cycle, just before the swap row reaches it.
        swap_at = [swap_fire]
        for k in range(zero_point_step):
            pulse = Signal(name=f"swap_at_{k + 1}")
            dp.d.sync += pulse.eq(swap_at[-1])
            swap_at.append(pulse)
        # The shadow set must stay still until the last step has copied it (with stalls, also
        # in the cycle that copies it: that cycle may be stalled). With the parameters in
        # block RAM the tile's copy waits (`tile_next`) for the swap row's first group to load
        # the zero point step's registers, which takes the shadow zero point meanwhile.
        copying = Cat(swap_at[1:min(self._tile_copied, zero_point_step + 1)]).any()
        if in_ram:
            tile_next = Signal(name="tile_next")
            copying |= tile_next

        param = self.params.payload
        m.d.comb += self.acc_rows.ready.eq(row_ready & credit if streamed else row_ready)
        if in_ram:
            # The channel words of both sets in block RAM, `lanes` columns a row: word 0 the
            # bias, 1 the shift, 2 the multiplier (the block's words 0, 2, 1: its word number
            # with the bits swapped). The shadow set is the one the rows do not use; a word
            # goes in as it is accepted. Only the tile's words wait for `copying`: the rows
            # before a swap row read their words as they enter, before the swap row starts.
            set_bits = Signal(name="active_set")  # the set the latest started row uses
            fresh = Signal(init=1)  # no swap since reset: the active set is all zeros
            with m.If(swap_fire):
                m.d.sync += [set_bits.eq(~set_bits), fresh.eq(0)]
            group_width = (groups - 1).bit_length()
            m.submodules.param_ram = ram = Memory(
                shape=unsigned(width * lanes), depth=2 << (group_width + 2), init=[],
                attrs={"no_rw_check": 1})
            # An asynchronous read port and a register after it: yosys merges the register
            # into the block RAM's read port and, told by `no_rw_check`, adds no collision
            # logic (a row never reads the shadow set that beats write).
            write, read = ram.write_port(granularity=width), ram.read_port(domain="comb")
            read_data = Signal(width * lanes, name="param_read_data", reset_less=True)
            with m.If(advance):  # here, not in `dp`: the register beside its RAM
                m.d.sync += read_data.eq(read.data)
            # The cycle after a reset writes the zero word (see the reads): no row starts and
            # no word is taken in it.
            m.d.sync += param_clear.eq(0)
            record, position = param.index[2:], param.index[:2]
            in_tile = record == dim
            param_ready = ~shadow_full & ~(in_tile & copying) & ~param_clear
            take = self.params.valid & param_ready
            column_group, column_lane = record // lanes, record % lanes
            # The shift word (only its low 6 bits are the shift) also carries the multiplier's
            # low digit from its bit 8, kept from the record's multiplier word before it: the
            # multiply registers its digit 0 a cycle before the multiplier word is read.
            d = width // digits
            mult_low = Signal(d, name="mult_low")
            with m.If(self.params.valid & (position == 1)):
                m.d.sync += mult_low.eq(param.value[:d])
            value = Mux(position == 2, Cat(param.value[:8], mult_low, param.value[8 + d:]),
                        param.value.as_unsigned())
            m.d.comb += [
                write.addr.eq(Mux(param_clear, 3, Cat(position[1], position[0],
                                                      column_group[:group_width], ~set_bits))),
                write.data.eq(Mux(param_clear, 0, value).replicate(lanes)),
                write.en.eq(Mux(take & (record < dim) & (position != 3), 1 << column_lane, 0)
                            | param_clear.replicate(lanes)),
            ]
            with m.If(take & in_tile):
                for j, field in enumerate(("zero_point", "act_min", "act_max")):
                    with m.If(position == j):
                        m.d.sync += shadow_tile[field].eq(param.value[:8])
            # Reads: the entering group's bias, shifts and multiplier in its digits 0, 1, 2
            # and the multiplier again in its later digits (each word is out one cycle later:
            # the multiply takes digit k of the multiplier from the read in digit k + 2, only
            # the last two digits are held); the row entering with a swap reads the
            # other set. The zero word (word 3 of group 0 of set 0, written with zeros in the
            # cycle after a reset: the RAM's contents are not relied on) stands for the words
            # that are zero (all of them before the first swap, the bias in mode ACC, the
            # shifts when passing through), so nothing after the RAM gates them.
            entering_mode = Mux(busy, row_mode, held.mode)
            zero_word = (fresh & ~swap_fire
                         | (digit == 0) & (entering_mode == PostMode.ACC)
                         | (digit == 1) & (entering_mode != PostMode.REQUANT))
            read_word = Mux(digit > 2, 2, digit)[:2]
            m.d.comb += read.addr.eq(Mux(zero_word, 3, Cat(read_word, group[:group_width],
                                                           set_bits ^ swap_fire)))
            words = [read_data.word_select(n, width) for n in range(lanes)]
        else:
            param_ready = ~shadow_full & ~copying
        m.d.comb += self.params.ready.eq(param_ready)
        with m.If(self.params.valid & param_ready):
            if not in_ram:
                for n in range(dim):
                    with m.If(param.column == n):
                        m.d.sync += [
                            shadow[n].bias.eq(param.bias),
                            shadow[n].multiplier.eq(param.multiplier),
                            shadow[n].shift.eq(param.shift),
                        ]
            with m.If(param.last):
                if not in_ram:  # by word: written by the tile's words
                    m.d.sync += [shadow_tile.zero_point.eq(param.zero_point),
                                 shadow_tile.act_min.eq(param.act_min),
                                 shadow_tile.act_max.eq(param.act_max)]
                m.d.sync += shadow_full.eq(1)
        with m.If(swap_fire):
            m.d.sync += shadow_full.eq(0)

        def copy(step, shape, value, name):
            """A register loaded with ``value`` (from the shadow set) for pipeline ``step``."""
            reg = Signal(shape, name=name)
            with dp.If(swap_at[step]):
                dp.d.sync += reg.eq(value)
            return reg

        if not in_ram:
            bias = [copy(self._BIAS_STEP, signed(width), shadow[n].bias, f"bias_{n}")
                    for n in range(dim)]
            mult = [copy(self._MULTIPLY_STEP, signed(width), shadow[n].multiplier,
                         f"mult_{n}") for n in range(dim)]
            left = [copy(self._SHIFT_STEP, unsigned(5),
                         Mux(shadow[n].shift > 0, shadow[n].shift, 0), f"left_{n}")
                    for n in range(dim)]
            # (Single-digit rows: copied a step early, for the registered amount `e_s`.)
            right = [copy(round_step - (1 if streamed or digits == 1 else 0), unsigned(5),
                          Mux(shadow[n].shift < 0, -shadow[n].shift, 0), f"right_{n}")
                     for n in range(dim)]
        if in_ram:  # loaded with the swap row's first z (zero point apart: only `dp` uses it)
            tile_zero_point = Signal(signed(8), name="tile_zero_point")
            tile_bounds = Signal(data.StructLayout({"act_min": signed(8), "act_max": signed(8)}),
                                 name="tile_bounds")
        else:
            tile = copy(zero_point_step, _tile_layout(), shadow_tile, "tile")

        # --- Control travelling with the rows: valid, mode (and tag) of each step's row. ---
        # With row slots the tag waits in the output slot instead (written as the row starts),
        # with the serial multiply in a queue until the row's first lane leaves.
        # With the serial multiply the output row counts its groups (no group and last here,
        # only the group for the registers it selects with the parameters in flip-flops).
        ctrl_fields = {"valid": 1, "mode": PostMode}
        if not streamed or not in_ram:
            ctrl_fields["group"] = range(groups)
        if not streamed:
            ctrl_fields["digit"] = range(digits)
            ctrl_fields["last"] = 1
        if not in_slots and not streamed:
            ctrl_fields["tag"] = cfg.tag_width
        ctrl_layout = data.StructLayout(ctrl_fields)

        def ctrl_stage(value, name):
            reg = Signal(ctrl_layout, name=name)
            dp.d.sync += reg.eq(value)
            return reg

        entering = Signal(ctrl_layout)
        m.d.comb += [
            entering.valid.eq(active),
            entering.mode.eq(Mux(busy, row_mode, held.mode) if streamed else held.mode),
        ]
        if "tag" in ctrl_fields:
            m.d.comb += entering.tag.eq(self.acc_rows.payload.tag if streamed else held.tag)
        if "digit" in ctrl_fields:
            m.d.comb += [entering.digit.eq(digit), entering.last.eq(last_cycle)]
        if "group" in ctrl_fields:
            m.d.comb += entering.group.eq(group)
        # The entering group's accumulator lanes (registered when the row is streamed).
        def lane_choices(n):
            if streamed and mux_row:  # here, not in `dp`: from acc_rows itself
                choices = list(self.acc_rows.payload.row)[n::lanes]
                return _mux4(m, choices, group, _is_ice40(platform), f"acc_choice_{n}")
            choices = list(held.row)[n::lanes]
            return choices[0] if len(choices) == 1 else Array(choices)[group]
        ctrl = [entering]

        def digit_at(k):
            """The digit of the group at step ``k``."""
            return (digit - (k + 1))[:digit_bits] if streamed else ctrl[k].digit
        if streamed:
            if not in_ram:
                ctrl = [ctrl_stage(entering, "ctrl_0")]
            lane_acc = [Signal(cfg.acc_shape, name=f"acc_{n}", reset_less=True)
                        for n in range(lanes)]
            with dp.If(active & (digit == 0)):  # held for the group's digits
                dp.d.sync += [lane_acc[n].eq(lane_choices(n)) for n in range(lanes)]
        else:
            lane_acc = [lane_choices(n) for n in range(lanes)]
        if in_ram:
            # A group's control is steady for its digits and the steps up to the zero point
            # step end within its successor's digits: one entry a group, not a register a
            # step. Step k has the entering group's (busy and the row's mode: never its digit
            # 0) in digits above k, the previous group's (`group_ctrl`) in the others.
            assert zero_point_step < digits
            now = Signal(ctrl_layout, name="ctrl_now")
            group_ctrl = Signal(ctrl_layout, name="group_ctrl")
            m.d.comb += [now.valid.eq(busy), now.mode.eq(row_mode)]
            with dp.If(digit == digits - 1):
                dp.d.sync += group_ctrl.eq(now)
            ctrl = []
            for k in range(zero_point_step + 1):
                ctrl.append(Signal(ctrl_layout, name=f"ctrl_{k}"))
                m.d.comb += ctrl[k].eq(Mux(digit > k, now, group_ctrl) if k < digits - 1
                                       else group_ctrl)
        else:
            for k in range(zero_point_step + (0 if streamed else 1)):
                ctrl.append(ctrl_stage(ctrl[-1], f"ctrl_{k + 1}"))

        def passes(k):
            """The row at step ``k`` is passed through as int32 (not requantized)."""
            return ctrl[k].mode != PostMode.REQUANT

        def stage(shape, value, name):
            reg = Signal(shape, name=name, reset_less=True)
            dp.d.sync += reg.eq(value)
            return reg

        # The activation bounds travel beside the zero-pointed row to the clamp. With the
        # serial multiply the zero-pointed lane (and its control, `done`) is loaded only in
        # its group's last digit and held until the next: it waits there for the output row.
        if in_ram:
            # The tile register changes only as a group loads the zero point step's registers,
            # as the waiting one lands (or has landed): it holds the bounds of the waiting one.
            z_load = ctrl[zero_point_step].valid & (digit_at(zero_point_step) == digits - 1)
            done = Signal(ctrl_layout, name=f"ctrl_{zero_point_step + 1}")
            with dp.If(z_load):
                dp.d.sync += done.eq(ctrl[zero_point_step])
                with dp.If(tile_next):
                    dp.d.sync += [tile_zero_point.eq(shadow_tile.zero_point),
                                  tile_bounds.act_min.eq(shadow_tile.act_min),
                                  tile_bounds.act_max.eq(shadow_tile.act_max),
                                  tile_next.eq(0)]
            with dp.If(swap_at[zero_point_step]):
                dp.d.sync += tile_next.eq(1)
            zero_point = Mux(tile_next, shadow_tile.zero_point, tile_zero_point)
            act_min, act_max = tile_bounds.act_min, tile_bounds.act_max
        elif streamed:
            zero_point = tile.zero_point
            z_load = ctrl[zero_point_step].valid & (digit_at(zero_point_step) == digits - 1)
            done = Signal(ctrl_layout, name=f"ctrl_{zero_point_step + 1}")
            act_min = Signal(signed(8), name="act_min", reset_less=True)
            act_max = Signal(signed(8), name="act_max", reset_less=True)
            with dp.If(z_load):
                dp.d.sync += [done.eq(ctrl[zero_point_step]), act_min.eq(tile.act_min),
                              act_max.eq(tile.act_max)]
        else:
            zero_point = tile.zero_point
            act_min = stage(signed(8), tile.act_min, "act_min")
            act_max = stage(signed(8), tile.act_max, "act_max")
        low_bound = Mux(act_min > act_max, act_max, act_min)  # what max(z, act_min) clamps to
        def select(values, k, lane):
            """Lane ``lane`` of the group at step ``k``: one of ``values`` (``dim`` long)."""
            choices = values[lane::lanes]
            if len(choices) == 1:
                return choices[0]
            return Array(choices)[ctrl[k].group]

        lane_z, lane_int8 = [], []
        for n in range(lanes):
            # Step 0: bias (wrapping, as the accumulator does) on the input register's lane of
            # the entering group; beside it the lane's left shift and the bits it moves out.
            # From the RAM: the bias in the group's digit 0 (x holds for its digits), the
            # shifts at step 1, the multiplier at step 2 (digit k read in the group's digit
            # k + 2, the last two held).
            acc = lane_acc[n]
            if in_ram:
                # The bias, shifts and multiplier are zeros where they must be (see the reads).
                x = Signal(signed(width), name=f"x_{n}", reset_less=True)
                with dp.If(digit_at(0) == 0):
                    dp.d.sync += x.eq(acc + words[n])
                # One amount for both shifts: the left shift's in digit 0 of step 1, the
                # rounding shift's (``right_e``) in the other digits.
                left_cycle = digit_at(1) == 0
                shift = Signal(5, name=f"shift_by_{n}")
            else:
                gated_bias = Mux(ctrl[0].mode == PostMode.ACC, 0, select(bias, 0, n))
                x = stage(signed(width), (acc + gated_bias)[:width].as_signed(), f"x_{n}")
                # The left shift saturates where C++ would overflow: iff a bit of x in
                # [31 - shift, 31) differs from the sign bit (``reach`` marks those bits).
                shift_in = Mux(passes(self._SHIFT_STEP), 0,
                               select(left, self._SHIFT_STEP, n))
                shift = stage(unsigned(5), shift_in, f"shift_{n}")
                reach = stage(width - 1,
                              Cat(shift_in >= width - 1 - j for j in range(width - 1)),
                              f"reach_{n}")

            # Step 1: shift or saturate; it also picks the multiplier operand.
            sign = x[width - 1]
            shifter = None
            if in_ram:
                # One barrel shifter (right, arithmetic) for both shifts: the left shift is a
                # right shift of the bit-reversed x in digit 0 of step 1; the rounding shift
                # uses it in digit `digits - 1` of its step (a different cycle). The bits it
                # drops tell both whether the left shift overflows (one differs from the
                # sign, or the new sign bit does) and whether the rounding shift is exact.
                shifter_in = Signal(signed(width + 2), name=f"shifter_in_{n}")
                shifter_out, dropped = _sticky_shift(m, shifter_in, shift,
                                                     left_cycle & sign, f"shifter_{n}")
                shifter = (shifter_in, shifter_out, dropped, left_cycle,
                           Cat(x[::-1], 0, 0))
                x_shifted = shifter_out[:width][::-1]
                overflow = dropped | (shifter_out[0] ^ sign)
            else:
                moved_out = (x ^ sign.replicate(width))[:width - 1]
                overflow = (moved_out & reach).any()
                x_shifted = x << shift
            shifted = Mux(overflow, Mux(sign, _INT32_MIN, _INT32_MAX),
                          x_shifted[:width].as_signed())
            if in_ram:
                a = Signal(signed(width), name=f"a_{n}", reset_less=True)
                shift_word = words[n][:6].as_signed()  # -31..30: right shift, left shift
                right_1 = Signal(5, name=f"right_{n}_1", reset_less=True)
                right_2 = Signal(5, name=f"right_{n}_2", reset_less=True)
                d = width // digits
                mult_held = Signal(d, name=f"mult_{n}", reset_less=True)  # the top digit
                with dp.If(digit_at(1) == 0):
                    dp.d.sync += [a.eq(shifted), right_1.eq(Mux(shift_word[5], -shift_word, 0))]
                with dp.If(digit_at(2) == 0):
                    dp.d.sync += mult_held.eq(words[n][width - d:])
                with dp.If(digit_at(2) == digits - 1):  # right_1 keeps the next group's
                    dp.d.sync += right_2.eq(right_1)
                right_e = right_2
                left = Mux(shift_word[5], 0, shift_word[:5])
                m.d.comb += shift.eq(Mux(left_cycle, left, right_2))
                # Digit k is registered in the group's digit k + 2: digit 0 from the shift
                # word (from its bit 8, see the writes), the top one held, the others from
                # the multiplier word.
                multiplier = Cat(words[n][8:8 + d], words[n][d:width - d], mult_held)
                product = self._serial_multiply(m, dp, a, multiplier, digit_at, stage, n,
                                                passes(self._MULTIPLY_STEP), Const(0),
                                                chained=_is_ice40(platform), rounded=True)
            else:
                a = stage(signed(width), shifted, f"a_{n}")
                if digits == 1:
                    right_e = None  # registered beside s (e_s, below)
                    multiplier = Mux(passes(self._MULTIPLY_STEP), 1 << pass_shift,
                                     select(mult, self._MULTIPLY_STEP, n))
                    product = self._pipelined_multiply(m, platform, a, multiplier, stage, n)
                else:
                    right_e = select(right, round_step - 1, n)
                    product = self._serial_multiply(m, dp, a, select(mult, self._MULTIPLY_STEP, n),
                                                    digit_at, stage, n,
                                                    passes(self._MULTIPLY_STEP), Const(0))

            if streamed:
                lane_z.append(self._serial_rounding(m, dp, product, right_e, passes, zero_point,
                                                    z_load, stage, n, shifter))
                continue
            # SaturatingRoundingDoublingHighMul = floor((p + 2**30) / 2**31), saturated (only
            # INT32_MIN * INT32_MIN overflows); pass-through takes x back from p = x << pass_shift.
            above = product[width - 2:].as_signed()  # floor(p / 2**30)
            high = ((above + 1) >> 1)[:width + 1].as_signed()
            high_sat = Mux(high > _INT32_MAX, _INT32_MAX, high[:width].as_signed())
            s = stage(signed(width), Mux(passes(round_step - 1),
                                         product[pass_shift:pass_shift + width].as_signed(),
                                         high_sat), f"s_{n}")

            # RoundingDivideByPOT in 2 steps: (s + 2**(e-1) - (s < 0)) >> e for e > 0, i.e.
            # ties away from zero. The nudge is 2**(e-1), or 2**(e-1) - 1 for a negative s.
            if right_e is None:
                # The rounding shift's amount registered beside s, from the step before: the
                # nudge's decode then starts at a register, not at the group's multiplexer.
                e = stage(unsigned(5), Mux(passes(round_step - 1), 0,
                                           select(right, round_step - 1, n)), f"e_s_{n}")
            else:
                e = Mux(passes(round_step), 0, right_e)
            negative = s[width - 1]
            if digits == 1:
                nudge = Cat(Mux(negative, e >= j + 2, e == j + 1) for j in range(width - 1))
            else:  # e >= k from decoded bits, not a carry chain each (2 LUT levels)
                # e >= k for k = 1..31 (k = 0 is always true, e >= 32 never).
                at_least = Signal(width - 1, name=f"right_at_least_{n}")
                m.d.comb += at_least.eq(_thermometer(e, width)[1:])
                bits = Cat(Const(1, 1), at_least, Const(0, 1))  # e >= k for k = 0..32
                nudge = Cat(Mux(negative, bits[j + 2], bits[j + 1] & ~bits[j + 2])
                            for j in range(width - 1))
            t = stage(signed(width + 1), s + nudge, f"t_{n}")
            e_t = stage(unsigned(5), e, f"e_{n}")
            y = stage(signed(width), (t >> e_t)[:width].as_signed(), f"y_{n}")

            # Zero point, exact; then the clamp on the way out.
            z = stage(signed(width + 1), y + Mux(passes(zero_point_step), 0, tile.zero_point),
                      f"z_{n}")
            lane_z.append(z)

        for z in lane_z:
            # min(max(z, act_min), act_max) with both comparisons of z side by side.
            # A z outside int8 compares by its sign alone: two 8-bit comparisons.
            fits = z[7:].all() | ~z[7:].any()
            z8, negative = z[:8].as_signed(), z[-1]
            under = Mux(fits, z8 < act_min, negative)
            over = Mux(fits, z8 > act_max, ~negative)
            lane_int8.append(Mux(under, low_bound, Mux(over, act_max, z8))[:8])
        lane_z = [z[:width] for z in lane_z]

        if not streamed:
            done = ctrl[zero_point_step + 1]
        if streamed:
            self._row_output(m, done, lane_z, lane_int8, row_fire, z_load, advance)
        elif in_slots:
            # The clamp's results into registers first: the slots' byte enables and
            # multiplexers spread over the die (12 lanes' slots on large).
            lane_z = [stage(signed(width), z, f"clamp_z_{n}") for n, z in enumerate(lane_z)]
            lane_int8 = [stage(unsigned(8), v, f"clamp_int8_{n}")
                         for n, v in enumerate(lane_int8)]
            done = ctrl_stage(done, f"ctrl_{zero_point_step + 2}")
            self._slot_output(m, done, lane_z, lane_int8, row_fire, credit)
        else:
            # One lane group: whole rows into the output buffer, `latency - 1` cycles after
            # the row was accepted (the cycle in which it reaches `done`; a misalignment would
            # put the wrong row out, which every model comparison catches).
            out = Signal(out_row_layout(cfg))
            m.d.comb += [
                out.row.as_value().eq(Mux(done.mode == PostMode.REQUANT, Cat(lane_int8),
                                          Cat(lane_z))),
                out.mode.eq(done.mode),
                out.tag.eq(done.tag),
                buffer.issue.eq(row_fire),
                buffer.data.eq(out),
            ]
        return m

    def _slot_output(self, m, done, lane_z, lane_int8, row_fire, credit):
        """Output rows of lane groups: :attr:`buffer_depth` row slots, used in turn. A row's
        mode and tag enter its slot when the row is accepted, each lane's result when it
        leaves the clamp (int32 lane ``p`` in bytes ``4p..4p+3``, int8 lane ``p`` in byte
        ``p``), and the slot goes out once the row's last group is in. ``credit`` is high
        while fewer than :attr:`buffer_depth` rows are accepted and not yet out, so the slot
        of an accepted row is free."""
        cfg, dim, lanes, depth = self.config, self.config.dim, self.lanes, self.buffer_depth
        slots = [Signal(out_row_layout(cfg), name=f"slot_{i}", reset_less=True)
                 for i in range(depth)]
        full = Signal(depth)

        def pointer(name, step):
            ptr = Signal(range(depth), name=name)
            with m.If(step):
                m.d.sync += ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))
            return ptr

        popped = self.out_rows.valid & self.out_rows.ready
        completed = done.valid & done.last
        accept_ptr = pointer("accept_ptr", row_fire)
        write_ptr = pointer("write_ptr", completed)
        read_ptr = pointer("read_ptr", popped)
        in_flight = Signal(range(depth + 1))
        m.d.sync += in_flight.eq(in_flight + row_fire - popped)
        m.d.comb += credit.eq(in_flight < depth)

        requant = done.mode == PostMode.REQUANT
        for i, slot in enumerate(slots):
            with m.If(row_fire & (accept_ptr == i)):
                m.d.sync += [slot.mode.eq(self.acc_rows.payload.mode),
                             slot.tag.eq(self.acc_rows.payload.tag)]
            bits = slot.row.as_value()
            for byte in range(4 * dim):
                group32, n32 = divmod(byte // 4, lanes)
                value32 = lane_z[n32].word_select(byte % 4, 8)
                hit32 = done.group == group32
                if byte < dim:
                    group8, n8 = divmod(byte, lanes)
                    value = Mux(requant, lane_int8[n8], value32)
                    hit = Mux(requant, done.group == group8, hit32)
                else:
                    value, hit = value32, ~requant & hit32
                with m.If(done.valid & (write_ptr == i) & hit):
                    m.d.sync += bits.word_select(byte, 8).eq(value)
        with m.If(completed):
            m.d.sync += full.bit_select(write_ptr, 1).eq(1)
        with m.If(popped):
            m.d.sync += full.bit_select(read_ptr, 1).eq(0)
        m.d.comb += [
            self.out_rows.valid.eq(full.bit_select(read_ptr, 1)),
            self.out_rows.payload.eq(Array(slots)[read_ptr]),
        ]

    def _serial_rounding(self, m, dp, product, right, passes, zero_point, z_load, stage, n,
                         shifter=None):
        """Steps ``P`` (``_product_step``, the product in a register) to the zero point step
        with the serial multiply, for one lane: the rounded high half of ``product`` and
        the rounding right shift by ``right`` (its step ``P`` value), then the zero point.

        SaturatingRoundingDoublingHighMul = floor((p + 2**30) / 2**31) = p[31:] + p[30]: the
        increment rides on the nudge add as its carry in, and its one overflow (INT32_MIN
        squared: 2**31) is kept in 33 bits: it rounds, shifts and clamps as INT32_MAX does
        (the shift's tie rounding cannot tell them apart). The nudge takes the sign of p:
        it differs from that of the high half only where that is 0, which rounds to 0
        either way. Pass-through gives p = x * 2**31 and no shift. Returns the zero-pointed
        lane (33 bits), loaded when ``z_load`` is high.

        ``shifter``: (input, output, dropped, left, left input), a barrel shifter (see
        :func:`_sticky_shift`) shared with the left shift, which has it in the cycles
        ``left`` is high; its amount is then ``right`` in the other cycles (0 already for
        pass-through). ``product`` is then ``p + 2**30`` (the multiply adds it), so ``s`` =
        ``p[31:] + p[30]`` is its bits 31+, from the register, in step ``P`` (the zero
        point step). It shifts ``2 s`` right by ``e``: for
        ``q`` that and ``c`` = ``s >= 0`` or a dropped bit set, RoundingDivideByPOT(s, e) =
        ``(q + c) >> 1`` (also for ``e`` = 0), and the ``+ c`` rides on the zero point add
        as its carry in: no nudge."""
        width, step = REQUANT_WIDTH, self._product_step
        high = product[width - 1:].as_signed()
        if shifter is not None:
            shifter_in, q, dropped, left, left_in = shifter
            s = high  # the multiply added 2**30: floor((p + 2**30) / 2**31)
            m.d.comb += shifter_in.eq(Mux(left, left_in, Cat(0, s)))
            c = q[0] & (~s[-1] | dropped)
            z = Signal(signed(width + 1), name=f"z_{n}", reset_less=True)
            zero_point = Mux(passes(self._zero_point_step), 0, zero_point)
            with dp.If(z_load):
                dp.d.sync += z.eq(q[1:].as_signed() + zero_point + c)
            return z
        e = Mux(passes(step), 0, right)
        # e >= k for k = 1..31 (k = 0 is always true, e >= 32 never).
        at_least = Signal(width - 1, name=f"right_at_least_{n}")
        m.d.comb += at_least.eq(_thermometer(e, width)[1:])
        bits = Cat(Const(1, 1), at_least, Const(0, 1))  # e >= k for k = 0..32
        negative = high[-1]
        nudge = Cat(Mux(negative, bits[j + 2], bits[j + 1] & ~bits[j + 2])
                    for j in range(width - 1))
        t = stage(signed(width + 1), high + nudge + product[width - 2], f"t_{n}")
        y = t >> stage(unsigned(5), e, f"e_{n}")
        z = Signal(signed(width + 1), name=f"z_{n}", reset_less=True)
        with dp.If(z_load):
            dp.d.sync += z.eq(y + Mux(passes(self._zero_point_step), 0, zero_point))
        return z

    def _row_output(self, m, done, lane_z, lane_int8, row_fire, z_load, advance):
        """Output rows of the serial multiply: one row register, the ``out_rows`` payload.
        A lane group's results (``done`` its control) wait in the zero point step's registers
        until the register holds no complete row, then enter it at its top as it shifts down
        by a group (int32 lane ``p`` ends in bytes ``4p..4p+3``, int8 lane ``p`` in byte
        ``p``; group 0 also brings the row's mode and
        tag, the tag from a queue written as the row starts); the last group completes the
        row. The datapath stalls (``advance`` low) in a cycle in which the next group's
        results would overwrite waiting ones. By beats (``out_beat_bits``) the register is
        the row's next beat only."""
        cfg, dim, lanes = self.config, self.config.dim, self.lanes
        groups = dim // lanes
        row = Signal(out_row_layout(cfg), name="out_row", reset_less=True)
        full = Signal()
        pending = Signal()  # the zero point step's registers hold results not yet in `row`
        land = pending & ~full
        m.d.comb += advance.eq(~(pending & full & z_load))
        with m.If(land):
            m.d.sync += pending.eq(0)
        with m.If(z_load & advance):
            m.d.sync += pending.eq(1)

        # The group landing: rows land whole and in order, so a count of landed groups.
        group = Signal(range(groups), name="out_group")
        last = group == groups - 1
        with m.If(land):
            m.d.sync += group.eq(Mux(last, 0, group + 1))
        first = land & (group == 0)
        if self._tag_queue_depth == 1:
            tag = Signal(cfg.tag_width, name="row_tag", reset_less=True)
            with m.If(row_fire):
                m.d.sync += tag.eq(self.acc_rows.payload.tag)
        else:
            m.submodules.tag_queue = queue = fifo.SyncFIFO(
                width=cfg.tag_width, depth=self._tag_queue_depth)
            m.d.comb += [queue.w_en.eq(row_fire), queue.w_data.eq(self.acc_rows.payload.tag),
                         queue.r_en.eq(first)]
            tag = queue.r_data
        with m.If(first):
            m.d.sync += [row.mode.eq(done.mode), row.tag.eq(tag)]

        # Each landing shifts the row down by a group and puts the group's lanes on top:
        # after the last group every lane is in its place (no per-byte selects).
        requant = done.mode == PostMode.REQUANT
        bits, int8_bits = row.row.as_value(), 8 * dim
        int32_next = Cat(bits[REQUANT_WIDTH * lanes:], *lane_z)
        int8_next = Cat(bits[8 * lanes:int8_bits], *lane_int8)
        landed = Cat(Mux(requant, int8_next, int32_next[:int8_bits]), int32_next[int8_bits:])
        if self.out_beat_bits is None:
            with m.If(land):
                m.d.sync += bits.eq(landed)
            with m.If(land & last):
                m.d.sync += full.eq(1)
            with m.If(self.out_rows.valid & self.out_rows.ready):
                m.d.sync += full.eq(0)
            m.d.comb += [self.out_rows.valid.eq(full), self.out_rows.payload.eq(row)]
            return
        # By beats: the register is one beat (a group of int32 lanes, or the whole int8
        # row) and holds the row's next beat: an int32 group's lanes as it lands, the int8
        # bytes as the last group lands. `full`: that beat is there.
        beat = self.out_beat_bits
        with m.If(land):
            m.d.sync += bits[:beat].eq(Mux(requant, int8_next, int32_next[-beat:]))
            with m.If(last | ~requant):
                m.d.sync += full.eq(1)
        with m.If(self.out_rows.valid & (self.out_rows.ready | self.out_next_beat)):
            m.d.sync += full.eq(0)
        m.d.comb += [self.out_rows.valid.eq(full), self.out_rows.payload.mode.eq(row.mode),
                     self.out_rows.payload.tag.eq(row.tag),
                     self.out_rows.payload.row.as_value()[:beat].eq(bits[:beat])]

    def _pipelined_multiply(self, m, platform, a, multiplier, stage, n):
        """Steps ``M + 1`` to ``M + 3`` (``M`` = ``_MULTIPLY_STEP``): ``a * multiplier`` (step
        ``M`` values) from 16 x 16 partial products (low halves unsigned), the 64-bit product
        registered at step ``M + 4``. With DSP multipliers (but on an iCE40) each partial
        product is an :class:`hdl.ecp5_mult.ECP5Multiplier`: on an ECP5 registered in its
        MULT18X18D, elsewhere (simulation) the same registered ``*``."""
        width, half = REQUANT_WIDTH, REQUANT_WIDTH // 2
        b = stage(signed(width), multiplier, f"b_{n}")
        a_lo, a_hi = a[:half], a[half:].as_signed()
        b_lo, b_hi = b[:half], b[half:].as_signed()
        in_dsp = (self.multiplier == "behavioural" and self.config.multiplier == "dsp"
                  and not _is_ice40(platform))
        floorplan = dsp_floorplan(platform, self.config)

        def partial(shape, x, y, name):
            if not in_dsp:
                return stage(shape, multiply(x, y, self.multiplier), name)
            site = floorplan.postproc(n, len(parts)) if floorplan else None
            parts.append(name)
            m.submodules[name] = dsp = ECP5Multiplier(x.shape(), y.shape(), hold_b=False,
                                                      site=site)
            m.d.comb += [dsp.a.eq(x), dsp.b.eq(y)]
            return dsp.p

        parts = []  # the partial products so far (a lane's sites in order)
        ll = partial(unsigned(width), a_lo, b_lo, f"ll_{n}")
        lh = partial(signed(width + 1), a_lo, b_hi, f"lh_{n}")
        hl = partial(signed(width + 1), a_hi, b_lo, f"hl_{n}")
        hh = partial(signed(width), a_hi, b_hi, f"hh_{n}")
        mid = stage(signed(width + 2), lh + hl, f"mid_{n}")
        outer = stage(signed(2 * width), Cat(ll, hh).as_signed(), f"outer_{n}")
        return stage(signed(2 * width), (outer + (mid << half))[:2 * width].as_signed(),
                     f"product_{n}")

    def _serial_multiply(self, m, dp, a, multiplier, digit_at, stage, n, passing, zero,
                         chained=None, rounded=False):
        """``a * multiplier`` (values of step ``M`` = ``_MULTIPLY_STEP``: ``a`` steady for all the
        lane group's cycles, ``multiplier``'s digit ``k`` at least in the cycle that picks it;
        ``a * 2**31`` where ``passing``, 0 where ``zero``; plus 2**30 if
        ``rounded``, conditional adds only) accumulated from
        ``d = 32 / multiply_cycles``-bit digits of ``multiplier``, lowest first: the 64-bit
        product is registered at step ``M + 2`` after the group's last digit (the pass-through
        top digit, 2**(d - 1), keeps within the bound below).

        Step ``M`` picks digit ``k`` (unsigned; the top one signed) in the group's ``k``-th
        cycle. Step ``M + 1`` adds ``a * digit`` to the sum so far shifted right by ``d`` bits,
        and shifts that sum's low ``d`` bits, final bits of the product, into a register of
        its low bits. Every sum fits ``32 + d`` bits: the sums before the top digit are at most
        ``2**31 * 2**d`` in magnitude, the last one ``2**(30 + d) + 2**31``.
        """
        width, digits = REQUANT_WIDTH, self.multiply_cycles
        d = width // digits
        choices = [Cat(multiplier[k * d:(k + 1) * d], 0) for k in range(digits - 1)]
        choices.append(Cat(multiplier[width - d:], multiplier[width - 1]))
        # Pass-through (`passing`) multiplies by 2**31: digits 0, the top one 2**(d - 1).
        digit = digit_at(self._MULTIPLY_STEP)
        top = digit == digits - 1
        b = Mux(passing, Cat(Const(0, d - 1), top, 0), Mux(zero, 0, Array(choices)[digit]))
        b = stage(signed(d + 1), b, f"b_{n}")

        high = Signal(signed(width + d), name=f"product_high_{n}", reset_less=True)
        low = Signal(width - d, name=f"product_low_{n}", reset_less=True)
        first = digit_at(self._MULTIPLY_STEP + 1) == 0
        if self.multiplier == "lut" and chained is not None:
            total = self._cond_add_sum(m, high[d:].as_signed(), ~first, a, b, n, chained,
                                       first if rounded else Const(0))
        elif self.multiplier == "lut":
            carried = Mux(first, 0, high >> d)
            total = self._carry_chain_sum(m, carried, a, b, n)
        else:
            total = Mux(first, 0, high >> d) + multiply(a, b, self.multiplier)
        dp.d.sync += high.eq(total[:width + d])
        if rounded:  # only bits 31+ are used: no register of the low bits
            return Cat(Const(0, width - d), high).as_signed()
        dp.d.sync += low.eq(Cat(low[d:], high[:d]))
        return Cat(low, high).as_signed()

    @staticmethod
    def _cond_add_sum(m, carried, carry, a, b, n, ice40, round_in):
        """``carried`` (where ``carry``) ``+ a * b`` (``b`` signed, ``d + 1`` bits; plus 2**30
        where ``round_in``, only with ``b >= 0``) modulo
        ``2**(32 + d)``, from conditional adds (:func:`_cond_add`, one LUT a bit on an iCE40,
        where an add of a partial product costs two LUTs a bit): two chains, one adding
        ``carried`` and the low half of the digit's partial products to ``a * b[0]``, the
        other the high half to ``-a * 2**d`` (the sign bit's weight; its ``+ 1`` is the
        final add's carry in), then their sum. Each chain is as deep as a tree of adds of
        the same terms with ``carried`` gated before it."""
        top = len(b) - 1
        width = len(a) + top
        half = max(1, top // 2)
        low = Mux(b[0], a, 0)
        low = _cond_add(m, low, carried, carry, width, 0, ice40, f"mul_{n}_carried")
        for k in range(1, half):
            low = _cond_add(m, low, a.shift_left(k), b[k], width, k, ice40, f"mul_{n}_{k}")
        # Where b[top] is 0 (always in the first digit) the high chain starts at 2**30 if
        # `round_in` (the rounding of the high multiply): a LUT input more in one bit.
        high = Mux(b[top], ~a.shift_left(top), Cat(Const(0, 30), round_in))
        for k in range(half, top):
            high = _cond_add(m, high, a.shift_left(k), b[k], width, k, ice40, f"mul_{n}_{k}")
        return (low + high + b[top])[:width]

    @staticmethod
    def _carry_chain_sum(m, carried, a, b, n):
        """``carried + a * b`` (``b`` signed) as a balanced tree of two-operand adds of the
        shifted partial products, each sum a kept wire: yosys then maps every add to a
        carry chain (one LUT and one SB_CARRY a bit) instead of merging them into one
        multi-operand adder of LUT full adders (about 1.4 times the LUTs)."""
        top = len(b) - 1
        terms = [Mux(b[i], a, 0) << i for i in range(top)] + [carried]
        level = 0
        while len(terms) > 1:
            sums = []
            for i in range(0, len(terms) - 1, 2):
                total = terms[i] + terms[i + 1]
                wire = Signal(total.shape(), name=f"pp_sum_{n}_{level}_{i // 2}",
                              attrs={"keep": 1})
                m.d.comb += wire.eq(total)
                sums.append(wire)
            terms = sums + terms[len(sums) * 2:]
            level += 1
        return terms[0] - (Mux(b[top], a, 0) << top)  # the sign bit weighs -2**top

"""Bit-exact golden model of Tessera.

Everything here is plain numpy on int64 values, written from the specification and never from
the RTL. Sums wrap modulo ``2**acc_width`` exactly as the hardware accumulates.
"""

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

__all__ = [
    "ACTIVATIONS", "AccumulatorModel", "INT32_MAX", "INT32_MIN", "POSTPROC_MODES",
    "SHIFT_MAX", "SHIFT_MIN", "PostProcessModel", "RequantParams", "ScratchpadModel",
    "SystolicModel", "activation_range", "check_range", "matmul",
    "multiply_by_quantized_multiplier", "postprocess_rows", "quantize_multiplier", "replay",
    "requantize", "rounding_divide_by_pot", "saturating_rounding_doubling_high_mul",
    "tflite_output_scale", "wrap_signed",
]


def wrap_signed(values, width):
    """``values`` reduced to the two's-complement range of ``width`` bits."""
    values = np.asarray(values, dtype=np.int64)
    mask = (1 << width) - 1
    half = 1 << (width - 1)
    return ((values & mask) ^ half) - half


def check_range(name, values, width, is_signed):
    """Raise ``ValueError`` if any of ``values`` does not fit ``width`` bits."""
    values = np.asarray(values, dtype=np.int64)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi}]")
    return values


def matmul(acts, weights, config):
    """``acts @ weights`` as the array computes it.

    ``acts`` is R x K, ``weights`` K x N (K, N at most ``config.dim``); the result is R x N,
    wrapped to ``config.acc_width`` signed bits.
    """
    acts = check_range("acts", acts, config.act_width, config.act_signed)
    weights = check_range("weights", weights, config.weight_width, config.weight_signed)
    # Products of 8-bit operands summed over dim <= a few thousand rows fit int64 exactly.
    return wrap_signed(acts @ weights, config.acc_width)


class SystolicModel:
    """Transaction-level model of :class:`hdl.systolic.SystolicArray`.

    Weight rows fill a shadow tile; the activation row flagged ``swap`` makes the most recently
    completed shadow tile active; each activation row yields one result row with its tag.
    The active tile is all zeros after reset, as in the hardware.
    """

    def __init__(self, config):
        self.config = config
        dim = config.dim
        self.active = np.zeros((dim, dim), dtype=np.int64)
        self.shadow = np.zeros((dim, dim), dtype=np.int64)
        self.completed = None
        self._row = 0

    def load_weight_row(self, row, last):
        dim = self.config.dim
        if len(row) != dim:
            raise ValueError(f"weight row must have {dim} lanes, not {len(row)}")
        if bool(last) != (self._row == dim - 1):
            raise ValueError(f"last must be set on weight row {dim - 1} only")
        self.shadow[self._row] = row
        self._row = (self._row + 1) % dim
        if last:
            self.completed = self.shadow.copy()

    def load_tile(self, tile):
        for k, row in enumerate(tile):
            self.load_weight_row(row, last=(k == self.config.dim - 1))

    def act_row(self, row, swap=False, tag=0):
        """Returns ``(result_row, tag)``."""
        if swap:
            if self.completed is None:
                raise ValueError("swap without a completed weight tile")
            self.active, self.completed = self.completed, None
        result = matmul(np.asarray(row, dtype=np.int64)[None, :], self.active, self.config)[0]
        return result, tag


# --- Post-processing: bias, int8 requantization and activation (hdl/postproc.py). ---
#
# The arithmetic is TFLite's integer requantization (MultiplyByQuantizedMultiplier, default
# double-rounding build), bit-exact with LiteRT's reference int8 CONV_2D kernel; the oracle
# test tests/test_postproc_oracle.py checks that against ai-edge-litert case by case. (LiteRT's
# reference FULLY_CONNECTED rounds a floating-point product instead and differs at ties.)
# Where C++ leaves a result undefined (signed overflow), the hardware's choice is written down
# below and the model implements that choice.

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN, INT8_MAX = -128, 127

#: Shifts the post-processing supports: what TFLite's ``MultiplyByQuantizedMultiplier`` defines
#: (a left shift of 31 overflows ``1 << 31``; ``QuantizeMultiplier`` never returns less than -31).
SHIFT_MIN, SHIFT_MAX = -31, 30

#: Output modes of the post-processing (names of :class:`hdl.postproc.PostMode` members).
POSTPROC_MODES = ("requant", "acc", "acc_bias")

#: Fused activations (``tflite.ActivationFunctionType`` names, lower case).
ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1")


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 values (elementwise).

    ``(a * b + nudge) / 2**31`` with C's truncating division and ``nudge`` = ``2**30`` for a
    non-negative product, ``1 - 2**30`` for a negative one; that is ``floor((a*b + 2**30) /
    2**31)``, rounding a tie towards plus infinity. The one result that does not fit int32
    (``a == b == INT32_MIN``) saturates to ``INT32_MAX``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b  # |a * b| <= 2**62 fits int64
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # truncate towards zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's ``MultiplyByQuantizedMultiplier`` (double rounding), with a defined left shift.

    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2**left, multiplier), right)``
    with ``left = max(shift, 0)`` and ``right = max(-shift, 0)``: TFLite's double rounding,
    the default build (``TFLITE_SINGLE_ROUNDING`` unset), and what LiteRT 2.3.0's reference
    CONV_2D kernel computes (checked by tests/test_postproc_oracle.py). The high multiply
    rounds ties up, the divide rounds ties away from zero, so a result can differ by one from
    rounding the exact product once (LiteRT's floating-point reference FULLY_CONNECTED). In
    C++ the left shift overflows int32 (undefined behaviour) when ``x`` needs more than
    ``31 - left`` bits; here, as in the hardware, it **saturates** to INT32_MIN / INT32_MAX.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    shifted = np.clip(x << left, INT32_MIN, INT32_MAX)  # |x| * 2**30 < 2**62 fits int64
    high = saturating_rounding_doubling_high_mul(shifted, multiplier)
    return rounding_divide_by_pot(high, np.maximum(-shift, 0))


def requantize(acc, bias, multiplier, shift, zero_point, act_min, act_max):
    """int8 output of a quantized FULLY_CONNECTED / CONV_2D from its int32 accumulator.

    Elementwise (numpy broadcasting), as TFLite's integer kernels (LiteRT's reference
    CONV_2D)::

        x = acc + bias                                    # int32; wraps (see below)
        y = MultiplyByQuantizedMultiplier(x, multiplier, shift)
        z = y + zero_point                                # exact; then clamped
        out = min(max(z, act_min), act_max)               # act_min/act_max are int8

    Where C++ overflows int32 (undefined behaviour), the hardware defines: ``acc + bias`` wraps
    modulo ``2**32`` (as the accumulator does, and as LiteRT's x86 build does in practice); the
    left shift saturates; ``y + zero_point`` is computed exactly, so a large ``y`` clamps to
    ``act_max`` rather than wrapping round.
    """
    x = wrap_signed(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64), 32)
    y = multiply_by_quantized_multiplier(x, multiplier, shift)
    z = y + np.asarray(zero_point, dtype=np.int64)
    return np.minimum(np.maximum(z, act_min), act_max)


def _check_real_scale(name, value):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, not {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite non-negative number, not {value!r}")
    return value


def quantize_multiplier(scale):
    """``(multiplier, shift)`` with ``scale ~= multiplier * 2**(shift - 31)``, as TFLite does.

    TFLite's ``QuantizeMultiplier``: ``scale = q * 2**shift`` with ``q`` in [0.5, 1)
    (``frexp``); ``multiplier = round(q * 2**31)`` rounded half away from zero; if that rounds
    up to ``2**31`` it is halved and ``shift`` incremented; a scale below about ``2**-32``
    (``shift < -31``) flushes to ``(0, 0)``. Zero gives ``(0, 0)``.

    Raises
    ------
    TypeError
        ``scale`` is not a real number.
    ValueError
        ``scale`` is negative or not finite, or needs a shift above :data:`SHIFT_MAX` (a scale
        of ``2**30`` or more), which the hardware (and TFLite's double-rounding kernel) does
        not support.
    """
    scale = _check_real_scale("scale", scale)
    if scale == 0:
        return 0, 0
    mantissa, shift = math.frexp(scale)
    scaled = mantissa * (1 << 31)  # exact: a power-of-two scaling of a double
    multiplier = math.floor(scaled + 0.5)  # exact for 0.5 <= mantissa < 1; ties away from 0
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < SHIFT_MIN:
        return 0, 0
    if shift > SHIFT_MAX:
        raise ValueError(
            f"scale must be less than 2**{SHIFT_MAX} (a shift of at most {SHIFT_MAX}), "
            f"not {scale!r} (shift {shift})")
    return multiplier, shift


def tflite_output_scale(input_scale, weight_scale, output_scale, *, float32_product=False):
    """The real scale LiteRT quantizes (with :func:`quantize_multiplier`) for an int8 output
    channel: ``input_scale * weight_scale / output_scale``, the scales being float32 tensor
    parameters.

    LiteRT's CONV_2D and DEPTHWISE_CONV_2D (per channel or per tensor) and its per-channel
    FULLY_CONNECTED compute ``double(input) * double(weight) / double(output)`` (checked by
    tests/test_postproc_oracle.py through CONV_2D). Its per-tensor integer FULLY_CONNECTED
    (``GetQuantizedConvolutionMultipler``) multiplies ``input * weight`` in float32 first:
    ``float32_product=True`` (from LiteRT's kernel_util.cc; the int8 results differ only in
    rare rounding ties).
    """
    i, w, o = (np.float32(s) for s in (input_scale, weight_scale, output_scale))
    if float32_product:
        return float(i * w) / float(o)
    return float(i) * float(w) / float(o)


def activation_range(activation, scale, zero_point):
    """``(act_min, act_max)`` of an int8 output, as TFLite's CalculateActivationRangeQuantized.

    A real bound ``f`` quantizes to ``zero_point + round(f / scale)`` (float32 division, ties
    away from zero), clamped to [-128, 127]. ``activation`` is one of :data:`ACTIVATIONS`.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
    scale = np.float32(_check_real_scale("scale", scale))
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {float(scale)!r}")
    zero_point = _check_in("zero_point", zero_point, INT8_MIN, INT8_MAX)

    def quantize(f):
        q = float(np.float32(f) / scale)
        return int(zero_point) + int(math.copysign(math.floor(abs(q) + 0.5), q))

    low, high = {"none": (None, None), "relu": (0.0, None), "relu6": (0.0, 6.0),
                 "relu_n1_to_1": (-1.0, 1.0)}[activation]
    act_min = INT8_MIN if low is None else max(INT8_MIN, quantize(low))
    act_max = INT8_MAX if high is None else min(INT8_MAX, quantize(high))
    return act_min, act_max


def _check_in(name, value, lo, hi):
    """``value`` as an int, if it is an integer in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie in [{lo}, {hi}], not {value!r}")
    return int(value)


@dataclass
class RequantParams:
    """Post-processing parameters of one tile: per column (output channel) and per tile.

    ``bias``, ``multiplier``, ``shift``: one value per column (int32, int32 and
    :data:`SHIFT_MIN`..:data:`SHIFT_MAX`); ``zero_point``, ``act_min``, ``act_max``: int8, for
    the whole tile. Per-tensor quantization is the same multiplier and shift in every column.
    """
    bias: list
    multiplier: list
    shift: list
    zero_point: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX

    def __post_init__(self):
        for name, lo, hi in [("bias", INT32_MIN, INT32_MAX),
                             ("multiplier", INT32_MIN, INT32_MAX),
                             ("shift", SHIFT_MIN, SHIFT_MAX)]:
            setattr(self, name, [_check_in(name, v, lo, hi) for v in getattr(self, name)])
        if not len(self.bias) == len(self.multiplier) == len(self.shift):
            raise ValueError("bias, multiplier and shift must have one value per column")
        for name in ("zero_point", "act_min", "act_max"):
            setattr(self, name, _check_in(name, getattr(self, name), INT8_MIN, INT8_MAX))
        if self.act_min > self.act_max:
            raise ValueError(
                f"act_min must not exceed act_max ({self.act_max}), not {self.act_min!r}")

    @classmethod
    def zeros(cls, dim):
        """All fields zero: the parameters after reset (every int8 output is 0)."""
        return cls([0] * dim, [0] * dim, [0] * dim, 0, 0, 0)

    @property
    def columns(self):
        return len(self.bias)


def postprocess_rows(acc_rows, params, mode="requant"):
    """Rows x columns output of :class:`hdl.postproc.PostProcess` for ``acc_rows``.

    ``mode``: ``"requant"`` (int8, :func:`requantize`), ``"acc"`` (the accumulator unchanged,
    int32) or ``"acc_bias"`` (``acc + bias`` wrapped to int32).
    """
    if mode not in POSTPROC_MODES:
        raise ValueError(f"mode must be one of {', '.join(POSTPROC_MODES)}, not {mode!r}")
    acc = check_range("acc", acc_rows, 32, True)
    if mode == "acc":
        return acc
    if mode == "acc_bias":
        return wrap_signed(acc + np.asarray(params.bias, dtype=np.int64), 32)
    return requantize(acc, params.bias, params.multiplier, params.shift, params.zero_point,
                      params.act_min, params.act_max)


class PostProcessModel:
    """Transaction-level model of :class:`hdl.postproc.PostProcess`.

    Parameter beats write columns of a shadow set; the beat flagged ``last`` also sets the
    per-tile fields and completes the set; the next row flagged ``swap`` makes it active. The
    active set is all zeros after reset, as in the hardware.
    """

    def __init__(self, config):
        self.config = config
        self.active = RequantParams.zeros(config.dim)
        self._shadow = RequantParams.zeros(config.dim)
        self.completed = None

    def load_param(self, column, bias, multiplier, shift, zero_point=0, act_min=0, act_max=0,
                   last=False):
        """One beat on the parameter port."""
        if not 0 <= column < self.config.dim:
            raise ValueError(f"column must lie in [0, {self.config.dim - 1}], not {column!r}")
        shadow = self._shadow
        shadow.bias[column], shadow.multiplier[column] = bias, multiplier
        shadow.shift[column] = shift
        if last:
            shadow.zero_point, shadow.act_min, shadow.act_max = zero_point, act_min, act_max
            self.completed = RequantParams(  # checks every field
                list(shadow.bias), list(shadow.multiplier), list(shadow.shift),
                shadow.zero_point, shadow.act_min, shadow.act_max)

    def param_beats(self, params):
        """The beats (as ``load_param`` keyword dicts) that load ``params``, column order."""
        dim = self.config.dim
        if params.columns != dim:
            raise ValueError(f"params must have {dim} columns, not {params.columns}")
        return [dict(column=c, bias=params.bias[c], multiplier=params.multiplier[c],
                     shift=params.shift[c], zero_point=params.zero_point,
                     act_min=params.act_min, act_max=params.act_max, last=c == dim - 1)
                for c in range(dim)]

    def load_params(self, params):
        for beat in self.param_beats(params):
            self.load_param(**beat)

    def row(self, acc_row, mode="requant", swap=False, tag=0):
        """Returns ``(values, mode, tag)``: int8 values for ``"requant"``, else int32."""
        if swap:
            if self.completed is None:
                raise ValueError("swap without a completed parameter set")
            self.active, self.completed = self.completed, None
        values = postprocess_rows(np.asarray(acc_row, dtype=np.int64)[None, :], self.active,
                                  mode)[0]
        return [int(v) for v in values], mode, tag

# --- Memories -----------------------------------------------------------------------------
# Both memories promise the same ordering: a read accepted in cycle t sees every write
# accepted before cycle t and none accepted in cycle t. `replay` applies that rule to a log of
# accepted requests. Out-of-range addresses are refused (never wrapped): a write changes
# nothing, a read answers zeros with its error flag set.


class ScratchpadModel:
    def __init__(self, config):
        self.config = config
        self.depth = config.sp_depth
        self.rows = np.zeros((self.depth, config.dim), dtype=np.int64)
        self.error = False

    def read(self, addr):
        """``(row, error)``."""
        if addr >= self.depth:
            self.error = True
            return [0] * self.config.dim, True
        return [int(v) for v in self.rows[addr]], False

    def write(self, addr, row, accumulate=False):
        if addr >= self.depth:
            self.error = True
            return
        self.rows[addr] = row


class AccumulatorModel(ScratchpadModel):
    def __init__(self, config):
        super().__init__(config)
        self.depth = config.acc_depth
        self.rows = np.zeros((self.depth, config.dim), dtype=np.int64)

    def write(self, addr, row, accumulate=False):
        if addr >= self.depth:
            self.error = True
            return
        row = np.asarray(row, dtype=np.int64)
        if accumulate:
            row = row + self.rows[addr]
        self.rows[addr] = wrap_signed(row, self.config.acc_width)


def replay(model, log):
    """Answers to the reads in ``log``: a list of ``(cycle, kind, request)`` in cycle order,
    ``kind`` "read" (request: addr) or "write" (request: (addr, row, accumulate))."""
    answers = []
    by_cycle = {}
    for cycle, kind, request in log:
        by_cycle.setdefault(cycle, []).append((kind, request))
    for cycle in sorted(by_cycle):
        for kind, request in by_cycle[cycle]:
            if kind == "read":
                answers.append(model.read(request))
        for kind, request in by_cycle[cycle]:
            if kind == "write":
                model.write(*request)
    return answers

"""The golden model's requantization against LiteRT's reference kernels, case by case.

Tiny int8 models are written here with the flatbuffer schema classes of the ``tflite`` package
and run by ``ai-edge-litert`` with ``OpResolverType.BUILTIN_REF`` (the reference kernels, no
delegate): 1x1 CONV_2D models, per tensor and per channel, and per-tensor FULLY_CONNECTED
models. The quantization parameters are chosen by scale (the inverse of
:func:`sim.model.quantize_multiplier` and LiteRT's scale arithmetic), so that LiteRT derives
exactly the multiplier and shift a case needs; the accumulators are set through the inputs,
weights and biases.

What LiteRT 2.3.0's reference kernels turn out to do:

- CONV_2D (``reference_integer_ops::ConvPerChannel``): the Q31 multiplier and shift with
  TFLite's default *double rounding* ``MultiplyByQuantizedMultiplier`` (gemmlowp's
  SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT). Every case whose C++ is
  defined must agree bit for bit with :func:`sim.model.requantize` (at least 10,000, corners
  included); ``TFLITE_SINGLE_ROUNDING``'s formula does not.
- FULLY_CONNECTED (``reference_integer_ops::FullyConnected`` with float scales): no Q31
  multiplier at all, but ``round(double(acc) * input_scale * weight_scale / output_scale)``.
  The golden model agrees with it except at rounding ties, which are checked to be exactly
  that.

Where C++ overflows int32, the cases are counted and reported; there the hardware's choice
(see :func:`sim.model.requantize`) may differ from what this LiteRT build happens to do.
"""


import os
from fractions import Fraction

import numpy as np
import pytest

from sim.model import (
    INT32_MAX,
    INT32_MIN,
    SHIFT_MAX,
    SHIFT_MIN,
    activation_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize,
    saturating_rounding_doubling_high_mul,
    tflite_output_scale,
    wrap_signed,
)


def _import_litert():
    """LiteRT and the schema classes; missing, they skip the tests (fail them under CI)."""
    try:
        import flatbuffers
        import tflite
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as error:
        message = (f"{error}: pip install ai-edge-litert==2.3.0 tflite==2.18.0 "
                   f"(the LiteRT oracle's dependencies)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return flatbuffers, tflite, Interpreter, OpResolverType


ACTIVATION_CODES = {"none": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3}


# --- Writing and running a one-operator model. ---

def _vector(builder, start, values, kind):
    start(builder, len(values))
    for value in reversed(values):
        getattr(builder, f"Prepend{kind}")(value)
    return builder.EndVector()


def build_model(op, *, input_shape, input_scale, input_zero_point, weights, weight_scales, bias,
                output_shape, output_scale, output_zero_point, activation):
    """A flatbuffer with one int8 ``op`` ("fc" or "conv"); weights int8 (per-channel when
    ``weight_scales`` has more than one entry, quantized dimension 0), bias int32 with scale
    ``input_scale * weight_scale`` (in float32, as converters write it)."""
    flatbuffers, tflite, _, _ = _import_litert()
    b = flatbuffers.Builder(1024)

    def buffer(array):
        if array is not None:
            data = b.CreateByteVector(np.ascontiguousarray(array).tobytes())
        tflite.BufferStart(b)
        if array is not None:
            tflite.BufferAddData(b, data)
        return tflite.BufferEnd(b)

    # Buffer 0 is the empty sentinel the schema asks for.
    buffers = [buffer(None), buffer(None), buffer(np.asarray(weights, dtype=np.int8)),
               buffer(np.asarray(bias, dtype=np.int32)), buffer(None)]

    def quantization(scales, zero_points):
        scale_vec = _vector(b, tflite.QuantizationParametersStartScaleVector,
                            [float(s) for s in scales], "Float32")
        zero_vec = _vector(b, tflite.QuantizationParametersStartZeroPointVector,
                           [int(z) for z in zero_points], "Int64")
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, scale_vec)
        tflite.QuantizationParametersAddZeroPoint(b, zero_vec)
        tflite.QuantizationParametersAddQuantizedDimension(b, 0)
        return tflite.QuantizationParametersEnd(b)

    def tensor(name, shape, kind, buffer_index, quant):
        name = b.CreateString(name)
        shape = _vector(b, tflite.TensorStartShapeVector, [int(d) for d in shape], "Int32")
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, kind)
        tflite.TensorAddBuffer(b, buffer_index)
        tflite.TensorAddName(b, name)
        tflite.TensorAddQuantization(b, quant)
        return tflite.TensorEnd(b)

    types = tflite.TensorType
    weight_scales = np.asarray(weight_scales, dtype=np.float32)
    bias_scales = np.float32(input_scale) * weight_scales
    tensors = [
        tensor("input", input_shape, types.INT8, 1,
               quantization([input_scale], [input_zero_point])),
        tensor("weights", np.shape(weights), types.INT8, 2,
               quantization(weight_scales, [0] * len(weight_scales))),
        tensor("bias", np.shape(bias), types.INT32, 3,
               quantization(bias_scales, [0] * len(bias_scales))),
        tensor("output", output_shape, types.INT8, 4,
               quantization([output_scale], [output_zero_point])),
    ]

    if op == "fc":
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[activation])
        options = tflite.FullyConnectedOptionsEnd(b)
        options_type = tflite.BuiltinOptions.FullyConnectedOptions
        code = tflite.BuiltinOperator.FULLY_CONNECTED
    else:
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, tflite.Padding.VALID)
        tflite.Conv2DOptionsAddStrideW(b, 1)
        tflite.Conv2DOptionsAddStrideH(b, 1)
        tflite.Conv2DOptionsAddDilationWFactor(b, 1)
        tflite.Conv2DOptionsAddDilationHFactor(b, 1)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[activation])
        options = tflite.Conv2DOptionsEnd(b)
        options_type = tflite.BuiltinOptions.Conv2DOptions
        code = tflite.BuiltinOperator.CONV_2D
    inputs = _vector(b, tflite.OperatorStartInputsVector, [0, 1, 2], "Int32")
    outputs = _vector(b, tflite.OperatorStartOutputsVector, [3], "Int32")
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, inputs)
    tflite.OperatorAddOutputs(b, outputs)
    tflite.OperatorAddBuiltinOptionsType(b, options_type)
    tflite.OperatorAddBuiltinOptions(b, options)
    operator = tflite.OperatorEnd(b)

    tensor_vec = _vector(b, tflite.SubGraphStartTensorsVector, tensors, "UOffsetTRelative")
    input_vec = _vector(b, tflite.SubGraphStartInputsVector, [0], "Int32")
    output_vec = _vector(b, tflite.SubGraphStartOutputsVector, [3], "Int32")
    operator_vec = _vector(b, tflite.SubGraphStartOperatorsVector, [operator], "UOffsetTRelative")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddInputs(b, input_vec)
    tflite.SubGraphAddOutputs(b, output_vec)
    tflite.SubGraphAddOperators(b, operator_vec)
    subgraph = tflite.SubGraphEnd(b)

    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, code)
    tflite.OperatorCodeAddBuiltinCode(b, code)
    tflite.OperatorCodeAddVersion(b, 1)
    opcode = tflite.OperatorCodeEnd(b)
    opcode_vec = _vector(b, tflite.ModelStartOperatorCodesVector, [opcode], "UOffsetTRelative")
    subgraph_vec = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], "UOffsetTRelative")
    buffer_vec = _vector(b, tflite.ModelStartBuffersVector, buffers, "UOffsetTRelative")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, opcode_vec)
    tflite.ModelAddSubgraphs(b, subgraph_vec)
    tflite.ModelAddBuffers(b, buffer_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_model(model, inputs):
    """Run ``model`` on ``inputs`` with LiteRT's reference kernels."""
    _, _, Interpreter, OpResolverType = _import_litert()
    interpreter = Interpreter(model_content=model,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.int64)


# --- Cases: what LiteRT computed, and everything the golden model needs. ---

class Cases:
    """Flat arrays of oracle cases: accumulator (without bias), bias, multiplier, shift, zero
    point, activation bounds, LiteRT's output, and the real scale LiteRT started from."""

    FIELDS = ("acc", "bias", "multiplier", "shift", "zero_point", "act_min", "act_max", "litert",
              "scale")

    def __init__(self):
        self.parts = {name: [] for name in self.FIELDS}

    def add(self, **arrays):
        shape = np.shape(arrays["litert"])
        for name in self.FIELDS:
            self.parts[name].append(np.broadcast_to(arrays[name], shape).ravel())

    def __getattr__(self, name):
        if name in self.FIELDS:
            values = np.concatenate(self.parts[name])
            return values if name == "scale" else values.astype(np.int64)
        raise AttributeError(name)

    def __len__(self):
        return sum(part.size for part in self.parts["acc"])


def _bounds(rng):
    """Output zero point (the int8 ends more often than not) and activation."""
    zero_point = int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))
    return zero_point, str(rng.choice(list(ACTIVATION_CODES)))


def _budget(shift):
    """Largest |acc + bias| whose left shift by ``shift`` stays inside int32."""
    return (1 << (31 - max(shift, 0))) - 1


def conv_scales(multiplier, rng):
    """The inverse of LiteRT's CONV_2D scale arithmetic for one multiplier.

    Returns an input scale ``a * 2**-23`` and a weight mantissa ``f`` (24-bit integers) whose
    product, exact in LiteRT's double arithmetic, rounds to ``multiplier``; the weight scale
    ``f * 2**(shift - 24)`` (output scale 1) then gives (multiplier, shift) for any shift.
    """
    target = multiplier << 16  # a * f must round to it: within 2**15, and not below 2**46
    while True:
        a = int(rng.integers(1 << 23, 1 << 24))
        f = round(target / a)
        if f < (1 << 24) and quantize_multiplier(a * f * 2.0 ** -47) == (multiplier, 0):
            return np.float32(a * 2.0 ** -23), f


def conv_weight_scale(f, shift):
    return np.float32(f * 2.0 ** (shift - 24))


def fc_scales(multiplier, shift, rng):
    """Float32 (input, weight, output) scales for which LiteRT derives exactly (multiplier,
    shift) for a per-tensor FULLY_CONNECTED: a ratio P / O of 24-bit mantissas that rounds
    to the Q31 multiplier (the input scale is a power of two, so every product is exact)."""
    t = Fraction(multiplier, 1 << 30).limit_denominator(1 << 23)  # in [1, 2)
    p, o = t.numerator, t.denominator
    extra = int(rng.integers(0, 6))  # spreads the output scale (and so the ReLU6 bound)
    input_scale = np.float32(2.0 ** -3)
    weight_scale = np.float32(p * 2.0 ** (shift - 21 - extra))
    output_scale = np.float32(o * 2.0 ** (-23 - extra))
    got = quantize_multiplier(tflite_output_scale(input_scale, weight_scale, output_scale,
                                                  float32_product=True))
    assert got == (multiplier, shift), f"scales for {(multiplier, shift)} give {got}"
    return input_scale, weight_scale, output_scale


def add_conv_case(cases, rng, input_scale, weight_scales, channels=None, *, limit=INT32_MAX,
                  wild=False, output=None):
    """One 1x1 CONV_2D model over an 8 x 8 x 2 input (output scale 1): per channel with one
    weight scale per output channel, per tensor with a single weight scale for ``channels``
    channels. Accumulators at INT32_MIN/MAX, small and random, within what the shift allows
    (the extremes only where the left shift is 0) and within +-``limit``; ``wild``: biases
    near the int32 ends and large weights whatever the shift, so C++ overflows. ``output``:
    (zero point, activation), else random."""
    channels = channels or len(weight_scales)
    real = [tflite_output_scale(input_scale, s, 1.0) for s in weight_scales]
    quantized = [quantize_multiplier(r) for r in real]
    per_channel = np.broadcast_to(np.array(quantized), (channels, 2))
    multiplier, shift = per_channel[:, 0], per_channel[:, 1]
    x = rng.integers(-128, 128, size=(8, 8, 2))
    for i, value in enumerate([-128, 127, 0, 1, -1, 2, -2]):
        x.reshape(-1, 2)[i] = value
    weights = np.zeros((channels, 2), dtype=np.int64)
    bias = np.zeros(channels, dtype=np.int64)
    for c in range(channels):
        budget = min(limit, _budget(int(shift[c])))
        kind = rng.integers(0, 4) if budget == INT32_MAX else 3
        if wild:
            weights[c] = rng.integers(-127, 128, size=2)
            bias[c] = int(rng.choice([INT32_MIN, INT32_MAX])) - int(rng.integers(-(1 << 15),
                                                                                 1 << 15))
            bias[c] = min(max(bias[c], INT32_MIN), INT32_MAX)
        elif kind == 0:  # x = (-128, -128) reaches exactly INT32_MIN
            weights[c], bias[c] = (127, 127), INT32_MIN + 2 * 128 * 127
        elif kind == 1:  # x = (127, 127) reaches exactly INT32_MAX
            weights[c], bias[c] = (127, 127), INT32_MAX - 2 * 127 * 127
        else:
            most = int(min(127, budget // 512)) or int(budget >= 256)
            weights[c] = rng.integers(-most, most + 1, size=2) >> rng.integers(0, 8, size=2)
            room = max(0, budget - 256 * int(np.abs(weights[c]).sum()))
            bias[c] = int(rng.integers(-room, room + 1)) >> int(rng.integers(0, 31))
    zero_point, activation = output or _bounds(rng)
    model = build_model("conv", input_shape=[1, 8, 8, 2], input_scale=input_scale,
                        input_zero_point=0, weights=weights.reshape(channels, 1, 1, 2),
                        weight_scales=weight_scales, bias=bias,
                        output_shape=[1, 8, 8, channels], output_scale=1.0,
                        output_zero_point=zero_point, activation=activation)
    got = run_model(model, x.astype(np.int8).reshape(1, 8, 8, 2))[0]
    acc = np.einsum("hwk,ck->hwc", x, weights)
    act_min, act_max = activation_range(activation, 1.0, zero_point)
    cases.add(acc=acc, bias=bias, multiplier=multiplier, shift=shift, zero_point=zero_point,
              act_min=act_min, act_max=act_max, litert=got,
              scale=np.broadcast_to(real, (channels,)))


def add_fc_case(cases, rng, input_scale, weight_scale, output_scale, *, rows=32, neurons=8):
    """One per-tensor FULLY_CONNECTED model (K = 1): accumulators at INT32_MIN/MAX, small and
    random, as far as the shift leaves them defined."""
    multiplier, shift = quantize_multiplier(
        tflite_output_scale(input_scale, weight_scale, output_scale, float32_product=True))
    budget = _budget(shift)
    input_zero_point = int(rng.choice([0, 0, int(rng.integers(-128, 128))]))
    x = np.concatenate([[-128, 127, 0, 1, -1, 2, -2, 3, -3],
                        rng.integers(-128, 128, size=rows - 9)]).astype(np.int8)
    weights = np.concatenate([[1, 1, 1, -1], rng.integers(-127, 128, size=neurons - 4)])
    span = 255 * np.abs(weights)
    bias = [INT32_MIN + 128 + input_zero_point,  # x = -128: exactly INT32_MIN
            INT32_MAX - 127 + input_zero_point,  # x = 127: exactly INT32_MAX
            0, int(rng.integers(-(1 << 10), 1 << 10))]
    for n in range(4, neurons):
        room = max(0, budget - int(span[n]))
        bias.append(int(rng.integers(-room, room + 1)) >> int(rng.integers(0, 31)))
    zero_point, activation = _bounds(rng)
    model = build_model("fc", input_shape=[rows, 1], input_scale=input_scale,
                        input_zero_point=input_zero_point, weights=weights.reshape(neurons, 1),
                        weight_scales=[weight_scale], bias=np.array(bias),
                        output_shape=[rows, neurons], output_scale=output_scale,
                        output_zero_point=zero_point, activation=activation)
    got = run_model(model, x.reshape(rows, 1))
    acc = (x.astype(np.int64)[:, None] - input_zero_point) * weights[None, :]
    act_min, act_max = activation_range(activation, output_scale, zero_point)
    # The reference FULLY_CONNECTED scales by this double, not by the Q31 multiplier.
    real = float(input_scale) * float(weight_scale) / float(output_scale)
    cases.add(acc=acc, bias=np.array(bias)[None, :], multiplier=multiplier, shift=shift,
              zero_point=zero_point, act_min=act_min, act_max=act_max, litert=got, scale=real)


#: The corners of the multiplier (2**30 and 2**31 - 1 and their neighbours) and of the shift.
CORNER_MULTIPLIERS = [1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX]
CORNER_SHIFTS = [SHIFT_MIN, SHIFT_MIN + 1, -16, -1, 0, 1, 15, SHIFT_MAX - 1, SHIFT_MAX]


def make_conv_cases(seed):
    """CONV_2D cases: LiteRT's reference kernel here is the integer one (Q31, MultiplyBy-
    QuantizedMultiplier), which the hardware must match bit for bit."""
    rng = np.random.default_rng(seed)
    cases = Cases()
    # Per tensor: each corner multiplier at each corner shift, 8 channels of 64 pixels.
    for multiplier in CORNER_MULTIPLIERS:
        input_scale, f = conv_scales(multiplier, rng)
        for shift in CORNER_SHIFTS:
            add_conv_case(cases, rng, input_scale, [conv_weight_scale(f, shift)], channels=8)
    # Per channel: one multiplier at every shift in one model, random channels beside it,
    # and a scale so small that it flushes to zero.
    for multiplier in [*CORNER_MULTIPLIERS, int(rng.integers(1 << 30, 1 << 31))]:
        input_scale, f = conv_scales(multiplier, rng)
        scales = [conv_weight_scale(f, s) for s in range(SHIFT_MIN, SHIFT_MAX + 1)]
        scales += [np.float32(2.0 ** rng.uniform(-30, 20)) for _ in range(32)]
        scales.append(np.float32(2.0 ** -40))
        add_conv_case(cases, rng, input_scale, scales)
    # Small accumulators at small shifts: many exact rounding ties.
    input_scale, f = conv_scales(1 << 30, rng)
    for shift in (-4, -3, -2, -1, 0):
        add_conv_case(cases, rng, input_scale, [conv_weight_scale(f, shift)], channels=8,
                      limit=256 << -shift, output=(0, "none"))
    # Overflowing C++ (undefined behaviour), to see what LiteRT's build does there.
    add_conv_case(cases, rng, input_scale,
                  [conv_weight_scale(f, s) for s in (-20, -8, -1, 0, 0, 1, 4, 12)], wild=True)
    # The Q31 mantissa rounding up to 2**31 (then halved, shift + 1): 10610063 * 13264529 is
    # 2**47 - 1, exact in LiteRT's double product.
    add_conv_case(cases, rng, np.float32(10610063 * 2.0 ** -23),
                  [np.float32(13264529 * 2.0 ** (s - 25)) for s in range(SHIFT_MIN, SHIFT_MAX + 1)])
    return cases


def make_fc_cases(seed):
    """Per-tensor FULLY_CONNECTED cases (LiteRT's reference kernel here is floating point)."""
    rng = np.random.default_rng(seed)
    cases = Cases()
    # The multipliers a ratio of float32 mantissas reaches exactly: 2**30, 2**30 + 128,
    # 1.5 * 2**30 and 2**31 - 128 (the nearest to 2**31).
    for multiplier in [1 << 30, (1 << 30) + 128, 3 << 29, (1 << 31) - 128]:
        for shift in CORNER_SHIFTS:
            add_fc_case(cases, rng, *fc_scales(multiplier, shift, rng))
    for _ in range(16):  # random float32 scales
        add_fc_case(cases, rng, np.float32(2.0 ** rng.uniform(-8, 0)),
                    np.float32(2.0 ** rng.uniform(-10, -4)), np.float32(2.0 ** rng.uniform(-6, 2)))
    return cases


def undefined_in_cpp(cases):
    """Masks of the cases where LiteRT's C++ overflows int32 (undefined behaviour)."""
    total = cases.acc + cases.bias
    bias_overflow = (total < INT32_MIN) | (total > INT32_MAX)
    x = wrap_signed(total, 32)
    shifted = x << np.maximum(cases.shift, 0)
    shift_overflow = (shifted < INT32_MIN) | (shifted > INT32_MAX)
    y = multiply_by_quantized_multiplier(x, cases.multiplier, cases.shift)
    zero_point_overflow = ~shift_overflow & ((y + cases.zero_point > INT32_MAX)
                                             | (y + cases.zero_point < INT32_MIN))
    return {"acc + bias": bias_overflow, "left shift": shift_overflow,
            "y + zero point": zero_point_overflow}


def golden(cases):
    return requantize(cases.acc, cases.bias, cases.multiplier, cases.shift, cases.zero_point,
                      cases.act_min, cases.act_max)


def clamp(cases, y):
    return np.minimum(np.maximum(y + cases.zero_point, cases.act_min), cases.act_max)


def single_rounding(x, multiplier, shift):
    """TFLITE_SINGLE_ROUNDING's MultiplyByQuantizedMultiplier (the other variant):
    ``(x * multiplier + 2**(30 - shift)) >> (31 - shift)``, ties towards plus infinity."""
    total = (31 - np.asarray(shift, dtype=np.int64)).astype(object)
    product = np.asarray(x, dtype=object) * np.asarray(multiplier, dtype=object)
    return ((product + (1 << (total - 1))) >> total).astype(np.int64)


def _first_mismatch(cases, got, bad):
    i = bad[0]
    return (f"case {i}: acc={cases.acc[i]} bias={cases.bias[i]} "
            f"multiplier={cases.multiplier[i]} shift={cases.shift[i]} "
            f"zero_point={cases.zero_point[i]} act=[{cases.act_min[i]}, {cases.act_max[i]}]: "
            f"model {got[i]}, LiteRT {cases.litert[i]}")


SEED = 2024


@pytest.fixture(scope="module")
def conv_cases():
    _import_litert()
    print(f"seed={SEED}")
    return make_conv_cases(SEED)


@pytest.fixture(scope="module")
def fc_cases():
    _import_litert()
    print(f"seed={SEED + 1}")
    return make_fc_cases(SEED + 1)


def test_golden_model_matches_litert_conv(conv_cases):
    """Every CONV_2D case whose C++ is defined: the golden model is bit-exact."""
    cases = conv_cases
    undefined = undefined_in_cpp(cases)
    defined = ~np.logical_or.reduce(list(undefined.values()))
    got, want = golden(cases), cases.litert
    count = int(defined.sum())
    bad = np.flatnonzero(defined & (got != want))
    assert not bad.size, (f"seed={SEED}: {bad.size} of {count} defined cases differ from "
                          f"LiteRT; first: {_first_mismatch(cases, got, bad)}")
    assert count >= 10_000, f"only {count} defined cases"
    total = cases.acc + cases.bias
    corners = {
        "acc + bias == INT32_MIN": total == INT32_MIN,
        "acc + bias == INT32_MAX": total == INT32_MAX,
        **{f"multiplier == {m}": cases.multiplier == m for m in CORNER_MULTIPLIERS},
        "multiplier == 0 (flushed)": cases.multiplier == 0,
        **{f"shift == {s}": cases.shift == s for s in (SHIFT_MIN, SHIFT_MAX)},
        "zero point -128": cases.zero_point == -128,
        "zero point 127": cases.zero_point == 127,
        "clamped to act_min": got == cases.act_min,
        "clamped to act_max": got == cases.act_max,
        "INT32_MIN/MAX with a multiplier near 2**31": (
            ((total == INT32_MIN) | (total == INT32_MAX)) & (cases.multiplier >= INT32_MAX - 1)),
    }
    print(f"{int((defined & (got > cases.act_min) & (got < cases.act_max)).sum())} defined "
          f"cases inside the activation range")
    for name, mask in corners.items():
        hits = int((defined & mask).sum())
        print(f"{name}: {hits} defined cases")
        assert hits, f"no defined case with {name}"
    extremes = defined & ((total == INT32_MIN) | (total == INT32_MAX))
    assert {SHIFT_MIN, 0} <= set(cases.shift[extremes].tolist())
    print(f"{count} defined CONV_2D cases agree with LiteRT")
    # Where C++ is undefined, what this LiteRT build does next to the hardware's choice.
    for name, mask in undefined.items():
        print(f"undefined {name}: {int(mask.sum())} cases, model agrees with LiteRT in "
              f"{int((mask & (got == want)).sum())}")


def test_litert_conv_uses_double_rounding(conv_cases):
    """TFLITE_SINGLE_ROUNDING's formula disagrees with LiteRT's CONV_2D where double rounding
    (the golden model) does not: LiteRT is built without TFLITE_SINGLE_ROUNDING."""
    cases = conv_cases
    defined = ~np.logical_or.reduce(list(undefined_in_cpp(cases).values()))
    x = wrap_signed(cases.acc + cases.bias, 32)
    single = clamp(cases, single_rounding(x, cases.multiplier, cases.shift))
    differ = int((defined & (single != cases.litert)).sum())
    print(f"single rounding differs from LiteRT in {differ} of {int(defined.sum())} cases")
    assert differ > 0


def test_bias_overflow_wraps_in_litert_too(conv_cases):
    """acc + bias overflowing int32 is undefined in C++; LiteRT's build wraps, as the
    hardware defines it (so the two agree there as well)."""
    cases = conv_cases
    undefined = undefined_in_cpp(cases)
    mask = undefined["acc + bias"] & ~undefined["left shift"] & ~undefined["y + zero point"]
    print(f"{int(mask.sum())} cases with acc + bias overflowing")
    assert mask.any()
    assert np.array_equal(golden(cases)[mask], cases.litert[mask])


def _round_half_away(values):
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def test_litert_fc_reference_is_floating_point(fc_cases):
    """LiteRT's reference FULLY_CONNECTED does not use the Q31 multiplier: it computes
    ``round(double(acc) * input_scale * weight_scale / output_scale)`` (std::round, ties away
    from zero). The golden model agrees with it wherever double rounding of the Q31 product
    lands on the same side of the rounding boundary as the real product; every difference is
    such a tie, by one."""
    cases = fc_cases
    defined = ~np.logical_or.reduce(list(undefined_in_cpp(cases).values()))
    x = wrap_signed(cases.acc + cases.bias, 32)
    real = x * cases.scale
    floating = clamp(cases, _round_half_away(real).astype(np.int64))
    bad = np.flatnonzero(defined & (floating != cases.litert))
    assert not bad.size, f"seed={SEED + 1}: {_first_mismatch(cases, floating, bad)}"

    got = golden(cases)
    differ = np.flatnonzero(defined & (got != cases.litert))
    # The value the golden model's last rounding rounds: high-multiply result / 2**right.
    right = np.maximum(-cases.shift, 0)
    shifted = np.clip(x << np.maximum(cases.shift, 0), INT32_MIN, INT32_MAX)
    before_last = (saturating_rounding_doubling_high_mul(shifted, cases.multiplier)
                   / 2.0 ** right)
    for i in differ:
        low, high = sorted([real[i], before_last[i]])
        boundary = np.floor(real[i] - 0.5) + 0.5  # the half-integer at or below real
        boundaries = [boundary, boundary + 1]
        assert abs(got[i] - cases.litert[i]) == 1 and any(
            low <= b <= high for b in boundaries), _first_mismatch(cases, got, [i])
    count = int(defined.sum())
    print(f"{count - differ.size} of {count} defined FULLY_CONNECTED cases agree with the "
          f"golden model; {differ.size} are rounding ties")
    assert count - differ.size >= 10_000 // 2

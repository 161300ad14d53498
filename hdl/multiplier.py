"""Multiplier expressions for the processing elements.

:func:`multiply` returns the product of two values as an expression, built the way the
configured implementation asks (see :data:`hdl.config.MULTIPLIERS`). The caller registers it.
"""

from amaranth.hdl import Mux, Shape, Value

from .config import MULTIPLIERS

__all__ = ["multiply", "product_range", "shift_add_multiply", "sum_shape"]


def _limits(shape):
    shape = Shape.cast(shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def product_range(a_shape, b_shape):
    """``(lowest, highest)`` product of values of ``a_shape`` and ``b_shape``."""
    corners = [x * y for x in _limits(a_shape) for y in _limits(b_shape)]
    return min(corners), max(corners)


def sum_shape(a_shape, b_shape, terms, max_width):
    """Smallest signed shape that holds a sum of ``terms`` products, at most ``max_width`` bits.

    Narrower than ``max_width`` the sum is exact; at ``max_width`` it wraps, as the accumulator
    does.
    """
    lowest, highest = product_range(a_shape, b_shape)
    exact = Shape.cast(range(min(0, terms * lowest), terms * highest + 1))
    width = exact.width if exact.signed else exact.width + 1
    return Shape(min(width, max_width), signed=True)


def shift_add_multiply(a, b):
    """``a * b`` as a balanced adder tree of shifted partial products.

    Partial product ``i`` is ``a`` where bit ``i`` of ``b`` is set; for a signed ``b`` its top
    bit weighs ``-2**(n-1)``, so that partial product is subtracted. Yosys sees only muxes and
    adders here, never a ``$mul`` cell, so it cannot map this multiplier to a DSP block.
    The exact product fits the shape Amaranth gives ``a * b``.
    """
    a, b = Value.cast(a), Value.cast(b)
    width = len(b)
    terms = []
    for i in range(width):
        term = Mux(b[i], a, 0) << i
        terms.append(-term if b.shape().signed and i == width - 1 else term)
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(pairs) * 2:]
    return terms[0]


def multiply(a, b, implementation):
    """``a * b`` built as ``implementation`` (one of :data:`hdl.config.MULTIPLIERS`)."""
    if implementation not in MULTIPLIERS:
        raise ValueError(
            f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {implementation!r}")
    if implementation == "lut":
        return shift_add_multiply(a, b)
    return a * b

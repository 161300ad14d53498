"""Weight-stationary multiply-accumulate processing element."""

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .multiplier import multiply, product_range

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """One MAC cell of the systolic array.

    The PE holds an *active* weight, used by its multiplier, and a *shadow* weight, written while
    the active one computes. Activations pass through to the right, partial sums go down.

    Timing (all outputs are registers):

    - ``a_out``/``swap_out`` are ``a_in``/``swap_in`` one cycle later (only with ``forward``).
    - ``swap_in`` high copies the shadow weight into the active one at the end of the cycle, so
      the activation arriving in the *next* cycle is the first to use it (the array sends the swap
      one cycle ahead of the activation, which keeps the weight mux off the multiplier path).
    - ``w_en`` writes ``w_in`` into the shadow weight at the end of the cycle.
    - ``psum_out = psum_in(t-1) + a_in(t-1-p) * active(t-1-p)`` with ``p`` =
      ``product_stages``: the product passes ``p`` registers (the first maps onto a DSP
      block's output register; a second lets place-and-route put one register beside the DSP
      and one beside the adder), then is added: activations take ``1 + p`` cycles
      (:attr:`act_latency`) and partial sums 1 cycle through the PE. Sums wrap to the width of
      ``psum_out``. A ``top`` PE (first row: ``psum_in`` is always zero) has no sum register:
      ``psum_out`` is the last product register, ``p`` cycles after ``a_in``.

    Parameters
    ----------
    act_shape, weight_shape : Shape
        Shapes of the activation and the weight.
    psum_in_shape, psum_out_shape : Shape
        Shapes of the partial sum from above and the one passed down.
    multiplier : str
        Multiplier implementation, see :data:`hdl.config.MULTIPLIERS`.
    product_stages : int
        Registers between the multiplier and the adder (1 or more).
    top : bool
        Whether ``psum_in`` is always zero (ignored): no adder, no sum register.
    external_weight : bool
        With ``multiplier="external"``: whether the multiplier holds the active weight
        (``mul_load``) instead of a register in the PE.
    forward : bool
        Whether the PE passes its activation and swap on (``a_out``, ``swap_out``): False in
        an array that broadcasts them to a row.
    reset_less : bool
        Whether the data registers (products, partial sum, forwarded activation) keep no
        reset: a reset leaves them as they were (the array's results are qualified by its own
        reset pipeline, and no row's result takes data entered before it). The weights and
        the swap keep theirs. On a big FPGA the reset then reaches a fraction of the flip-flops.

    Members
    -------
    a_in, a_out : activation in from the left, out to the right (``a_out`` with ``forward``).
    swap_in, swap_out : make the shadow weight active (``swap_out`` with ``forward``).
    w_in, w_en : shadow weight write.
    psum_in, psum_out : partial sum in from above, out downwards.
    mul_a, mul_b, mul_p : only with ``multiplier="external"``: the factors (the activation and
        the active weight) go out to a shared multiplier outside the PE, and its product comes
        back one cycle later in ``mul_p``, in place of the first product register (a DSP
        block's output register).
    mul_load : only with ``external_weight``: the multiplier holds the active weight (a DSP
        block's input register): ``mul_b`` is the shadow weight, and ``mul_load`` (the swap)
        loads it into the multiplier's register at the end of the cycle.
    """

    def __init__(self, *, act_shape, weight_shape, psum_in_shape, psum_out_shape,
                 multiplier="behavioural", product_stages=1, top=False, forward=True,
                 external_weight=False, reset_less=False):
        if not isinstance(product_stages, int) or product_stages < 1:
            raise ValueError(f"product_stages must be a positive integer, not {product_stages!r}")
        self.multiplier = multiplier
        self.product_stages = product_stages
        self.top = bool(top)
        self.forward = bool(forward)
        if external_weight and multiplier != "external":
            raise ValueError("external_weight needs multiplier='external', "
                             f"not {multiplier!r}")
        self.external_weight = bool(external_weight)
        self.reset_less = bool(reset_less)
        act_shape, weight_shape = Shape.cast(act_shape), Shape.cast(weight_shape)
        external = {}
        if multiplier == "external":
            lowest, highest = product_range(act_shape, weight_shape)
            external = {"mul_a": Out(act_shape), "mul_b": Out(weight_shape),
                        "mul_p": In(range(lowest, highest + 1)),
                        **({"mul_load": Out(1)} if external_weight else {})}
        forwarded = {"a_out": Out(act_shape), "swap_out": Out(1)} if forward else {}
        super().__init__({
            **external,
            **forwarded,
            "a_in": In(act_shape),
            "swap_in": In(1),
            "w_in": In(weight_shape),
            "w_en": In(1),
            "psum_in": In(psum_in_shape),
            "psum_out": Out(psum_out_shape),
        })

    @property
    def act_latency(self):
        """Cycles from ``a_in`` to the ``psum_out`` it contributes to."""
        return self.product_stages + (not self.top)
    #: Cycles from ``psum_in`` to ``psum_out``.
    psum_latency = 1

    def elaborate(self, platform):
        m = Module()
        active = Signal(self.w_in.shape(), name="active")
        # With the weight held outside, the shadow register is the mul_b port itself.
        shadow = self.mul_b if self.external_weight else Signal(self.w_in.shape(), name="shadow")
        lowest, highest = product_range(self.a_in.shape(), self.w_in.shape())
        stages = range(self.product_stages)
        if self.external_weight:
            m.d.comb += [self.mul_a.eq(self.a_in), self.mul_load.eq(self.swap_in)]
            product, stages = self.mul_p, stages[1:]
        elif self.multiplier == "external":
            m.d.comb += [self.mul_a.eq(self.a_in), self.mul_b.eq(active)]
            product, stages = self.mul_p, stages[1:]
        else:
            product = multiply(self.a_in, active, self.multiplier)
        for stage in stages:
            product_reg = Signal(range(lowest, highest + 1), reset_less=self.reset_less,
                                 name="product" if stage == 0 else f"product_d{stage}")
            m.d.sync += product_reg.eq(product)
            product = product_reg

        def register(port, name):
            """The register that drives ``port``: the port itself, or (``reset_less``, which a
            port cannot be) a reset-less one beside it."""
            if not self.reset_less:
                return port
            reg = Signal.like(port, name=name, reset_less=True)
            m.d.comb += port.eq(reg)
            return reg

        if self.forward:
            m.d.sync += [register(self.a_out, "a_reg").eq(self.a_in),
                         self.swap_out.eq(self.swap_in)]
        if self.top:
            m.d.comb += self.psum_out.eq(product)
        else:
            m.d.sync += register(self.psum_out, "psum").eq(self.psum_in + product)
        with m.If(self.w_en):
            m.d.sync += shadow.eq(self.w_in)
        if not self.external_weight:
            with m.If(self.swap_in):
                m.d.sync += active.eq(shadow)
        return m

"""A multiplier in one ECP5 MULT18X18D, with its weight and product registers."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .multiplier import product_range

__all__ = ["DSPFloorplan", "ECP5Multiplier", "dsp_floorplan", "has_mult18x18d"]


def has_mult18x18d(platform):
    """Whether ``platform`` (an Amaranth platform, or None) is an ECP5 part."""
    return str(getattr(platform, "family", "")).lower() == "ecp5"


#: The LFE5U-85F's 156 MULT18X18D sites (nextpnr's BEL names ``X{x}/Y{y}/MULT18_{z}``): three
#: rows of 13 DSP blocks, a block's four sites at columns x, x + 1, x + 4, x + 5.
LFE5U_85F_DSP_ROWS = (10, 34, 58)
LFE5U_85F_DSP_BLOCKS = (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114)
_BLOCK_SITES = (0, 1, 4, 5)  # column offset and MULT18_<z> of a block's four sites


class DSPFloorplan:
    """Sites of a 12 x 12 array's and the post-processing's MULT18X18D on an LFE5U-85F.

    Left to itself nextpnr scatters the array's PEs over the three DSP rows in no order and
    pulls their adders to the scratchpad's side of the die: a PE's product then travels up
    to 100 tiles to its adder, and the whole system (21 % of the LUTs) did not route. Here
    each DSP row holds four array rows; a block holds PEs (k, n), (k, n + 1), (k + 1, n),
    (k + 1, n + 1), and the blocks of rows k, k + 1 and k + 2, k + 3 alternate along the
    row, so that a partial sum goes down to the next row in its own block or the next one,
    and an activation right to the block after next. Such a square also keeps a block legal:
    its four weight-swap enables (one per anti-diagonal k + n) are at most three distinct
    clock enables besides the product register's. The last (thirteenth) block of a row is left
    for one post-processing lane's four partial products.
    """

    def __init__(self, dim, postproc_lanes):
        self.dim, self.postproc_lanes = dim, postproc_lanes

    @staticmethod
    def _site(row, block, slot):
        offset = _BLOCK_SITES[slot]
        return (f"X{LFE5U_85F_DSP_BLOCKS[block] + offset}/Y{LFE5U_85F_DSP_ROWS[row]}"
                f"/MULT18_{offset}")

    def pe(self, k, n):
        """Site of PE (``k``, ``n``)'s multiplier."""
        if not (0 <= k < self.dim and 0 <= n < self.dim):
            raise ValueError(f"PE ({k}, {n}) is outside a {self.dim}x{self.dim} array")
        block = 2 * (n // 2) + (k % 4) // 2
        return self._site(k // 4, block, k % 2 + 2 * (n % 2))

    def postproc(self, lane, part):
        """Site of post-processing lane ``lane``'s partial product ``part`` (0..3)."""
        if not (0 <= lane < self.postproc_lanes and 0 <= part < 4):
            raise ValueError(f"No post-processing site for lane {lane}, part {part}")
        return self._site(lane, len(LFE5U_85F_DSP_BLOCKS) - 1, part)


def dsp_floorplan(platform, config):
    """The :class:`DSPFloorplan` for ``config`` on ``platform``, or None where none applies
    (any device but an LFE5U-85F, an array other than 12 x 12 of one-product DSP PEs, more
    than three post-processing lanes): nextpnr then places the blocks itself."""
    device = str(getattr(platform, "device", ""))
    all_dsp = all(config.pe_multiplier(k, n) == "dsp"
                  for k in range(config.dim) for n in range(config.dim))
    lanes = config.postproc_lanes_per_cycle
    if (not device.startswith("LFE5U-85F") or config.dim != 12 or not all_dsp
            or config.dsp_products != 1 or lanes > len(LFE5U_85F_DSP_ROWS)):
        return None
    return DSPFloorplan(config.dim, lanes)


class ECP5Multiplier(wiring.Component):
    """``p = a * b`` (operands of up to 18 bits, signed or not) in one MULT18X18D, the
    product registered in the block.

    yosys maps ``*`` to a MULT18X18D without its registers: the operands and the product
    then live in fabric flip-flops around the DSP rows, which crowds the routing there (a
    12 x 12 array did not route on the 85F). Here the block keeps them: the product goes into
    the output register (``REG_OUTPUT``) and, with ``hold_b``, ``b`` into the B input
    register (``REG_INPUTB``, clock enable ``CE1`` = ``load_b``), so that a
    weight-stationary PE's active weight lives in the DSP. ``a`` (and ``b`` without
    ``hold_b``) enter unregistered.

    Timing: ``p`` is ``a`` of the cycle before times ``b`` of the cycle before, or with
    ``hold_b`` times the ``b`` last loaded before that (a ``load_b`` in the same cycle as
    ``a`` does not count yet); one product per cycle. The registers are not reset (``GSR``
    disabled): a product is defined once its operands were, as the fabric registers it
    replaces.

    Elaborated for an ECP5 platform (:func:`has_mult18x18d`) it is a ``MULT18X18D`` instance;
    for any other platform, or none (Amaranth's simulator, cocotb), registered ``*`` with
    the same timing (yosys ships no simulation model of the block).

    Parameters
    ----------
    a_shape, b_shape : Shape
        The operands' shapes, at most 18 bits each.
    hold_b : bool
        Whether ``b`` is held in the block, loaded by ``load_b``.
    site : str or None
        A nextpnr BEL name (see :class:`DSPFloorplan`) to place the block at, or None.

    Members
    -------
    a : In(a_shape)
    b : In(b_shape)
    load_b : In(1)
        Only with ``hold_b``.
    p : Out(range(lowest, highest + 1))
        Every product of the two shapes.
    """

    def __init__(self, a_shape, b_shape, *, hold_b=True, domain="sync", site=None):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        if max(a_shape.width, b_shape.width) > 18:
            self._MustUse__silence = True
            raise ValueError(f"MULT18X18D operands have at most 18 bits, not {a_shape!r} "
                             f"and {b_shape!r}")
        if not isinstance(domain, str):
            self._MustUse__silence = True
            raise TypeError(f"domain must be a string, not {domain!r}")
        if site is not None and not isinstance(site, str):
            self._MustUse__silence = True
            raise TypeError(f"site must be a nextpnr BEL name or None, not {site!r}")
        self._domain, self.hold_b, self.site = domain, bool(hold_b), site
        lowest, highest = product_range(a_shape, b_shape)
        super().__init__({"a": In(a_shape), "b": In(b_shape),
                          **({"load_b": In(1)} if self.hold_b else {}),
                          "p": Out(range(lowest, highest + 1))})

    def mult18x18d_parameters(self):
        """``MULT18X18D`` parameters: the output (and with ``hold_b`` B) registered on
        ``CLK0``, the output's enable on ``CE0``, B's on ``CE1``."""
        b_clk = "CLK0" if self.hold_b else "NONE"
        params = dict(REG_INPUTA_CLK="NONE", REG_INPUTC_CLK="NONE", REG_PIPELINE_CLK="NONE",
                      REG_INPUTB_CLK=b_clk, REG_INPUTB_CE="CE1", REG_INPUTB_RST="RST0",
                      REG_OUTPUT_CLK="CLK0", REG_OUTPUT_CE="CE0", REG_OUTPUT_RST="RST0",
                      GSR="DISABLED", RESETMODE="SYNC", SOURCEB_MODE="B_SHIFT",
                      MULT_BYPASS="DISABLED", CAS_MATCH_REG="FALSE", HIGHSPEED_CLK="NONE")
        return params

    def elaborate(self, platform):
        m = Module()
        if has_mult18x18d(platform):
            product = Signal(36)
            zero, one = Const(0, 1), Const(1, 1)
            a, b = _extend(self.a, 18), _extend(self.b, 18)
            ports = {f"i_A{i}": a[i] for i in range(18)}
            ports.update({f"i_B{i}": b[i] for i in range(18)})
            # Unused inputs (C, the shift chains, the other clocks, enables and resets) stay
            # unconnected (yosys ties only C): each tied input is a constant net to route
            # (54 per block: the 85F's GND net did not route).
            ports.update({f"o_P{i}": product[i] for i in range(36)})
            ports.update(i_CLK0=ClockSignal(self._domain), i_CE0=one, i_RST0=zero)
            if self.hold_b:
                ports.update(i_CE1=self.load_b)
            m.submodules.mult = Instance(
                "MULT18X18D",
                **({"a_BEL": self.site} if self.site is not None else {}),
                **{f"p_{name}": value for name, value in self.mult18x18d_parameters().items()},
                i_SIGNEDA=Const(self.a.shape().signed, 1),
                i_SIGNEDB=Const(self.b.shape().signed, 1), i_SOURCEA=zero, i_SOURCEB=zero,
                **ports,
            )
            m.d.comb += self.p.eq(product[:len(self.p)])
            return m

        b = self.b
        if self.hold_b:
            b = Signal.like(self.b, name="b_held")  # the B input register
            with m.If(self.load_b):
                m.d[self._domain] += b.eq(self.b)
        m.d[self._domain] += self.p.eq(self.a * b)
        return m


def _extend(value, width):
    """``value`` sign- or zero-extended (by its shape) to ``width`` bits."""
    top = value[-1] if value.shape().signed else Const(0, 1)
    return Cat(value, top.replicate(width - len(value)))

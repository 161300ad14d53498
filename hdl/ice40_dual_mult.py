"""Two signed 8x8 multipliers in one iCE40 SB_MAC16 DSP block."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ICE40DualMultiplier", "has_sb_mac16"]

#: Device name prefixes of the iCE40 parts with SB_MAC16 blocks: UltraPlus (iCE40UP3K/5K) and
#: Ultra (iCE5LP1K/2K/4K). iCE40 LP/HX parts have none.
SB_MAC16_DEVICES = ("iCE40UP", "iCE5LP")


def has_sb_mac16(platform):
    """Whether ``platform`` (an Amaranth platform, or None) targets a part with SB_MAC16."""
    return str(getattr(platform, "device", "")).startswith(SB_MAC16_DEVICES)


class ICE40DualMultiplier(wiring.Component):
    """``p0 = a0 * b0`` and ``p1 = a1 * b1``, signed 8 x 8 -> 16 bits, in one SB_MAC16.

    yosys' ``ice40_dsp`` maps one ``*`` per SB_MAC16; the block's 8x8 mode (``MODE_8x8``)
    has two independent 8x8 multipliers, ``A[7:0] * B[7:0]`` to ``O[15:0]`` (here ``p0``) and
    ``A[15:8] * B[15:8]`` to ``O[31:16]`` (here ``p1``). With ``A_SIGNED``/``B_SIGNED`` set,
    yosys' model (``ice40/cells_sim.v``) sign-extends *both* halves of ``A`` and ``B`` in 8x8
    mode (in 16x16 mode only the upper halves), so each 16-bit output is the exact signed
    product and needs no correction logic (checked on that model for all 65536 pairs, not on
    silicon). The products come from the 8x8 multiplier output registers
    (``TOP/BOT_8x8_MULT_REG``, ``TOP/BOTOUTPUT_SELECT = 2``); the adders, the accumulator
    registers and the C/D inputs are unused.

    Timing: ``p0``/``p1`` are products of the inputs :attr:`latency` cycles earlier; one
    product pair per cycle, no stalls. ``latency=1``: the inputs feed the multipliers
    directly. ``latency=2`` also registers the inputs in the DSP (``A_REG``/``B_REG``),
    taking the fabric-to-DSP routing off the multiplier's path. The DSP's registers are
    cleared by the domain's reset through ``IRSTTOP``/``IRSTBOT``, which act at once
    (asynchronously); the behavioural registers clear at the next clock edge.

    ``hold_b``: ``b0``/``b1`` go into the DSP's B register (``B_REG``) only in a cycle with
    ``load_b`` high (``BHOLD`` low otherwise), and the multipliers use the held values: a
    weight-stationary PE keeps its active weight there instead of in fabric flip-flops. A
    product is then ``a`` of :attr:`latency` cycles earlier times the ``b`` last loaded
    before that (zero after reset).

    Elaborated for a platform with SB_MAC16 (:func:`has_sb_mac16`, a ``device`` starting with
    ``iCE40UP`` or ``iCE5LP``) it is an ``SB_MAC16`` instance; for any other platform, or
    none (Amaranth's simulator), it is registered ``*`` with the same latency.

    Parameters
    ----------
    latency : int
        1 or 2, see above.
    hold_b : bool
        Whether the ``b`` factors are held in the DSP and loaded by ``load_b`` (see above).
    domain : str
        Clock domain of the registers.

    Members
    -------
    a0, b0 : In(signed(8))
        Factors of ``p0``.
    a1, b1 : In(signed(8))
        Factors of ``p1``.
    p0, p1 : Out(signed(16))
        The products, :attr:`latency` cycles later.
    load_b : In(1)
        Only with ``hold_b``: load ``b0``/``b1`` into the held factors at the end of the cycle.

    Raises
    ------
    TypeError
        ``latency`` is not an integer, ``domain`` not a string, ``hold_b`` not a bool.
    ValueError
        ``latency`` is neither 1 nor 2.
    """

    def __init__(self, *, latency=1, domain="sync", hold_b=False):
        try:
            if not isinstance(latency, int) or isinstance(latency, bool):
                raise TypeError(f"latency must be an integer, not {latency!r}")
            if latency not in (1, 2):
                raise ValueError(f"latency must be 1 or 2, not {latency!r}")
            if not isinstance(domain, str):
                raise TypeError(f"domain must be a string, not {domain!r}")
            if not isinstance(hold_b, bool):
                raise TypeError(f"hold_b must be a bool, not {hold_b!r}")
        except (TypeError, ValueError):
            self._MustUse__silence = True   # never built: no "created but never used" warning
            raise
        self._latency = latency
        self._domain = domain
        self._hold_b = hold_b
        super().__init__({
            "a0": In(signed(8)), "b0": In(signed(8)), "a1": In(signed(8)), "b1": In(signed(8)),
            "p0": Out(signed(16)), "p1": Out(signed(16)),
            **({"load_b": In(1)} if hold_b else {}),
        })

    @property
    def latency(self):
        """Cycles from the factors to their products."""
        return self._latency

    def sb_mac16_parameters(self):
        """``SB_MAC16`` parameters (name -> ``Const`` of the declared width)."""
        bit, two = (lambda v: Const(v, 1)), (lambda v: Const(v, 2))
        return {
            "NEG_TRIGGER": bit(0),
            "A_REG": bit(self._latency == 2), "B_REG": bit(self._latency == 2 or self._hold_b),
            "C_REG": bit(0), "D_REG": bit(0),
            "TOP_8x8_MULT_REG": bit(1), "BOT_8x8_MULT_REG": bit(1),
            "PIPELINE_16x16_MULT_REG1": bit(0), "PIPELINE_16x16_MULT_REG2": bit(0),
            "TOPOUTPUT_SELECT": two(2), "BOTOUTPUT_SELECT": two(2),
            "TOPADDSUB_LOWERINPUT": two(0), "TOPADDSUB_UPPERINPUT": bit(0),
            "TOPADDSUB_CARRYSELECT": two(0),
            "BOTADDSUB_LOWERINPUT": two(0), "BOTADDSUB_UPPERINPUT": bit(0),
            "BOTADDSUB_CARRYSELECT": two(0),
            "MODE_8x8": bit(1), "A_SIGNED": bit(1), "B_SIGNED": bit(1),
        }

    def elaborate(self, platform):
        m = Module()
        if has_sb_mac16(platform):
            o = Signal(32)
            rst = ResetSignal(self._domain, allow_reset_less=True)
            zero, zeros = Const(0, 1), Const(0, 16)
            m.submodules.mac = Instance(
                "SB_MAC16",
                **{f"p_{name}": value for name, value in self.sb_mac16_parameters().items()},
                i_CLK=ClockSignal(self._domain), i_CE=Const(1, 1),
                i_A=Cat(self.a0, self.a1), i_B=Cat(self.b0, self.b1), i_C=zeros, i_D=zeros,
                i_AHOLD=zero, i_BHOLD=~self.load_b if self._hold_b else zero,
                i_CHOLD=zero, i_DHOLD=zero,
                i_IRSTTOP=rst, i_IRSTBOT=rst, i_ORSTTOP=zero, i_ORSTBOT=zero,
                i_OLOADTOP=zero, i_OLOADBOT=zero, i_ADDSUBTOP=zero, i_ADDSUBBOT=zero,
                i_OHOLDTOP=zero, i_OHOLDBOT=zero, i_CI=zero, i_ACCUMCI=zero,
                i_SIGNEXTIN=zero,
                o_O=o,
            )
            m.d.comb += [self.p0.eq(o[:16]), self.p1.eq(o[16:])]
            return m

        def register(factor, enable=1):  # the DSP's A_REG / B_REG
            reg = Signal.like(factor, name=f"{factor.name}_reg")
            with m.If(enable):
                m.d[self._domain] += reg.eq(factor)
            return reg

        a0, b0, a1, b1 = self.a0, self.b0, self.a1, self.b1
        if self._latency == 2:
            a0, a1 = register(a0), register(a1)
        if self._hold_b:
            b0, b1 = register(b0, self.load_b), register(b1, self.load_b)
        elif self._latency == 2:
            b0, b1 = register(b0), register(b1)
        m.d[self._domain] += [self.p0.eq(a0 * b0), self.p1.eq(a1 * b1)]
        return m

"""Self-test harness: pseudo-random tiles through the array, results folded into a checksum.

``tessera synth --top selftest`` builds the array alone on a board: synthesis keeps every PE
(nothing is constant, every result bit reaches the checksum), so place-and-route reports an
honest size and fmax for the array, in a fraction of the whole accelerator's build time.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import Out

from hdl.systolic import SystolicArray

from .clocking import pll_domain

__all__ = ["SelfTest", "SelfTestTop", "xorshift64"]


def xorshift64(state):
    """One step of Marsaglia's xorshift64 (13, 7, 17): 64 new pseudo-random bits per cycle."""
    x = state ^ (state << 13)[:64]
    x = x ^ (x >> 7)
    return x ^ (x << 17)[:64]


def _next_modulo(counter, modulus):
    """``counter + 1`` modulo ``modulus``."""
    return Mux(counter == modulus - 1, 0, counter + 1)


class SelfTest(wiring.Component):
    """Weights and activations from xorshift generators, always valid; results always taken.

    Every ``dim`` activation rows the next one swaps in the tile loaded meanwhile, so the array
    runs at full rate. ``checksum`` is rotated and XORed with a 32-bit fold of every result row
    and its tag.

    Members
    -------
    checksum : Out(32)
    error : Out(1)
        The array's sticky error flag (stays low: the harness sends well-formed tiles).
    """

    checksum: Out(32)
    error: Out(1)

    def __init__(self, config):
        self.config = config
        super().__init__()

    def _random_bits(self, m, width, seed, name):
        words = []
        for i in range(-(-width // 64)):
            state = Signal(64, init=(seed * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9)
                           % (1 << 64) or 1, name=f"{name}_{i}")
            m.d.sync += state.eq(xorshift64(state))
            words.append(state)
        return Cat(*words)[:width]

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        dim = cfg.dim
        m.submodules.array = array = SystolicArray(cfg)

        weight_row = Signal(range(dim))
        act_row = Signal(range(dim))
        tag = Signal(cfg.tag_width)
        w_bits = len(array.weights.payload.row.as_value())
        a_bits = len(array.acts.payload.row.as_value())
        m.d.comb += [
            array.weights.valid.eq(1),
            array.weights.payload.row.eq(self._random_bits(m, w_bits, 1, "w_rng")),
            array.weights.payload.last.eq(weight_row == dim - 1),
            array.acts.valid.eq(1),
            array.acts.payload.row.eq(self._random_bits(m, a_bits, 2, "a_rng")),
            array.acts.payload.swap.eq(act_row == 0),
            array.acts.payload.tag.eq(tag),
            array.results.ready.eq(1),
            self.error.eq(array.error),
        ]
        with m.If(array.weights.valid & array.weights.ready):
            m.d.sync += weight_row.eq(_next_modulo(weight_row, dim))
        with m.If(array.acts.valid & array.acts.ready):
            m.d.sync += [act_row.eq(_next_modulo(act_row, dim)), tag.eq(tag + 1)]

        bits = Cat(array.results.payload.row.as_value(), array.results.payload.tag)
        fold = Const(0, 32)
        for i in range(0, len(bits), 32):
            fold = fold ^ bits[i:i + 32]
        with m.If(array.results.valid):
            m.d.sync += self.checksum.eq(self.checksum.rotate_left(1) ^ fold)
        return m


class SelfTestTop(wiring.Component):
    """A board running :class:`SelfTest` from a PLL at ``config.target_mhz``.

    One LED shows the XOR of the checksum bits (it flickers while the array runs), the other
    the array's error flag.

    Parameters
    ----------
    config : TesseraConfig
    clock : str
        The board's oscillator resource; its frequency comes from the platform.
    pll : callable
        ``pll(port, f_in_mhz, f_out_mhz)`` returns a component with ``clk``, ``locked`` and
        ``f_out_mhz`` (the frequency it really reaches).
    leds : callable
        ``leds(platform)`` requests the two LEDs and returns their ports ``(ok, error)``.
    """

    def __init__(self, config, *, clock, pll, leds):
        self.config = config
        self._clock, self._pll, self._leds = clock, pll, leds
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        f_in_mhz = platform.lookup(self._clock).clock.frequency / 1e6
        pll = self._pll(platform.request(self._clock, dir="-"), f_in_mhz,
                        self.config.target_mhz)
        pll_domain(m, platform, pll)
        m.submodules.selftest = selftest = SelfTest(self.config)
        ok_port, error_port = self._leds(platform)
        m.submodules.led_ok = led_ok = io.Buffer("o", ok_port)
        m.submodules.led_error = led_error = io.Buffer("o", error_port)
        m.d.comb += [
            led_ok.o.eq(selftest.checksum.xor()),
            led_error.o.eq(selftest.error),
        ]
        return m

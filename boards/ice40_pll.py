"""iCE40 PLL (``SB_PLL40_PAD``) in simple feedback mode, configured for a target frequency."""

from dataclasses import dataclass

from amaranth.hdl import Instance, Module

from .clocking import BoardPLL

__all__ = ["ICE40PLL", "PLLSettings", "ice40_pll_settings"]


@dataclass(frozen=True)
class PLLSettings:
    divr: int
    divf: int
    divq: int
    filter_range: int
    f_in_mhz: float
    f_out_mhz: float


def ice40_pll_settings(f_in_mhz, f_out_mhz):
    """The divider settings whose output is closest to ``f_out_mhz``, searched as icepll does.

    Limits (iCE40 sysCLOCK PLL, simple feedback): PFD 10..133 MHz, VCO 533..1066 MHz,
    output 16..275 MHz.
    """
    if not 16 <= f_out_mhz <= 275:
        raise ValueError(f"iCE40 PLL output must lie in 16..275 MHz, not {f_out_mhz!r}")
    best = None
    for divr in range(16):
        f_pfd = f_in_mhz / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if best is None or abs(f_out - f_out_mhz) < abs(best.f_out_mhz - f_out_mhz):
                    filter_range = next(i + 1 for i, limit in enumerate([17, 26, 44, 66, 101])
                                        if f_pfd < limit) if f_pfd < 101 else 6
                    best = PLLSettings(divr, divf, divq, filter_range, f_in_mhz, f_out)
    if best is None:
        raise ValueError(f"No iCE40 PLL setting reaches {f_out_mhz} MHz from {f_in_mhz} MHz")
    return best


class ICE40PLL(BoardPLL):
    """``SB_PLL40_PAD`` as a :class:`boards.clocking.BoardPLL`."""

    search = staticmethod(ice40_pll_settings)

    def elaborate(self, platform):
        m = Module()
        s = self.settings
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=s.divr, p_DIVF=s.divf, p_DIVQ=s.divq, p_FILTER_RANGE=s.filter_range,
            i_PACKAGEPIN=self.pad.io,
            i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=self.clk,
            o_LOCK=self.locked,
        )
        return m

"""ECP5 PLL (``EHXPLLL``) with CLKOP feedback, configured for a target frequency."""

from dataclasses import dataclass

from amaranth.hdl import Instance, Module
from amaranth.lib import io

from .clocking import BoardPLL

__all__ = ["ECP5PLL", "ECP5PLLSettings", "ecp5_pll_settings"]


@dataclass(frozen=True)
class ECP5PLLSettings:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in_mhz: float
    f_out_mhz: float
    f_vco_mhz: float
    #: Dividers of the secondary outputs (CLKOS, CLKOS2, CLKOS3) from the VCO.
    secondary_divs: tuple = ()


def _secondary_divs(f_vco, secondary_mhz):
    """The VCO's dividers to each of ``secondary_mhz`` exactly, or None."""
    divs = []
    for f in secondary_mhz:
        div = round(f_vco / f)
        if not 1 <= div <= 128 or abs(f_vco / div - f) > 1e-6:
            return None
        divs.append(div)
    return tuple(divs)


def ecp5_pll_settings(f_in_mhz, f_out_mhz, secondary_mhz=()):
    """Dividers whose output is closest to ``f_out_mhz``, searched as prjtrellis' ecppll does.

    Limits: PFD 3.125..400 MHz, VCO 400..800 MHz; ties go to the VCO nearest 600 MHz. With
    ``secondary_mhz`` (up to three frequencies, e.g. a USB PHY's 48 and 12 MHz) only VCOs
    that divide to each of them exactly are taken: they come out of CLKOS, CLKOS2 and CLKOS3,
    phase-related to each other (one VCO, dividers released together).
    """
    if not 3.125 <= f_out_mhz <= 400:
        raise ValueError(f"ECP5 PLL output must lie in 3.125..400 MHz, not {f_out_mhz!r}")
    secondary_mhz = tuple(secondary_mhz)
    if len(secondary_mhz) > 3:
        raise ValueError(f"ECP5 PLL has 3 secondary outputs, not {len(secondary_mhz)}")
    best, best_error = None, float("inf")
    for clki_div in range(1, 129):
        f_pfd = f_in_mhz / clki_div
        if not 3.125 <= f_pfd <= 400:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if not 400 <= f_vco <= 800:
                    continue
                divs = _secondary_divs(f_vco, secondary_mhz)
                if divs is None:
                    continue
                error = abs(f_out - f_out_mhz)
                if error < best_error or (error == best_error
                                          and abs(f_vco - 600) < abs(best.f_vco_mhz - 600)):
                    best_error = error
                    best = ECP5PLLSettings(clki_div, clkfb_div, clkop_div, f_in_mhz, f_out,
                                           f_vco, divs)
    if best is None:
        raise ValueError(f"No ECP5 PLL setting reaches {f_out_mhz} MHz (and exactly "
                         f"{list(secondary_mhz)} MHz) from {f_in_mhz} MHz")
    return best


class ECP5PLL(BoardPLL):
    """``EHXPLLL`` as a :class:`boards.clocking.BoardPLL`; with ``secondary_mhz`` also
    ``secondary`` (one clock bit each: CLKOS, CLKOS2, CLKOS3) at exactly those
    frequencies."""

    search = staticmethod(ecp5_pll_settings)
    secondary_outputs = 3

    def elaborate(self, platform):
        m = Module()
        s = self.settings
        outputs = {}
        ports = ["CLKOS", "CLKOS2", "CLKOS3"][:len(s.secondary_divs)]
        for i, (port, div) in enumerate(zip(ports, s.secondary_divs, strict=True)):
            outputs.update({
                f"a_FREQUENCY_PIN_{port}": f"{self.secondary_mhz[i]:g}",
                f"p_{port}_ENABLE": "ENABLED", f"p_{port}_DIV": div,
                f"p_{port}_CPHASE": div - 1, f"p_{port}_FPHASE": 0,
                f"o_{port}": self.secondary[i],
            })
        m.submodules.clk_in = clk_in = io.Buffer("i", self.pad)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{s.f_in_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{s.f_out_mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=s.clki_div, p_CLKFB_DIV=s.clkfb_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=s.clkop_div,
            p_CLKOP_CPHASE=s.clkop_div // 2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            i_RST=0, i_STDBY=0, i_CLKI=clk_in.i, i_CLKFB=self.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=self.clk, o_LOCK=self.locked,
            **outputs,
        )
        return m

"""Clock domains driven by a board PLL."""

from amaranth.hdl import ClockDomain
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import Out

__all__ = ["BoardPLL", "pll_domain"]


class BoardPLL(wiring.Component):
    """A vendor PLL driving ``clk`` from the oscillator ``pad``; ``locked`` once stable.

    Subclasses set :attr:`search` (``(f_in_mhz, f_out_mhz[, secondary_mhz]) -> settings``
    with ``f_out_mhz``, the frequency really reached) and elaborate the primitive. The owner
    of the clock domain connects ``clk`` and holds the domain in reset until ``locked`` (see
    :func:`pll_domain`). With ``secondary_mhz`` (only where :attr:`secondary_outputs` allows)
    the PLL also drives ``secondary``, one clock bit per frequency, exactly.

    Members
    -------
    clk : Out(1)
    locked : Out(1)
    secondary : Out(len(secondary_mhz))
        Only with ``secondary_mhz``.
    """

    search = None
    #: How many exact secondary outputs the PLL has.
    secondary_outputs = 0

    def __init__(self, pad, f_in_mhz, f_out_mhz, secondary_mhz=()):
        self.pad = pad
        self.secondary_mhz = tuple(secondary_mhz)
        if len(self.secondary_mhz) > self.secondary_outputs:
            self._MustUse__silence = True
            raise ValueError(f"{type(self).__name__} has {self.secondary_outputs} secondary "
                             f"outputs, not {len(self.secondary_mhz)}")
        extra = (self.secondary_mhz,) if self.secondary_mhz else ()
        self.settings = type(self).search(f_in_mhz, f_out_mhz, *extra)
        self.f_out_mhz = self.settings.f_out_mhz
        members = {"clk": Out(1), "locked": Out(1)}
        if self.secondary_mhz:
            members["secondary"] = Out(len(self.secondary_mhz))
        super().__init__(members)


def pll_domain(m, platform, pll, domain="sync"):
    """Define ``domain`` in ``m``, clocked by ``pll`` (a component with ``clk`` and ``locked``).

    The domain is held in reset until the PLL locks; the reset is released synchronously, two
    clocks later. No constraint is put on the PLL output: nextpnr (iCE40 and ECP5) derives it
    from the oscillator pin's constraint and the PLL settings, which is exact, while a
    constraint on the output net was dropped whenever yosys named that net after another
    alias ("net ... does not exist in design, ignoring clock constraint").
    """
    cd = ClockDomain(domain)
    m.domains += cd
    m.submodules[f"{domain}_pll"] = pll
    m.d.comb += cd.clk.eq(pll.clk)
    m.submodules[f"{domain}_reset_sync"] = ResetSynchronizer(~pll.locked, domain=domain)
    return cd

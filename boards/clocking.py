"""Clock domains driven by a board PLL."""

from amaranth.hdl import ClockDomain
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["pll_domain"]


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

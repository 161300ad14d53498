"""Clock domains driven by a board PLL."""

from amaranth.hdl import ClockDomain
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["pll_domain"]


def pll_domain(m, platform, pll, f_out_mhz, domain="sync"):
    """Define ``domain`` in ``m``, clocked by ``pll`` (a component with ``clk`` and ``locked``).

    The domain is held in reset until the PLL locks; the reset is released synchronously, two
    clocks later. The clock is constrained to ``f_out_mhz`` for place-and-route.
    """
    cd = ClockDomain(domain)
    m.domains += cd
    m.submodules[f"{domain}_pll"] = pll
    m.d.comb += cd.clk.eq(pll.clk)
    m.submodules[f"{domain}_reset_sync"] = ResetSynchronizer(~pll.locked, domain=domain)
    platform.add_clock_constraint(cd.clk, f_out_mhz * 1e6)
    return cd

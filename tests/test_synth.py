"""FPGA build path: PLL settings, report parsing and a small iCE40 smoke build."""

import json
import re
import subprocess
import sys

import pytest

from boards.ecp5_pll import ecp5_pll_settings
from boards.ice40_pll import ice40_pll_settings
from sw.cli import main
from sw.synth import ROOT, SynthError, clock_report, parse_nextpnr_report, timing_met
from sw.toolchain import use_toolchain


@pytest.mark.parametrize("f_out", [16.0, 30.0, 40.0, 48.0, 50.0, 66.0, 100.0])
def test_pll_settings_match_icepll(f_out):
    """Our divider search against the icestorm project's own icepll."""
    use_toolchain()
    out = subprocess.run(["yowasp-icepll", "-p", "-i", "12", "-o", str(f_out)],
                         capture_output=True, text=True, check=True).stdout
    want = {key: int(re.search(rf"{key}:\s+(\d+)", out).group(1))
            for key in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")}
    got = ice40_pll_settings(12.0, f_out)
    assert (got.divr, got.divf, got.divq, got.filter_range) == tuple(want.values())
    achieved = float(re.search(r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)", out).group(1))
    assert got.f_out_mhz == pytest.approx(achieved, abs=1e-3)  # icepll prints 3 decimals


@pytest.mark.parametrize("f_in, f_out", [(48, 80), (25, 75), (48, 50), (25, 100), (48, 64)])
def test_ecp5_pll_settings_match_ecppll(f_in, f_out):
    """Our divider search against prjtrellis' own ecppll."""
    use_toolchain()
    out = subprocess.run(["yowasp-ecppll", "-i", str(f_in), "-o", str(f_out)],
                         capture_output=True, text=True, check=True).stdout
    want = [int(re.search(rf"{label}:\s+(\d+)", out).group(1))
            for label in ("Refclk divisor", "Feedback divisor", "clkout0 divisor")]
    got = ecp5_pll_settings(f_in, f_out)
    assert [got.clki_div, got.clkfb_div, got.clkop_div] == want
    achieved = float(re.search(r"clkout0 frequency:\s+([\d.]+) MHz", out).group(1))
    assert got.f_out_mhz == pytest.approx(achieved, rel=1e-4)


def test_ecp5_pll_secondary_outputs_are_exact():
    """The OrangeCrab's USB clocks beside its 80 MHz: one VCO that divides to 48 and 12 MHz
    exactly (LUNA's PHY needs them phase-related), the main output as close as without."""
    got = ecp5_pll_settings(48, 80, (48, 12))
    assert got.f_out_mhz == ecp5_pll_settings(48, 80).f_out_mhz == 80
    assert 400 <= got.f_vco_mhz <= 800
    assert [got.f_vco_mhz / div for div in got.secondary_divs] == [48, 12]
    assert got.f_vco_mhz == got.f_out_mhz * got.clkop_div
    with pytest.raises(ValueError, match=r"^No ECP5 PLL setting reaches 80 MHz \(and exactly "
                                         r"\[1\.0\] MHz\) from 48 MHz$"):
        ecp5_pll_settings(48, 80, (1.0,))
    with pytest.raises(ValueError, match=r"^ECP5 PLL has 3 secondary outputs, not 4$"):
        ecp5_pll_settings(48, 80, (48, 24, 12, 6))


def test_board_pll_secondary_outputs():
    from boards.ecp5_pll import ECP5PLL
    from boards.ice40_pll import ICE40PLL
    pll, plain = ECP5PLL(None, 48, 80, secondary_mhz=(48, 12)), ECP5PLL(None, 48, 80)
    pll._MustUse__silence = plain._MustUse__silence = True  # only their ports are looked at
    assert len(pll.secondary) == 2 and pll.settings.secondary_divs == (10, 40)
    assert not hasattr(plain, "secondary")
    with pytest.raises(ValueError, match=r"^ICE40PLL has 0 secondary outputs, not 1$"):
        ICE40PLL(None, 12, 30, secondary_mhz=(48,))


def test_pll_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"^iCE40 PLL output must lie in 16\.\.275 MHz, not 5$"):
        ice40_pll_settings(12.0, 5)


def test_parse_report(tmp_path):
    report = {"fmax": {"clk12": {"achieved": 200.0, "constraint": 12.0},
                       "clk": {"achieved": 41.5, "constraint": 30.0}},
              "utilization": {"ICESTORM_LC": {"used": 10, "available": 5280}}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    assert parse_nextpnr_report(path) == (41.5, 30.0, {"ICESTORM_LC": [10, 5280]})
    assert clock_report(path) == {"clk12": {"fmax_mhz": 200.0, "constraint_mhz": 12.0},
                                  "clk": {"fmax_mhz": 41.5, "constraint_mhz": 30.0}}


@pytest.mark.parametrize("sync, usb_io, usb, met", [
    (80.5, 49.0, 12.5, True),
    (79.99, 200.0, 100.0, False),   # the design clock misses the preset's 80 MHz
    (95.0, 47.9, 100.0, False),     # the USB PHY's clock misses its own 48 MHz
    (95.0, 300.0, 11.9, False),
])
def test_timing_met_needs_every_clock(sync, usb_io, usb, met):
    """OrangeCrab's three clocks: the design clock (the highest constraint, 80.0 from the
    PLL) against the preset's target, the USB clocks against their constraints."""
    clocks = {"sync": {"achieved": sync, "constraint": 80.0},
              "usb_io": {"achieved": usb_io, "constraint": 48.0},
              "usb": {"achieved": usb, "constraint": 12.0}}
    assert timing_met(clocks, 80.0) is met


def test_timing_met_against_the_target_not_the_pll():
    """iCE40: the PLL gives 30.02 MHz for a 30 MHz target; 30.01 meets the target."""
    assert timing_met({"clk": {"achieved": 30.01, "constraint": 30.02}}, 30.0)
    assert not timing_met({"clk": {"achieved": 29.99, "constraint": 30.02}}, 30.0)
    with pytest.raises(SynthError, match=r"^the report names no constrained clock$"):
        timing_met({}, 30.0)


def test_unknown_board():
    from sw.synth import synth
    with pytest.raises(ValueError, match=r"^Unknown board 'zedboard'; boards are icebreaker, "
                                         r"orangecrab-25f, orangecrab-25f-uart, ulx3s-85f$"):
        synth("zedboard")


@pytest.mark.parametrize("board, dsp_cell, dsps", [
    ("orangecrab-25f", "MULT18X18D", 28),
    # One smoke build per FPGA family in the quick subset; the second ECP5 board is slow.
    pytest.param("ulx3s-85f", "MULT18X18D", 156, marks=pytest.mark.slow),
])
def test_ecp5_smoke_build(board, dsp_cell, dsps, capsys):
    """The micro array (self-test top) through synth_ecp5, nextpnr-ecp5 and ecppack, with an
    EHXPLLL."""
    main(["synth", "--board", board, "--config", "micro", "--top", "selftest", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["board"], report["config"]) == (board, "micro")
    assert report["resources"]["EHXPLLL"][0] == 1
    assert report["resources"][dsp_cell] == [4, dsps]
    assert report["timing_met"] == (report["fmax_mhz"] >= 50.0)
    assert (ROOT / report["bitstream"]).stat().st_size > 100_000


def test_icebreaker_default_build_via_cli():
    """`tessera synth` as a user runs it: default board and config (tiny's array, self-test
    top) through yosys, nextpnr and icepack; its table, exit status and bitstream (the whole
    accelerator is a full-size build, left to `make bench`)."""
    result = subprocess.run([sys.executable, "-m", "sw.cli", "synth", "--top", "selftest",
                             "--seed", "3"], capture_output=True, text=True, cwd=ROOT)
    # The table: "key  value" rows, then "  CELL  used / available (percent)" rows.
    rows = dict(re.findall(r"^(\w+) +(\S*)$", result.stdout, re.M))
    resources = {cell: [int(used), int(available)] for cell, used, available in
                 re.findall(r"^  (\w+) +(\d+) / (\d+)", result.stdout, re.M)}
    print(result.stdout)
    assert (rows["board"], rows["config"], rows["seed"], rows["top"]) == \
        ("icebreaker", "tiny", "3", "selftest")
    assert float(rows["target_mhz"]) == 30.0
    assert rows["timing_met"] == str(float(rows["fmax_mhz"]) >= 30.0)
    assert result.returncode == (0 if rows["timing_met"] == "True" else 1)
    used, available = resources["ICESTORM_LC"]
    assert 0 < used <= available == 5280
    assert resources["ICESTORM_PLL"] == [1, 1]
    # tiny's 16 PEs multiply in pairs: all 8 SB_MAC16 (MODE_8x8).
    assert resources["ICESTORM_DSP"] == [8, 8]
    bitstream = ROOT / rows["bitstream"]
    assert bitstream.stat().st_size > 100_000   # a UP5K image is ~104 kB

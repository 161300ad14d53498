"""The config contract: presets, derived values and one test per error message."""

import dataclasses

import pytest

from hdl.config import PRESETS, TesseraConfig, preset


def test_presets_table():
    table = {name: (c.dim, c.target_mhz) for name, c in PRESETS.items()}
    assert table == {"micro": (2, 50.0), "tiny": (4, 30.0), "small": (8, 80.0),
                     "large": (12, 75.0), "asic": (16, 100.0)}
    for name, config in PRESETS.items():
        assert config.name == name
        assert (config.act_width, config.weight_width, config.acc_width) == (8, 8, 32)
        assert config.act_signed and config.weight_signed


def test_memory_geometry():
    tiny = preset("tiny")
    assert (tiny.sp_bank_depth, tiny.acc_bank_depth) == (256, 128)
    for config in PRESETS.values():
        assert config.sp_bank_depth >= config.dim and config.acc_bank_depth >= config.dim


def test_dsp_budgets():
    assert preset("tiny").dsp_count == 8          # iCE40UP5K has 8 SB_MAC16
    # ECP5: the post-processing's lanes take 4 MULT18X18D each (16 x 16 partial products).
    small, large = preset("small"), preset("large")
    assert small.dsp_count + 4 * small.postproc_lanes_per_cycle == 28  # LFE5U-25F has 28
    assert large.dsp_count + 4 * large.postproc_lanes_per_cycle == 156  # LFE5U-85F has 156
    assert preset("asic").dsp_count == 0
    tiny = preset("tiny")
    kinds = [tiny.pe_multiplier(r, c) for r in range(4) for c in range(4)]
    assert kinds == ["dsp"] * 16                  # two 8x8 products per SB_MAC16
    assert tiny.replace(max_dsp=5).dsp_count == 5
    assert [tiny.replace(max_dsp=5).pe_multiplier(r, c) for r in range(4) for c in range(4)] \
        == ["dsp"] * 10 + ["lut"] * 6
    assert tiny.replace(dsp_products=1).dsp_count == 8


def test_postproc_throughput():
    """One row per cycle on the ASIC preset; the FPGA presets and micro time-multiplex (the
    DSP blocks are the PEs'), tiny also multiplies digit-serially."""
    cycles = {name: c.postproc_row_cycles for name, c in PRESETS.items()}
    assert cycles == {"micro": 2, "tiny": 32, "small": 8, "large": 4, "asic": 1}
    assert TesseraConfig(dim=6, postproc_lanes=3).postproc_row_cycles == 2
    assert TesseraConfig(dim=6, postproc_lanes=3,
                         postproc_multiply_cycles=8).postproc_row_cycles == 16
    assert TesseraConfig(dim=3, postproc_multiply_cycles=32).postproc_row_cycles == 32
    assert {name: c.postproc_multiply_cycles for name, c in PRESETS.items()} == {
        "micro": 1, "tiny": 8, "small": 1, "large": 1, "asic": 1}


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset("tiny").dim = 5


def test_any_positive_dim():
    assert TesseraConfig(dim=7).macs_per_cycle == 49


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(dim=0), ValueError, r"^dim must be a positive integer, not 0$"),
    (dict(dim=-3), ValueError, r"^dim must be a positive integer, not -3$"),
    (dict(dim=2.0), TypeError, r"^dim must be an integer, not 2\.0$"),
    (dict(dim=True), TypeError, r"^dim must be an integer, not True$"),
    (dict(act_width=0), ValueError, r"^act_width must be a positive integer, not 0$"),
    (dict(weight_width="8"), TypeError, r"^weight_width must be an integer, not '8'$"),
    (dict(act_signed=1), TypeError, r"^act_signed must be a bool, not 1$"),
    (dict(weight_signed=None), TypeError, r"^weight_signed must be a bool, not None$"),
    (dict(acc_width=15), ValueError,
     r"^acc_width must be at least act_width \+ weight_width \(16\), not 15$"),
    (dict(tag_width=0), ValueError, r"^tag_width must be a positive integer, not 0$"),
    (dict(postproc_lanes=3), ValueError, r"^postproc_lanes must divide dim \(4\), not 3$"),
    (dict(postproc_lanes=0), ValueError, r"^postproc_lanes must be a positive integer, not 0$"),
    (dict(postproc_multiply_cycles=0), ValueError,
     r"^postproc_multiply_cycles must be a positive integer, not 0$"),
    (dict(postproc_multiply_cycles=3), ValueError,
     r"^postproc_multiply_cycles must be 1, 2, 4, 8, 16 or 32, not 3$"),
    (dict(postproc_multiply_cycles=64), ValueError,
     r"^postproc_multiply_cycles must be 1, 2, 4, 8, 16 or 32, not 64$"),
    (dict(postproc_multiply_cycles=4.0), TypeError,
     r"^postproc_multiply_cycles must be an integer, not 4\.0$"),
    (dict(bus_data_width=48), ValueError,
     r"^bus_data_width must be 32, 64 or 128, not 48$"),
    (dict(bus_addr_width=8), ValueError,
     r"^bus_addr_width must be an integer of at least 12, not 8$"),
    (dict(bus_addr_width=65), ValueError, r"^bus_addr_width must be at most 64, not 65$"),
    (dict(bus_id_width=0), ValueError, r"^bus_id_width must be a positive integer, not 0$"),
    (dict(dma_outstanding=0), ValueError,
     r"^dma_outstanding must be a positive integer, not 0$"),
    (dict(multiplier="dsp", dsp_products=3), ValueError, r"^dsp_products must be 1 or 2, not 3$"),
    (dict(multiplier="lut", dsp_products=2), ValueError,
     r"^dsp_products=2 \(two 8x8 products per SB_MAC16\) needs multiplier='dsp'"),
    (dict(multiplier="dsp", dsp_products=2, act_signed=False), ValueError,
     r"^dsp_products=2 \(two 8x8 products per SB_MAC16\) needs"),
    (dict(dma_max_burst=48), ValueError,
     r"^dma_max_burst must be a power of two from 1 to 256, not 48$"),
    (dict(dma_max_burst=512), ValueError,
     r"^dma_max_burst must be a power of two from 1 to 256, not 512$"),
    (dict(insn_queue_depth=1), ValueError,
     r"^insn_queue_depth must be an integer of at least 2, not 1$"),
    (dict(unit_queue_depth=0), ValueError,
     r"^unit_queue_depth must be a positive integer, not 0$"),
    (dict(unit_queue_depth=2.0), TypeError, r"^unit_queue_depth must be an integer, not 2.0$"),
    (dict(perf_counter_width=0), ValueError,
     r"^perf_counter_width must be a positive integer, not 0$"),
    (dict(perf_counter_width=33), ValueError,
     r"^perf_counter_width must be at most 32, not 33$"),
    (dict(target_mhz="fast"), TypeError, r"^target_mhz must be a real number, not 'fast'$"),
    (dict(target_mhz=0), ValueError, r"^target_mhz must be positive, not 0$"),
    (dict(multiplier="wallace"), ValueError,
     r"^multiplier must be one of behavioural, lut, dsp, not 'wallace'$"),
    (dict(multiplier="dsp", max_dsp=-1), ValueError,
     r"^max_dsp must be an integer of at least 0, not -1$"),
    (dict(max_dsp=4), ValueError, r"^max_dsp only applies to multiplier='dsp', not 'behavioural'$"),
    (dict(name=3), TypeError, r"^name must be a string, not 3$"),
    (dict(product_stages=0), ValueError, r"^product_stages must be a positive integer, not 0$"),
    (dict(addr_width=0), ValueError, r"^addr_width must be a positive integer, not 0$"),
    (dict(sp_single_port="yes"), TypeError, r"^sp_single_port must be a bool, not 'yes'$"),
    (dict(acc_registered=1), TypeError, r"^acc_registered must be a bool, not 1$"),
    (dict(acc_registered=True, target_mhz=50.0), ValueError,
     r"^acc_registered needs a fast clock \(target_mhz above 50\), not 50\.0$"),
    (dict(sp_depth=0), ValueError, r"^sp_depth must be a positive integer, not 0$"),
    (dict(sp_banks=1), ValueError, r"^sp_banks must be an integer of at least 2, not 1$"),
    (dict(acc_banks=3), ValueError, r"^acc_banks must be a power of two, not 3$"),
    (dict(acc_depth=48), ValueError, r"^acc_depth must be a power of two, not 48$"),
    (dict(dim=8, acc_depth=8), ValueError,
     r"^acc_depth must be at least acc_banks \* dim \(16\), not 8$"),
    (dict(sp_depth=1 << 17), ValueError,
     r"^sp_depth must fit addr_width \(65536 rows\), not 131072$"),
])
def test_config_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        TesseraConfig(**kwargs)


def test_replace_checks_names_and_values():
    with pytest.raises(TypeError, match=r"^TesseraConfig has no parameter 'dims'$"):
        preset("tiny").replace(dims=3)
    with pytest.raises(ValueError, match=r"^dim must be a positive integer, not 0$"):
        preset("tiny").replace(dim=0)
    assert preset("tiny").replace(dim=6).dim == 6


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"^Unknown config 'huge'; presets are micro, tiny, "
                                         r"small, large, asic$"):
        preset("huge")
    with pytest.raises(TypeError, match=r"^Preset name must be a string, not 4$"):
        preset(4)


def test_pe_outside_array():
    with pytest.raises(ValueError, match=r"^PE \(4, 0\) is outside a 4x4 array$"):
        preset("tiny").pe_multiplier(4, 0)

"""The memories map onto block RAM (iCE40 EBR, ECP5 DP16KD), never onto flip-flops."""

import re

import pytest

from hdl.accumulator import Accumulator
from hdl.config import preset
from hdl.scratchpad import Scratchpad
from sw.synth import synth_cells


def ebr_count(depth, width):
    """SB_RAM40_4K blocks for depth x width: 256x16, 512x8, 1024x4 or 2048x2 each."""
    return min(-(-depth // d) * -(-width // w) for d, w in
               [(256, 16), (512, 8), (1024, 4), (2048, 2)])


def dp16kd_count(depth, width):
    """DP16KD blocks for depth x width: 512x36 ... 16384x1 each."""
    return min(-(-depth // d) * -(-width // w) for d, w in
               [(512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)])


@pytest.mark.parametrize("family, cell, count_blocks", [
    ("ice40", "SB_RAM40_4K", ebr_count),
    ("ecp5", "DP16KD", dp16kd_count),
])
@pytest.mark.parametrize("memory", ["scratchpad", "accumulator"])
def test_memories_map_to_block_ram(memory, family, cell, count_blocks, build_dir):
    config = preset("tiny" if family == "ice40" else "small")
    if memory == "scratchpad":
        dut = Scratchpad(config)
        banks, depth, width = config.sp_banks, config.sp_bank_depth, config.dim * config.act_width
    else:
        dut = Accumulator(config)
        banks, depth, width = (config.acc_banks, config.acc_bank_depth,
                               config.dim * config.acc_width)
    cells = synth_cells(dut, family, build_dir)
    print(f"{memory} {config.name} on {family}: {cells}")
    assert cells.get(cell, 0) == banks * count_blocks(depth, width)
    # No memory left to flip-flops: the flip-flops are the control and the response buffers
    # (none for the scratchpad on the iCE40: its banks hold the answers), far fewer than one
    # bank's bits.
    flops = sum(n for name, n in cells.items() if re.match(r"(SB_DFF|TRELLIS_FF)", name))
    assert flops < depth * width // 4

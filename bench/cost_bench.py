"""Block costs: LUTs, flip-flops, DSPs and block RAMs of each accelerator block after yosys
``synth_ice40`` (``tiny``) or ``synth_ecp5`` (``small``), no place and route."""

from hdl.axi_lite import AXI4LiteRegisterBank
from hdl.dispatcher import Dispatcher
from hdl.dma import DMA
from hdl.exec_unit import ExecUnit
from hdl.load_unit import LoadUnit
from hdl.postproc import PostProcess
from hdl.registers import tessera_register_map
from hdl.store_unit import StoreUnit
from hdl.top import CSR_ADDR_WIDTH, Accelerator
from sw.synth import synth_cells

__all__ = ["BLOCKS", "block_cost", "summarize"]

#: name -> a function of the config making the block.
BLOCKS = {
    "post-processing": PostProcess,
    "LOAD unit": LoadUnit,
    "EXEC unit (with the array)": ExecUnit,
    "STORE unit (with post-processing)": StoreUnit,
    "dispatcher": lambda config: Dispatcher(),
    "AXI4-Lite register bank": lambda config: AXI4LiteRegisterBank(
        tessera_register_map(config), addr_width=CSR_ADDR_WIDTH),
    "DMA (read + write)": DMA,
    "whole accelerator": Accelerator,
}

_CELLS = {
    "ice40": {"LUT4": ("SB_LUT4",), "FF": ("SB_DFF",), "DSP": ("SB_MAC16",),
              "BRAM": ("SB_RAM40_4K",)},
    "ecp5": {"LUT4": ("LUT4",), "FF": ("TRELLIS_FF",), "DSP": ("MULT18X18D",),
             "BRAM": ("DP16KD",)},
}


def summarize(cells, family):
    """{"LUT4", "FF", "DSP", "BRAM"} totals of yosys cell counts."""
    return {kind: sum(n for name, n in cells.items() if name.startswith(prefixes))
            for kind, prefixes in _CELLS[family].items()}


def block_cost(name, config, family, build_dir):
    """The summarized cost of block ``name`` built from ``config``."""
    cells = synth_cells(BLOCKS[name](config), family, build_dir)
    return summarize(cells, family)

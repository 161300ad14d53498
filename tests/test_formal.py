"""SymbiYosys: the accumulator's bounded proof against a reference memory, with covers."""

import pytest

from hdl.config import TesseraConfig
from sim.formal import run_sby
from sim.formal_accumulator import AccumulatorProof

#: Small enough to prove quickly, wide enough to show wrap-around and forwarding: one lane of
#: 4 bits, 4 rows in 2 banks, 3-bit addresses (so 4..7 are out of range).
PROOF_CONFIG = TesseraConfig(dim=1, act_width=2, weight_width=2, acc_width=4, tag_width=1,
                             sp_depth=4, acc_depth=4, addr_width=3)
#: Deep enough for three outstanding reads behind three writes in flight: dropping any one
#: forwarded write, or a store read's wait, fails within it (each checked by hand, in 2-3 s);
#: the proof of all three variants takes about 30 s here, at 16 cycles 165 s.
BMC_DEPTH = 12


@pytest.mark.usefixtures("poisoned_srams")
@pytest.mark.parametrize("target_mhz, registered", [(30.0, False), (100.0, False),
                                                    (100.0, True)],
                         ids=["slow", "fast", "registered"])
def test_accumulator_proof(build_dir, target_mhz, registered):
    """Slow clocks (the row a cycle after its address), fast ones (the sum registered and
    written a cycle later: two writes in flight to forward) and fast ones with the banks'
    outputs registered (three). A bank's read of the row it writes in the same cycle returns
    garbage (conftest): the forwarding must cover it."""
    config = PROOF_CONFIG.replace(target_mhz=target_mhz)
    status = run_sby(AccumulatorProof(config, registered), "accumulator_proof", build_dir,
                     bmc_depth=BMC_DEPTH, cover_depth=BMC_DEPTH)
    assert status == {"bmc": "PASS", "cover": "PASS"}, (build_dir, status)


def test_axi_lite_proof(build_dir):
    """The AXI4-Lite register bank: handshakes hold, every request gets exactly one response
    of the right kind, no deadlock (sim/formal_axi_lite.py), with covers."""
    from sim.formal_axi_lite import AXI4LiteProof

    status = run_sby(AXI4LiteProof(), "axi_lite_proof", build_dir, bmc_depth=20,
                     cover_depth=12)
    assert status == {"bmc": "PASS", "cover": "PASS"}, (build_dir, status)

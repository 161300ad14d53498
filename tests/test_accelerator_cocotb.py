"""End-to-end GEMMs on the whole accelerator's Verilog, through the driver, under cocotb:
CSR writes over AXI4-Lite, DMA over AXI4 into a strict AxiRam, all three units, compared
with the golden model (and with the functional model, which agrees with it)."""

import json

import pytest
from conftest import require_simulator

from hdl.config import preset
from sw.cli import main
from sw.gemm_sim import run_error_checks, run_gemms

#: Shapes: 1x1x1, primes, batch 1 (M = 1), M < dim, smaller and larger than dim.
SHAPES = [(1, 1, 1), (2, 3, 5), (7, 11, 13), (1, 64, 33), (4, 4, 4), (17, 33, 9),
          (40, 8, 12), (5, 16, 3)]


def gemms(shapes, seed):
    return [dict(m=m, k=k, n=n, seed=seed + i, requant=bool(i % 2))
            for i, (m, k, n) in enumerate(shapes)]


def check(reports, context):
    for report in reports:
        assert report["match"], f"{context}: {report}"
        assert report["cycles"] > 0 and report["macs"] == report["m"] * report["k"] * report["n"]


# The accelerator's Verilog with same-cycle reads of "any"-collision memories returning
# garbage (conftest): a unit that relies on such a read fails here, as it would on an FPGA.
@pytest.mark.usefixtures("poisoned_srams")
@pytest.mark.parametrize("simulator, config, shapes", [
    ("verilator", "tiny", SHAPES),
    ("icarus", "micro", SHAPES[:4]),
])
def test_gemms_end_to_end(simulator, config, shapes, build_dir):
    """The shapes on an idle memory, then again with pauses on every AXI channel and read
    latency, then every error cause with recovery: one simulator build for all three."""
    require_simulator(simulator)
    config = preset(config)
    for seed, stall, latency in [(500, 0.0, 0), (510, 0.3, 3)]:
        if simulator == "icarus" and not stall:
            continue  # Icarus is slow: only the harder case
        print(f"seed={seed} simulator={simulator} config={config.name} stall={stall} "
              f"latency={latency}")
        reports = run_gemms(config, gemms(shapes, seed), simulator=simulator, stall=stall,
                            latency=latency, build_dir=build_dir)
        for report in reports:
            print(report)
        check(reports, f"seed={seed} {simulator} {config.name} stall={stall}")
    # Undefined opcode, malformed, scratchpad and accumulator range, misaligned, AXI read
    # and write errors, token underflow, a full queue: each stops the accelerator with its
    # cause, nothing hangs, and after SOFT_RESET a GEMM is right again.
    run_error_checks(config, simulator=simulator, stall=0.2, latency=2, build_dir=build_dir)


#: The quick test runs all of SHAPES on tiny; here the odd ones and the large ones, and on
#: Icarus (a hundred times slower than Verilator) the odd ones only.
SLOW_SHAPES = [(1, 1, 1), (7, 11, 13), (1, 64, 33), (17, 33, 9), (64, 64, 64), (130, 20, 17)]


#: A fast-clock micro with the registered accumulator (``large``'s, too big to simulate here).
MICRO_REGISTERED = preset("micro").replace(name="micro-registered", target_mhz=80.0,
                                           acc_registered=True)


@pytest.mark.slow
@pytest.mark.usefixtures("poisoned_srams")
@pytest.mark.parametrize("simulator, config, shapes", [("verilator", "small", SLOW_SHAPES),
                                                       ("verilator", "micro-registered",
                                                        SLOW_SHAPES[:2]),
                                                       ("icarus", "tiny", SLOW_SHAPES[:4])])
def test_gemms_end_to_end_slow(simulator, config, shapes, build_dir):
    require_simulator(simulator)
    config = MICRO_REGISTERED if config == MICRO_REGISTERED.name else preset(config)
    seed = 600
    reports = run_gemms(config, gemms(shapes, seed), simulator=simulator, stall=0.2,
                        latency=4, build_dir=build_dir)
    check(reports, f"seed={seed} {simulator} {config.name}")
    if config.acc_registered:  # and the registered SOFT_RESET (the quick test's are slow)
        run_error_checks(config, simulator=simulator, stall=0.2, latency=2,
                         build_dir=build_dir)


@pytest.mark.slow
def test_cli_gemm_verilator(capsys):
    require_simulator("verilator")
    assert main(["gemm", "--m", "9", "--k", "10", "--n", "11", "--seed", "3", "--requant",
                 "--backend", "verilator", "--config", "micro", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["match"] is True and report["macs"] == 990
    assert report["cycles"] > 0
    assert report["utilization"] == pytest.approx(990 / (report["cycles"] * 4))
    assert (report["backend"], report["config"], report["seed"]) == ("verilator", "micro", 3)


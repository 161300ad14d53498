"""The benchmark's compiled Verilator harness measures what it claims (fast: dim 2)."""

import pytest

from bench.__main__ import format_table
from bench.verilator_bench import build_harness, macs_per_cycle, run_harness
from hdl.config import preset
from hdl.systolic import SystolicArray


def test_harness_streams_dim_squared_macs_per_cycle(build_dir):
    config = preset("micro")
    dim = config.dim
    exe = build_harness(config, build_dir)
    tiles = 300
    # run_harness raises unless every result row matched the C++ reference, one result came
    # back per accepted activation row, and the checksum is nonzero.
    full = run_harness(exe, tiles=tiles, rows_per_tile=dim, seed=3)
    bubble = run_harness(exe, tiles=tiles, rows_per_tile=dim, bubble=True, seed=3)
    assert full["accepted"] == full["results"] == tiles * dim
    overall, steady = macs_per_cycle(full, dim)
    assert steady == dim * dim, f"full rate: {steady} MACs/cycle, not {dim * dim}: {full}"
    array = SystolicArray(config)  # as sw.verilog.write_array_verilog builds it
    array._MustUse__silence = True  # only its documented latency is looked at
    assert full["last_result"] - full["last_accept"] == array.latency
    assert dim * dim - 0.1 < overall < dim * dim
    bubble_overall, bubble_steady = macs_per_cycle(bubble, dim)
    # One idle cycle per tile of dim rows: dim * dim * dim / (dim + 1) in the long run.
    assert bubble_steady < steady
    assert abs(bubble_steady - dim**3 / (dim + 1)) < 0.01, bubble
    assert bubble_overall < bubble_steady
    assert bubble["checksum"] == full["checksum"]  # the same data, only the timing differs


def test_table_is_aligned():
    rows = [{"measurement": "a", "config": "tiny (dim 4)", "value": 16.0, "unit": "MAC/cycle"},
            {"measurement": "longer one", "config": "-", "value": 1234567.8, "unit": "cycles/s"},
            {"measurement": "c", "config": "x", "value": None, "unit": "not available"}]
    lines = format_table(rows).splitlines()
    assert len(lines) == 5
    assert len({line.index("|") for line in lines if "|" in line}) == 1
    assert "1,234,568" in lines[3] and "16.00000" in lines[2] and " - " in lines[4]


@pytest.mark.slow
def test_accelerator_harness_matches_golden(build_dir):
    """The compiled harness (host and memory in C++) runs GEMMs on the whole accelerator and
    they match the golden model."""
    from bench.accel_harness import build_accel_harness, run_accel_gemm
    config = preset("tiny")
    exe = build_accel_harness(config, build_dir)
    for i, shape in enumerate([(1, 1, 1), (17, 33, 9), (40, 64, 24)]):
        report = run_accel_gemm(exe, config, *shape, seed=i, work_dir=build_dir / "run")
        print(report)
        assert report["match"] and report["error_cause"] == 0, report
        assert report["busy_cycles"] > 0

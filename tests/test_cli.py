"""`tessera verilog` and the CLI's argument handling (the bundle itself: test_bundle.py)."""

import pytest

from sw.cli import main


def test_verilog_writes_the_bundle(build_dir, capsys):
    assert main(["verilog", "--config", "micro", "-o", str(build_dir)]) == 0
    path = build_dir / "tessera_top.v"
    assert str(path) in capsys.readouterr().out.split()
    text = path.read_text()
    assert "module tessera_top(" in text
    for port in ("csr__awaddr", "csr__rdata", "mem__araddr", "mem__rdata", "irq"):
        assert port in text


def test_unknown_config_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["verilog", "--config", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--port", "/dev/ttyUSB1"], "--port needs --backend board"),
    (["--backend", "board-sim", "--port", "/dev/ttyUSB1"], "--port needs --backend board"),
    (["--backend", "board"], "--backend board needs --port (the board's serial port, e.g. "
                             "/dev/ttyUSB1)"),
    (["--backend", "board", "--board", "icebreaker"], "--backend board needs --port"),
    (["--backend", "verilator", "--board", "icebreaker"],
     "--board needs --backend board-sim or board"),
    (["--faults", "3"], "--faults needs --backend board-sim"),
])
def test_gemm_board_options_are_checked(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gemm", "--m", "1", "--k", "1", "--n", "1", *args])
    assert exit_info.value.code == 2
    assert f"tessera gemm: error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--config", "tiny"], ["--backend", "board-sim"]])
def test_gemm_past_the_dma_address_space_is_refused(args, capsys):
    """tiny (also as the iCEBreaker's config) reaches 64 KiB: a 256^3 GEMM does not fit."""
    with pytest.raises(SystemExit) as exit_info:
        main(["gemm", "--m", "256", "--k", "256", "--n", "256", *args])
    assert exit_info.value.code == 2
    assert ("tessera gemm: error: a 256x256x256 GEMM at base 0x0 needs system memory up to "
            "0x60000; the tiny config's DMA reaches 0x10000" in capsys.readouterr().err)


def test_gemm_on_a_missing_serial_port_fails_cleanly(capsys):
    port = "/dev/tessera-no-such-port"
    assert main(["gemm", "--m", "1", "--k", "1", "--n", "1", "--backend", "board",
                 "--port", port]) == 1
    assert capsys.readouterr().err.startswith(f"tessera gemm: {port}: ")

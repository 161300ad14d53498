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

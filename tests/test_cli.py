"""`tessera verilog` and the CLI's argument handling."""

import pytest

from sw.cli import main


def test_verilog_writes_array(build_dir, capsys):
    assert main(["verilog", "--config", "micro", "-o", str(build_dir)]) == 0
    path = build_dir / "tessera_systolic.v"
    assert capsys.readouterr().out.strip() == str(path)
    text = path.read_text()
    assert "module tessera_systolic(" in text
    for port in ("acts__payload", "weights__payload", "results__payload", "results__ready"):
        assert port in text


def test_unknown_config_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["verilog", "--config", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err

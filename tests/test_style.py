"""The project's own Python is ruff clean (rules in pyproject.toml)."""

import subprocess
import sys

from sw.synth import ROOT


def test_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                             "hdl", "sim", "sw", "boards", "tests", "bench"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr

"""Shared fixtures: the pinned toolchain and a build folder outside the system temp folder.

YoWASP tools cannot see absolute paths inside the system temp folder, so tool runs use
``build/tests/<test name>`` under the repository instead of pytest's ``tmp_path``.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def build_dir(request):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    path = ROOT / "build" / "tests" / Path(request.node.fspath).stem / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


#: The simulators every cocotb test runs on.
SIMULATORS = ["verilator", "icarus"]


def require_simulator(name):
    """Skip (with the reason) when ``name`` is missing; under CI a missing simulator fails."""
    if name == "icarus" and shutil.which("iverilog") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Icarus Verilog (iverilog) is missing: .ci/run installs it")
        pytest.skip("Icarus Verilog (iverilog) is not installed: apt-get install iverilog")


@pytest.fixture
def poisoned_srams():
    """Memories of ``collision="any"`` built in the test return garbage for a read of the
    row written in the same cycle (:func:`hdl.sram.poisoned_collisions`): their owners must
    forward that row, as on an iCE40 EBR or a macro."""
    from hdl.sram import poisoned_collisions
    with poisoned_collisions():
        yield

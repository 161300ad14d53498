"""The ``tessera`` command line **(contract)**: parses, calls library functions, prints."""

import argparse
import functools
import json
import sys

from hdl.config import PRESETS

__all__ = ["main"]


def _table(rows):
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def _synth_table(report):
    rows = [(key, report[key]) for key in
            ("board", "config", "top", "seed", "fmax_mhz", "target_mhz", "clock_mhz",
             "timing_met", "bitstream", "wall_s")]
    clocks = report.get("clocks", {})
    if len(clocks) > 1:  # e.g. a USB PHY's beside the design clock
        rows += [(f"clock {name}", f"{c['fmax_mhz']} MHz (constraint {c['constraint_mhz']})")
                 for name, c in sorted(clocks.items())]
    used = [(f"  {cell}", f"{u:>6} / {a:<6} ({100 * u / a:5.1f} %)")
            for cell, (u, a) in sorted(report["resources"].items()) if a]
    return _table(rows + [("resources", "")] + used)


def cmd_verilog(args):
    from hdl.config import preset
    from sw.bundle import write_bundle
    bundle = write_bundle(preset(args.config), args.output)
    for path in sorted(bundle.folder.iterdir()):
        print(path)
    return 0


def cmd_tinytapeout(args):
    from sw.bundle import write_tinytapeout
    print(write_tinytapeout(args.output))
    return 0


def cmd_synth(args):
    from sw.synth import synth
    report = synth(args.board, args.config, args.seed, top=args.top)
    if args.json:
        print(json.dumps(report))
    else:
        print(_synth_table(report))
    if not report["timing_met"]:
        print(f"timing not met: {report['fmax_mhz']} MHz < {report['target_mhz']} MHz",
              file=sys.stderr)
        return 1
    return 0


#: Backends of ``tessera gemm``: the functional model; the accelerator's Verilog; a board's
#: system simulated at its UART pins (``board-sim``); a board over a serial port (``board``).
GEMM_BACKENDS = ("model", "verilator", "icarus", "board-sim", "board")
#: The backends that run a board's system (``--board``).
BOARD_BACKENDS = ("board-sim", "board")


def gemm_report(args):
    """Run the GEMM ``args`` describe; returns the report dict of ``tessera gemm --json``."""
    import numpy as np

    from hdl.config import preset
    from sw.driver import (
        Driver,
        ModelBackend,
        first_mismatch,
        gemm_operands,
        golden_gemm,
    )
    from sw.driver import run as run_driver

    gemm = {"m": args.m, "k": args.k, "n": args.n, "seed": args.seed, "requant": args.requant}
    if args.backend in BOARD_BACKENDS:
        if args.backend == "board":
            from sw.board import run_gemms_on_board
            (report,) = run_gemms_on_board(args.board, args.port, [gemm], config=args.config)
        else:
            from sw.board_sim import run_board_gemms
            (report,) = run_board_gemms(args.board, [gemm], config=args.config,
                                        faults=args.faults)
        report.update(backend=args.backend)
        return report
    config = preset(args.config)
    if args.backend != "model":
        from sw.gemm_sim import run_gemms
        (report,) = run_gemms(config, [gemm], simulator=args.backend)
        report.update(backend=args.backend, config=config.name)
        return report
    a, w, params = gemm_operands(gemm)
    result = run_driver(Driver(ModelBackend(config)).gemm(a, w, params))
    expected = golden_gemm(config, a, w, params)
    report = {
        "match": bool(np.array_equal(result.output, expected)),
        "cycles": result.cycles,
        "macs": result.macs,
        "utilization": result.utilization(config),
        "backend": args.backend,
        "config": config.name,
        "seed": args.seed,
        "m": args.m, "k": args.k, "n": args.n,
        "requant": args.requant,
        "instructions": result.instructions,
    }
    if not report["match"]:
        report["first_mismatch"] = first_mismatch(result.output, expected)
    return report


def cmd_gemm(args):
    from sw.link import LinkError
    try:
        report = gemm_report(args)
    except (OSError, LinkError) as error:  # no such serial port; no good reply from it
        if args.backend != "board":
            raise
        print(f"tessera gemm: {args.port}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print(_table([(key, value) for key, value in report.items()]))
    if not report["match"]:
        print(f"mismatch: {report['first_mismatch']}", file=sys.stderr)
        return 1
    return 0


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def build_parser():
    from sw.synth import BOARDS, TOPS
    parser = argparse.ArgumentParser(prog="tessera", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verilog", help="write the foundry handoff bundle (Verilog, SDC, "
                       "LibreLane config.json, C header, README)")
    p.add_argument("--config", default="asic", choices=sorted(PRESETS))
    p.add_argument("-o", "--output", default=None,
                   help="bundle folder (default: build/verilog/<config>)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("tinytapeout", help="the Tiny Tapeout project of the micro preset "
                       "(src/tt_um_tessera.v, info.yaml, docs/info.md)")
    p.add_argument("-o", "--output", default=None, help="default build/tinytapeout")
    p.set_defaults(func=cmd_tinytapeout)

    p = sub.add_parser("synth", help="FPGA bitstream plus utilization/fmax report")
    p.add_argument("--board", default="icebreaker", choices=sorted(BOARDS))
    p.add_argument("--config", default=None, choices=sorted(PRESETS),
                   help="preset (default: the board's own)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--top", default="system", choices=TOPS,
                   help="system: the accelerator on its UART host link (default); selftest: "
                        "the array alone under a pseudo-random self-test")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of stdout")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("gemm", help="random int8 GEMM end to end, checked against the "
                                    "golden model")
    for dim in ("m", "k", "n"):
        p.add_argument(f"--{dim}", type=_positive, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backend", default="model", choices=GEMM_BACKENDS)
    p.add_argument("--config", default=None, choices=sorted(PRESETS),
                   help="preset (default: tiny; with --board, the board's own)")
    p.add_argument("--board", default=None, choices=sorted(BOARDS),
                   help="with --backend board-sim or board (default icebreaker)")
    p.add_argument("--port", default=None,
                   help="serial port of the board's host link (--backend board only)")
    p.add_argument("--faults", type=int, default=None, metavar="SEED",
                   help="--backend board-sim: damage the serial line on purpose (bit flips, "
                        "dropped bytes) to exercise the link's recovery")
    p.add_argument("--requant", action="store_true",
                   help="int8 outputs through random valid post-processing parameters")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of stdout")
    p.set_defaults(func=cmd_gemm, check=functools.partial(_check_gemm_args, p))
    return parser


def _check_gemm_args(parser, args):
    """The option combinations of ``tessera gemm`` that argparse cannot express (an error
    exits with status 2, as argparse does); fills in the defaults that depend on others."""
    board = args.backend in BOARD_BACKENDS
    if args.port is not None and args.backend != "board":
        parser.error("--port needs --backend board")
    if args.backend == "board" and args.port is None:
        parser.error("--backend board needs --port (the board's serial port, e.g. "
                     "/dev/ttyUSB1)")
    if args.board is not None and not board:
        parser.error(f"--board needs --backend {' or '.join(BOARD_BACKENDS)}")
    if args.faults is not None and args.backend != "board-sim":
        parser.error("--faults needs --backend board-sim")
    if board:
        args.board = args.board or "icebreaker"
    else:
        args.config = args.config or "tiny"
    # The shape must fit the config's DMA address space (tiny's is its board's 64 KiB).
    from hdl.config import preset
    from sw.board import board_config
    from sw.compiler import plan_gemm
    config = board_config(args.board, args.config) if board else preset(args.config)
    try:
        plan_gemm(config, args.m, args.k, args.n, requant=args.requant)
    except ValueError as error:
        parser.error(str(error))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if hasattr(args, "check"):
        args.check(args)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

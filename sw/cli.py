"""The ``tessera`` command line **(contract)**: parses, calls library functions, prints."""

import argparse
import json
import sys

from hdl.config import PRESETS

__all__ = ["main"]


def _table(rows):
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def _synth_table(report):
    rows = [(key, report[key]) for key in
            ("board", "config", "seed", "fmax_mhz", "target_mhz", "clock_mhz", "timing_met",
             "bitstream", "wall_s")]
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
    report = synth(args.board, args.config, args.seed)
    if args.json:
        print(json.dumps(report))
    else:
        print(_synth_table(report))
    if not report["timing_met"]:
        print(f"timing not met: {report['fmax_mhz']} MHz < {report['target_mhz']} MHz",
              file=sys.stderr)
        return 1
    return 0


#: Backends of ``tessera gemm``: the functional model, or the accelerator's Verilog.
GEMM_BACKENDS = ("model", "verilator", "icarus")


def gemm_report(args):
    """Run the GEMM ``args`` describe; returns the report dict of ``tessera gemm --json``."""
    import numpy as np

    from hdl.config import preset
    from sw.driver import Driver, ModelBackend, golden_gemm, random_gemm, random_requant_params
    from sw.driver import run as run_driver

    config = preset(args.config)
    rng = np.random.default_rng(args.seed)
    a, w = random_gemm(rng, args.m, args.k, args.n)
    params = random_requant_params(rng, args.n, args.k) if args.requant else None
    if args.backend != "model":
        from sw.gemm_sim import run_gemms
        gemm = {"m": args.m, "k": args.k, "n": args.n, "seed": args.seed,
                "requant": args.requant}
        (report,) = run_gemms(config, [gemm], simulator=args.backend)
        report.update(backend=args.backend, config=config.name)
        return report
    result = run_driver(Driver(ModelBackend(config)).gemm(a, w, params))
    expected = golden_gemm(config, a, w, params)
    report = {
        "match": bool(np.array_equal(result.output, expected)),
        "cycles": result.cycles,
        "macs": result.macs,
        "utilization": (None if result.cycles is None
                        else result.macs / (result.cycles * config.dim * config.dim)),
        "backend": args.backend,
        "config": config.name,
        "seed": args.seed,
        "m": args.m, "k": args.k, "n": args.n,
        "requant": args.requant,
        "instructions": result.instructions,
    }
    if not report["match"]:
        row, col = (int(v) for v in np.argwhere(result.output != expected)[0])
        report["first_mismatch"] = {"row": row, "column": col,
                                    "expected": int(expected[row, col]),
                                    "got": int(result.output[row, col])}
    return report


def cmd_gemm(args):
    report = gemm_report(args)
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
    from sw.synth import BOARDS
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
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of stdout")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("gemm", help="random int8 GEMM end to end, checked against the "
                                    "golden model")
    for dim in ("m", "k", "n"):
        p.add_argument(f"--{dim}", type=_positive, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backend", default="model", choices=GEMM_BACKENDS)
    p.add_argument("--config", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--requant", action="store_true",
                   help="int8 outputs through random valid post-processing parameters")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of stdout")
    p.set_defaults(func=cmd_gemm)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

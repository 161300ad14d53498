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
    from sw.verilog import write_array_verilog
    path = write_array_verilog(preset(args.config), args.output)
    print(path)
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


def build_parser():
    from sw.synth import BOARDS
    parser = argparse.ArgumentParser(prog="tessera", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verilog", help="write the array's Verilog")
    p.add_argument("--config", default="tiny", choices=sorted(PRESETS))
    p.add_argument("-o", "--output", default="build/verilog")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("synth", help="FPGA bitstream plus utilization/fmax report")
    p.add_argument("--board", default="icebreaker", choices=sorted(BOARDS))
    p.add_argument("--config", default=None, choices=sorted(PRESETS),
                   help="preset (default: the board's own)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of stdout")
    p.set_defaults(func=cmd_synth)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

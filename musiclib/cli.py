"""The command line: `musiclib prepare | train | generate | evaluate | demo`."""
from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from musiclib.demo import run_demo

    run_demo(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="musiclib", description="Generate music from raw audio: data, models, evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train tiny models on the bundled music; write audio and pictures")
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""The ``mpsim`` command line.

Commands (this issue's subset; the cost-model issue extends it):

* ``mpsim table``: the declared-cost table of every registered protocol (markdown), as in
  ``docs/complexity.md``.
* ``mpsim demo``: the cost breakdown of a small attention block on the count backend. Until the MPCache
  workload lands, this block has no softmax (the non-linear protocols are not built yet); it is honest about
  that in its output.

Errors from bad arguments are one readable line and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import sys


def _table(args) -> int:
    from protocols.registry import markdown_table

    sys.stdout.write(markdown_table())
    return 0


def _demo(args) -> int:
    from .demo import attention_block_breakdown

    attention_block_breakdown(
        seq=args.seq, heads=args.heads, head_dim=args.head_dim, parties=args.parties, backend=args.backend
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpsim", description="MPC protocol simulator with an exact cost model")
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="print the declared-cost table (markdown)")
    table.set_defaults(run=_table)
    demo = sub.add_parser("demo", help="cost breakdown of one private attention block (no softmax yet)")
    demo.add_argument("--seq", type=_positive, default=1024, help="KV cache length (default 1024)")
    demo.add_argument("--heads", type=_positive, default=12, help="attention heads (default 12)")
    demo.add_argument("--head-dim", type=_positive, default=64, help="head dimension (default 64)")
    demo.add_argument("--parties", type=_positive, default=2, help="number of parties (default 2)")
    demo.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    demo.set_defaults(run=_demo)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError) as err:
        print(f"mpsim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

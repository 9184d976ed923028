"""Shared pieces of the command line: the parser class, consoles, output checks, structured output and the
options several commands take."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one readable line, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


PIPED_WIDTH = 200  # a pipe or a file has no width to respect: wide enough that tables never wrap


def _console(args=None):
    """The output console: ``--width`` when given, else the terminal's width, or PIPED_WIDTH when piped."""
    from rich.console import Console

    width = getattr(args, "width", None)
    console = Console(width=width) if width else Console()
    if not width and not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _check_output(path: str | None, option: str) -> None:
    """Refuse an output file that cannot be written before any work is done (one-line ValueError)."""
    if path is None:
        return
    target = Path(path)
    parent = target.parent  # Path(".") for a bare file name
    if target.is_dir():
        raise ValueError(f"{option} {path}: is a directory; give a file name")
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {str(parent)!r} is not a directory (create it first)")


PLOT_TYPES = (".png", ".pdf", ".svg")


def _check_plot(path: str | None) -> None:
    """A --plot file: writable, and of a type the figure can be saved as (checked before any work)."""
    _check_output(path, "--plot")
    if path is not None and Path(path).suffix.lower() not in PLOT_TYPES:
        raise ValueError(f"--plot {path}: name a {', '.join(t[1:].upper() for t in PLOT_TYPES)} file "
                         f"({', '.join(PLOT_TYPES)})")


def _write_output(path: str, write, option: str) -> None:
    """Run ``write(path)``; an OS error (permissions, a vanished directory) becomes a one-line ValueError."""
    try:
        write(path)
    except OSError as err:
        raise ValueError(f"{option} {path}: cannot write: {err.strerror or err}") from None


def _save_and_emit(args, result: dict, csv_text: str | None, plot=None) -> bool:
    """The outputs every measuring command shares: ``--plot`` (``plot(path)``), ``--save`` (the JSON), then
    ``--json``/``--csv`` on stdout (True when one of them was printed)."""
    import json

    text = json.dumps(result, indent=2)
    if plot is not None and getattr(args, "plot", None):
        _write_output(args.plot, plot, "--plot")
    if getattr(args, "save", None):
        _write_output(args.save, lambda path: Path(path).write_text(text + "\n"), "--save")
    return _emit_structured(args, text, csv_text)


def _print_table(args, table) -> None:
    """The table, then where --plot and --save wrote."""
    console = _console(args)
    console.print(table)
    if getattr(args, "plot", None):
        console.print(f"plot written to {args.plot}")
    if getattr(args, "save", None):
        console.print(f"saved to {args.save}")


def _emit_structured(args, payload_json: str | None, payload_csv: str | None) -> bool:
    if getattr(args, "json", False):
        sys.stdout.write(payload_json + "\n")
        return True
    if getattr(args, "csv", False):
        sys.stdout.write(payload_csv)
        return True
    return False


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms" if seconds < 1 else f"{seconds:,.3f} s"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_ints(text: str, what: str) -> list[int]:
    """``"128,256,512"`` -> [128, 256, 512]; anything else is a one-line error naming ``what``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise ValueError(f"bad {what} {text!r}: use positive integers separated by commas")
    return values


def _structured(p, csv: bool = True):
    """--json / --csv (exclusive), and --width for the text output."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print JSON")
    if csv:
        group.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--width", type=_positive, default=None,
                   help=f"text width in columns (default: the terminal's; {PIPED_WIDTH} when piped)")


def _by_option(p):
    p.add_argument("--by", choices=("layer", "protocol", "scope"), default=None,
                   help="flat breakdown per layer (layerN scopes), per protocol (the innermost scope: the protocol "
                        "that sent) or per scope path; in text, JSON and CSV")


def _run_options(p, seq_help: str, seq_default):
    """The options decode and sweep share: model, policies' run, ring, seeds, outputs."""
    p.add_argument("--model", default="llama2-7b", help="built-in model (gpt2, mpcache-proxy, llama2-7b, ...)")
    p.add_argument("--model-config", default=None, metavar="CONFIG.json",
                   help="a Hugging Face config.json (or its directory) instead of --model: LLaMA, Mistral/Qwen-style "
                        "GQA, GPT-2")
    p.add_argument("--seq", type=str if isinstance(seq_default, str) else _positive, default=seq_default,
                   help=seq_help)
    p.add_argument("--parties", type=_positive, default=None, help="parties (default 2; 3 with --scheme aby3)")
    _scheme_option(p)
    p.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    p.add_argument("--ring", type=int, choices=(32, 64), default=64, help="ring bits K")
    p.add_argument("--seed", type=int, default=0, help="seed of the session and the model's random weights")
    p.add_argument("--seeds", type=_positive, default=1,
                   help="run seeds --seed .. --seed+N-1: means, and 95%% intervals of the step totals")
    p.add_argument("--net", default="lan,wan", help="profiles: names or BANDWIDTH/PING, comma-separated")
    p.add_argument("--compute", action="store_true", help="add calibrated local compute time")
    p.add_argument("--softmax", choices=("exact", "puma"), default="exact",
                   help="every softmax of the run (attention, prefill selections): exact (default) or puma (the "
                        "MPCache scripts' hack_softmax)")
    p.add_argument("--save", default=None, help="also write the JSON to this file (mpsim compare reads it)")
    _offline_option(p)
    _by_option(p)


def _offline_option(p):
    p.add_argument("--offline", default=None, metavar="GEN[,GEN...]",
                   help="price the preprocessing by how it is made: dealer (default; 3pc with --scheme aby3), ot "
                        "(IKNP + Gilboa), silent-ot (Ferret), he (Cheetah-style matrix triples), 3pc")


def _generators(args) -> list[str]:
    """--offline as a list of known generator names (default: the scheme's own way)."""
    from costmodel.generators import check_scheme

    text = args.offline or ("3pc" if args.scheme == "aby3" else "dealer")
    names = [g.strip() for g in text.split(",") if g.strip()]
    if not names:
        raise ValueError(f"bad --offline {text!r}: name a generator (dealer, ot, silent-ot, he, 3pc)")
    for name in names:
        check_scheme(name, args.scheme)
    return list(dict.fromkeys(names))


def _scheme_option(p):
    p.add_argument("--scheme", default="additive",
                   help="sharing scheme: additive (N parties, trusted dealer), aby3 (3 parties, replicated; no "
                        "reusable masks, so MPCache gathers by cluster) or fss (2 parties, the additive scheme with "
                        "comparisons and non-linear functions by function secret sharing)")


def _default_parties(args) -> None:
    """--parties left out: the scheme's party count (3 for aby3, else 2)."""
    if args.parties is None:
        args.parties = 3 if args.scheme == "aby3" else 2


def _session_for(args):
    from mpsim.session import Session

    _default_parties(args)
    return Session(parties=args.parties, ring_bits=args.ring, frac_bits=args.frac, seed=args.seed,
                   backend=args.backend, scheme=args.scheme)


def _compute_model(args):
    """The compute-time term: calibrated on this machine's kernels with --compute, else not modelled."""
    if not args.compute:
        return None
    from costmodel.latency import calibrate

    return calibrate()


def _approx(args):
    """The non-linear configuration the --softmax flag asks for (None: the defaults)."""
    if getattr(args, "softmax", "exact") == "exact":
        return None
    from protocols import NonlinearConfig

    return NonlinearConfig(softmax_method=args.softmax)

"""The ``mpsim`` command line.

* ``mpsim op NAME --shape 32x512 [--axis -1] [--parties 2] [--backend count|ideal|share] [--net lan,wan]``:
  run one operation on random inputs and print its breakdown (scopes, rounds, bytes, time per network);
  ``--sweep N=128,256,512`` with ``N`` in the shape runs it at each value and prints the curve
  (``--plot FILE.png`` draws it; needs the ``[plot]`` extra); ``--save FILE.json`` keeps the report.
  ``mpsim op --list`` lists the operations.
* ``mpsim table``: the declared-cost table (markdown), as in ``docs/complexity.md``.
* ``mpsim profiles``: the network presets.
* ``mpsim compare A.json B.json ...``: saved results side by side, with ratios against the first
  (``compare.py``).
* ``mpsim decode`` / ``mpsim sweep``: per-step costs of KV-cache policies in private decoding (``decode.py``).
* ``mpsim generate``: the cost of one generated answer, prefill included (``generate.py``).
* ``mpsim demo``: the README's main job (MPCache vs full attention on llama2-7b at 4096 tokens).

Every command that prints numbers takes ``--json`` or ``--csv``. Errors from bad arguments are one
readable line and exit status 2, never a traceback; output files (``--save``, ``--plot``) are checked
before any work is done. ``python -m mpsim`` is the same command line.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import sys
from pathlib import Path

from .common import _Parser, _check_output, _check_plot, _compute_model, _console, _default_parties, _emit_structured, _fmt_s, \
    _by_option, _offline_option, _positive, _run_options, _scheme_option, _session_for, _stderr_console, _structured, \
    _write_output
from .compare import _compare
from .decode import _decode, _sweep_decode
from .generate import _generate
from .op_sweep import _sweep, seed_summary


# -- commands ---------------------------------------------------------------------------------------------------
def _table(args) -> int:
    from protocols.registry import declarations, markdown_table

    rows = declarations()
    fields = list(rows[0])
    csv_text = io.StringIO()
    writer = csv.DictWriter(csv_text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    if _emit_structured(args, json.dumps({"declarations": rows}, indent=2), csv_text.getvalue()):
        return 0
    sys.stdout.write(markdown_table())
    return 0


def _profiles(args) -> int:
    from costmodel.profiles import PROFILES

    rows = [{"name": p.name, "bandwidth_bps": p.bandwidth_bps, "rtt_s": p.rtt_s, "source": p.source}
            for p in PROFILES.values()]
    csv = "name,bandwidth_bps,rtt_s,source\n" + "".join(
        f"{r['name']},{r['bandwidth_bps']},{r['rtt_s']},\"{r['source']}\"\n" for r in rows)
    if _emit_structured(args, json.dumps({"profiles": rows}, indent=2), csv):
        return 0
    from rich.table import Table

    table = Table(title="Network profiles (--net NAME, or BANDWIDTH/PING such as 1gbit/0.5ms)")
    for col in ("name", "bandwidth", "ping (RTT)", "source"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"{r['bandwidth_bps'] / 1e6:g} Mbit/s", f"{r['rtt_s'] * 1e3:g} ms", r["source"])
    _console(args).print(table)
    return 0


def _op(args) -> int:
    from .ops import OPS, parse_shape, run_op

    if args.list:
        for name, op in OPS.items():
            print(f"{name:18s} {op.inputs:12s} {op.doc}")
        return 0
    if not args.name:
        raise ValueError("name an operation (mpsim op --list shows them)")
    _default_parties(args)
    from costmodel.profiles import parse_profiles

    profiles = parse_profiles(args.net)
    _check_output(args.save, "--save")
    _check_plot(args.plot)
    if args.sweep:
        return _sweep(args, profiles)
    if args.plot:
        raise ValueError("--plot draws the curve of a sweep: add --sweep VAR=V1,V2,... (e.g. N=128,256,512)")
    from costmodel.report import Report, render, to_csv, to_json

    shape = parse_shape(args.shape)
    session = _session_for(args)
    quiet = args.json or args.csv
    with (_stderr_console() if quiet else _console(args)).status(f"running {args.name} on {args.backend}"):
        run_op(session, args.name, shape, axis=args.axis, k=args.k, n=args.n, method=args.method, seed=args.seed)
    compute = _compute_model(args)
    label = " ".join([args.name, args.shape] + ([f"method={args.method}"] if args.method != "auto" else [])
                     + ([f"k={args.k}"] if args.k else []) + ([f"n={args.n}"] if args.n else []))
    report = Report.from_session(session, profiles=profiles, name=label, compute=compute,
                                 extra_config={"op": args.name, "shape": list(shape), "axis": args.axis,
                                               "k": args.k, "n": args.n, "method": args.method})
    if args.trace:
        from costmodel.trace import write_trace

        _write_output(args.trace, lambda path: write_trace(session, path, profiles[0]), "--trace")
    payload = to_json(report)
    rows = stats = None
    if args.by:
        from costmodel.breakdown import breakdown

        rows = breakdown(session, args.by, profiles)
    if args.seeds > 1:
        stats = _seed_stats(args, shape, profiles, compute)
    if rows is not None or stats is not None:
        extra = {"breakdown": {"by": args.by, "rows": rows}} if rows is not None else {}
        extra.update({"seed_stats": stats} if stats is not None else {})
        payload = json.dumps({**report.as_dict(), **extra}, indent=2) + "\n"
    if args.save:
        _write_output(args.save, lambda path: Path(path).write_text(payload), "--save")
    csv_text = None
    if args.csv:
        from costmodel.report import breakdown_csv

        csv_text = breakdown_csv(rows, profiles) if rows is not None else to_csv(report)
    if _emit_structured(args, payload, csv_text):
        return 0
    console = _console(args)
    if rows is not None:
        from costmodel.report import render_breakdown

        render_breakdown(rows, profiles, args.by, f"{label}: by {args.by}", console)
    render(report, console, tree=rows is None)
    if stats is not None:
        def show(st, fmt):
            return f"mean {fmt(st['mean'])} [{fmt(st['lo'])}, {fmt(st['hi'])}]"

        times = ", ".join(f"{p} {show(st, _fmt_s)}" for p, st in stats["latency_s"].items())
        console.print(f"  over seeds {args.seed}..{args.seed + args.seeds - 1} (95% interval): rounds "
                      f"{show(stats['rounds'], lambda v: f'{v:,.1f}')}; time {times}")
    if args.trace:
        console.print(f"trace written to {args.trace} (open it in https://ui.perfetto.dev or chrome://tracing)")
    if args.save:
        console.print(f"saved to {args.save}")
    return 0


def _seed_stats(args, shape, profiles, compute) -> dict:
    """The op's rounds and latency over --seeds sessions (the report above is the first seed's)."""
    from .op_sweep import _run

    runs = [_run(args, shape, profiles, compute, seed)[0] for seed in range(args.seed, args.seed + args.seeds)]
    return seed_summary(runs)["seed_stats"]


def _floats(text: str, what: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"bad {what} {text!r}: use numbers separated by commas") from None
    if not values:
        raise ValueError(f"bad {what} {text!r}: use numbers separated by commas")
    return values


def _quality(args) -> int:
    """Eviction quality on a real small model (needs the [eval] extra), beside each policy's MPC cost."""
    from rich.progress import Progress

    from mpcache.eval.model import EvalUnavailable, missing
    from mpcache.eval import report, study

    budgets = _floats(args.budgets, "--budgets")
    if any(not 0 < b <= 1 for b in budgets):
        raise ValueError(f"bad --budgets {args.budgets!r}: fractions in (0, 1]")
    policies = tuple(p for p in args.policies.split(",") if p)
    reason = missing()
    if reason:
        print(f"mpsim quality: {reason}", file=sys.stderr)
        return 2
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib: pip install -e '.[plot]'")
    _check_plot(args.plot)
    cfg = study.StudyConfig(model=args.model, policies=policies, budgets=budgets, windows=args.windows,
                            context=args.context, steps=args.steps, seed=args.seed,
                            needle_contexts=tuple(int(c) for c in _floats(args.needle, "--needle")) if args.needle else (),
                            numerics_windows=args.numerics, costs=not args.no_cost)
    with Progress(console=_stderr_console(), transient=True) as bar:
        def progress(kind, total):
            task = bar.add_task(kind, total=total)
            return lambda: bar.advance(task)

        try:
            result = study.run(cfg, progress)
        except EvalUnavailable as err:
            print(f"mpsim quality: {err}", file=sys.stderr)
            return 2
    if args.plot:
        _write_output(args.plot, lambda path: report.plot(result, path), "--plot")
    if _emit_structured(args, json.dumps(result, indent=2), None):
        return 0
    console = _console(args)
    report.render(result, console)
    if args.plot:
        console.print(f"plot written to {args.plot}")
    return 0


_SUITES = {"additive": "Beaver products and edaBit comparisons, trusted dealer",
           "fss": "function secret sharing for comparisons and non-linear functions: fewer rounds, larger keys",
           "aby3": "3 parties, replicated sharing, no dealer"}


def _demo(args) -> int:
    """The README's main job: MPCache vs full attention, one decode step of llama2-7b at 4096 tokens, LAN
    and WAN (count backend). ``--block`` prints the smaller attention-block breakdown instead."""
    if not args.block:
        seq = args.seq or 4096
        decode_args = build_parser().parse_args(
            ["decode", "--model", args.model, "--seq", str(seq), "--policy", "full", "--compare", "mpcache",
             "--backend", args.backend, "--scheme", args.scheme, "--net", "lan,wan"]
            + (["--offline", args.offline] if args.offline else [])
            + (["--parties", str(args.parties)] if args.parties else [])
            + (["--width", str(args.width)] if args.width else [])
            + (["--json"] if args.json else ["--csv"] if args.csv else []))
        code = _decode(decode_args)
        if not (args.json or args.csv):
            _console(args).print(
                "[yellow]Note:[/] per-step cost after a prefilled cache; offline: the preprocessing under --offline "
                "(dealer by default; silent-ot, he or ot price it without a dealer); the one-off setup (sharing or masking "
                "weights and cache, MPCache's look-once static eviction) is the last row. The MPCache paper's cost claims, "
                "measured: docs/results.md; quality on a real model: docs/quality.md.")
            _console(args).print(f"Suite: {args.scheme} ({_SUITES.get(args.scheme, '')}). Others: "
                             + ", ".join(f"--scheme {k} ({v})" for k, v in _SUITES.items() if k != args.scheme) + ".")
        return code
    from .demo import attention_block_breakdown, breakdown_rows

    if args.scheme != "additive":
        raise ValueError("--block breaks down the additive scheme's attention block (its reusable masked "
                         "operands); for another scheme use the whole-model demo: mpsim demo --scheme "
                         f"{args.scheme}")
    _default_parties(args)
    args.seq = args.seq or 1024

    quiet = args.json or args.csv
    session = attention_block_breakdown(seq=args.seq, heads=args.heads, head_dim=args.head_dim,
                                        parties=args.parties, backend=args.backend, show=not quiet)
    if quiet:
        rows = breakdown_rows(session)
        csv = "scope,rounds,max_sent_bytes,offline_bytes\n" + "".join(
            f"{r['scope']},{r['rounds']},{max(r['sent_bytes'])},{r['offline_bytes']}\n" for r in rows)
        _emit_structured(args, json.dumps({"seq": args.seq, "heads": args.heads, "head_dim": args.head_dim,
                                           "parties": args.parties, "rows": rows}, indent=2), csv)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mpsim", description="MPC protocol simulator with an exact cost model")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    table = sub.add_parser("table", help="print the declared-cost table (markdown; --json or --csv: one row per "
                                         "scheme and protocol)")
    _structured(table)
    table.set_defaults(run=_table)

    profiles = sub.add_parser("profiles", help="the network presets")
    _structured(profiles)
    profiles.set_defaults(run=_profiles)

    op = sub.add_parser("op", help="run one operation on random inputs and print its cost breakdown")
    op.add_argument("name", nargs="?", help="operation (mpsim op --list)")
    op.add_argument("--list", action="store_true", help="list the operations")
    op.add_argument("--shape", default="32x512", help="input shape, e.g. 32x512 (MxKxN for matmul)")
    op.add_argument("--axis", type=int, default=-1, help="axis for reductions, softmax, top-k")
    op.add_argument("--k", type=_positive, default=None, help="k for top-k (default min(50, n))")
    op.add_argument("--n", type=_positive, default=None, help="positions for one-hot")
    op.add_argument("--method", default="auto", help="top-k method: auto, max, sort, shuffle")
    op.add_argument("--parties", type=_positive, default=None, help="parties (default 2; 3 with --scheme aby3)")
    _scheme_option(op)
    op.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    op.add_argument("--ring", type=int, choices=(32, 64), default=64, help="ring bits K")
    op.add_argument("--frac", type=int, default=None, help="fractional bits f (default 16, or 8 with --ring 32)")
    op.add_argument("--seed", type=int, default=0)
    op.add_argument("--seeds", type=_positive, default=1,
                    help="run seeds --seed .. --seed+N-1: means and 95%% intervals (randomized protocols)")
    op.add_argument("--net", default="lan,wan", help="profiles: names or BANDWIDTH/PING, comma-separated")
    op.add_argument("--sweep", default=None, help="VAR=V1,V2,... with VAR in --shape, e.g. N=128,256,512")
    op.add_argument("--plot", default=None, help="with --sweep: write the curves to this PNG")
    op.add_argument("--save", default=None, help="write the report as JSON to this file")
    op.add_argument("--compute", action="store_true",
                    help="add local compute time, calibrated on this machine's kernels")
    op.add_argument("--trace", default=None, metavar="TRACE.json",
                    help="write the run as a Chrome/Perfetto trace (durations on the first --net profile)")
    _by_option(op)
    _structured(op)
    op.set_defaults(run=_op)

    compare = sub.add_parser("compare", help="saved reports side by side")
    compare.add_argument("reports", nargs="+", help="saved results: mpsim op/decode/sweep ... --save FILE (or --json)")
    _structured(compare)
    compare.set_defaults(run=_compare)

    decode = sub.add_parser("decode", help="per-step cost of KV-cache policies in private decoding")
    _run_options(decode, "tokens in the KV cache before the step", 2048)
    decode.add_argument("--policy", default="full",
                        help="policy, with hyperparameters as NAME:FIELD=VALUE,... (e.g. mpcache:keep_ratio=0.2,"
                             "cluster_sizes=16/8)")
    decode.add_argument("--compare", default="", help="more policies, comma-separated, for side-by-side ratios")
    decode.add_argument("--steps", type=_positive, default=1, help="decode steps; the last one is reported")
    decode.add_argument("--no-reuse", action="store_true", help="plain Beaver products (no reusable masks)")
    decode.add_argument("--attention-only", action="store_true", help="skip the MLP")
    decode.add_argument("--inventory", action="store_true",
                        help="also list the correlations the step consumes (kind, parameters, units, dealer bytes); "
                             "the JSON always has them")
    decode.add_argument("--trace", default=None, metavar="TRACE.json",
                        help="write the step (first seed) as a Chrome/Perfetto trace: a process per policy, a "
                             "track per party, a slice per round")
    decode.add_argument("--trace-net", default=None, help="the profile the trace's durations use (default: the "
                                                          "first of --net)")
    _structured(decode)
    decode.set_defaults(run=_decode)

    sweep = sub.add_parser("sweep", help="per-step latency and communication of policies over sequence lengths")
    _run_options(sweep, "comma-separated sequence lengths", "512,1024,2048,4096")
    sweep.add_argument("--policy", default="full", help="comma-separated policies (NAME:FIELD=VALUE,... as decode)")
    sweep.add_argument("--plot", default=None, help="write latency and communication curves (PNG, PDF or SVG)")
    _structured(sweep)
    sweep.set_defaults(run=_sweep_decode)

    generate = sub.add_parser("generate", help="the cost of one generated answer per policy: prefill, setup, N decode "
                                               "steps, online and offline, and the break-even against full attention")
    generate.add_argument("--model", default="llama2-7b", help="built-in model")
    generate.add_argument("--model-config", default=None, metavar="CONFIG.json", help="a Hugging Face config.json")
    generate.add_argument("--prompt", type=_positive, default=4096, help="prompt tokens")
    generate.add_argument("--new", type=_positive, default=128, help="generated tokens (every decode step is run)")
    generate.add_argument("--policy", default="full", help="policy (NAME:FIELD=VALUE,... as decode)")
    generate.add_argument("--compare", default="", help="more policies, comma-separated")
    generate.add_argument("--prefill", choices=("private", "plaintext"), default="private",
                          help="private: the prompt prefilled under MPC (default); plaintext: the data owner prefilled "
                               "and shares the cache (the MPCache paper's evaluation)")
    generate.add_argument("--parties", type=_positive, default=None, help="parties (default 2; 3 with --scheme aby3)")
    _scheme_option(generate)
    generate.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    generate.add_argument("--ring", type=int, choices=(32, 64), default=64, help="ring bits K")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--net", default="lan,wan", help="profiles: names or BANDWIDTH/PING, comma-separated")
    generate.add_argument("--save", default=None, help="also write the JSON to this file")
    _offline_option(generate)
    _structured(generate)
    generate.set_defaults(run=_generate)

    quality = sub.add_parser("quality", help="eviction quality on a real small model, beside MPC cost "
                                             "(needs pip install -e '.[eval]')")
    quality.add_argument("--model", default="smollm2", help="real model (smollm2)")
    quality.add_argument("--budgets", default="0.05,0.1,0.2,0.5", help="fractions of the prompt attended per step")
    quality.add_argument("--policies", default=",".join(("streaming", "h2o", "tova", "snapkv", "quest",
                                                          "naive-dynamic", "mpcache", "oracle", "random")),
                         help="registered policies and the references oracle, random")
    quality.add_argument("--windows", type=_positive, default=16, help="text windows (teacher-forced metrics)")
    quality.add_argument("--context", type=_positive, default=512, help="prompt tokens per window")
    quality.add_argument("--steps", type=_positive, default=8, help="teacher-forced steps per window")
    quality.add_argument("--needle", default="", help="needle-in-a-haystack context lengths, e.g. 1024,2048")
    quality.add_argument("--numerics", type=int, default=0, help="windows for the MPC-numerics comparison")
    quality.add_argument("--seed", type=int, default=0)
    quality.add_argument("--no-cost", action="store_true", help="skip the MPC cost column")
    quality.add_argument("--plot", default=None, help="write the accuracy-cost plot to this PNG")
    _structured(quality, csv=False)
    quality.set_defaults(run=_quality)

    demo = sub.add_parser("demo", help="MPCache vs full attention: one private decode step of llama2-7b")
    demo.add_argument("--model", default="llama2-7b", help="built-in model (default llama2-7b)")
    demo.add_argument("--block", action="store_true",
                      help="instead: one attention block's breakdown (--seq, --heads, --head-dim)")
    demo.add_argument("--seq", type=_positive, default=None, help="KV cache length (default 4096; 1024 with --block)")
    demo.add_argument("--heads", type=_positive, default=12, help="attention heads (default 12)")
    demo.add_argument("--head-dim", type=_positive, default=64, help="head dimension (default 64)")
    demo.add_argument("--parties", type=_positive, default=None, help="parties (default 2; 3 with --scheme aby3)")
    _scheme_option(demo)
    _offline_option(demo)
    demo.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    _structured(demo)
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from protocols.registry import PluginError

    try:
        return args.run(args)
    except (ValueError, TypeError, KeyError, IndexError, NotImplementedError, PluginError) as err:
        message = err.args[0] if err.args else str(err)
        print(f"mpsim {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

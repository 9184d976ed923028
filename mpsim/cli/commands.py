"""The ``mpsim`` command line.

* ``mpsim op NAME --shape 32x512 [--axis -1] [--parties 2] [--backend count|ideal|share] [--net lan,wan]``:
  run one operation on random inputs and print its breakdown (scopes, rounds, bytes, time per network);
  ``--sweep N=128,256,512`` with ``N`` in the shape runs it at each value and prints the curve
  (``--plot FILE.png`` draws it; needs the ``[plot]`` extra); ``--save FILE.json`` keeps the report.
  ``mpsim op --list`` lists the operations.
* ``mpsim table``: the declared-cost table (markdown), as in ``docs/complexity.md``.
* ``mpsim profiles``: the network presets.
* ``mpsim compare A.json B.json ...``: saved reports side by side, with ratios against the first.
* ``mpsim decode`` / ``mpsim sweep``: per-step costs of KV-cache policies in private decoding.
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

from .common import _Parser, _check_output, _compute_model, _console, _default_parties, _emit_structured, _fmt_s, \
    _positive, _scheme_option, _session_for, _stderr_console, _structured, _write_output
from .decode import _decode, _sweep_decode
from .plots import _plot











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
    _console().print(table)
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
    _check_output(args.plot, "--plot")
    if args.sweep:
        return _sweep(args, profiles)
    if args.plot:
        raise ValueError("--plot draws the curve of a sweep: add --sweep VAR=V1,V2,... (e.g. N=128,256,512)")
    from costmodel.report import Report, render, to_csv, to_json

    shape = parse_shape(args.shape)
    session = _session_for(args)
    quiet = args.json or args.csv
    with (_stderr_console() if quiet else _console()).status(f"running {args.name} on {args.backend}"):
        run_op(session, args.name, shape, axis=args.axis, k=args.k, n=args.n, method=args.method, seed=args.seed)
    compute = _compute_model(args)
    label = " ".join([args.name, args.shape] + ([f"method={args.method}"] if args.method != "auto" else [])
                     + ([f"k={args.k}"] if args.k else []) + ([f"n={args.n}"] if args.n else []))
    report = Report.from_session(session, profiles=profiles, name=label, compute=compute,
                                 extra_config={"op": args.name, "shape": list(shape), "axis": args.axis,
                                               "k": args.k, "n": args.n, "method": args.method})
    if args.save:
        _write_output(args.save, lambda path: Path(path).write_text(to_json(report)), "--save")
    if _emit_structured(args, to_json(report) if args.json else None, to_csv(report) if args.csv else None):
        return 0
    render(report, _console())
    if args.save:
        _console().print(f"saved to {args.save}")
    return 0




def _parse_sweep(text: str) -> tuple[str, list[int]]:
    if "=" not in text:
        raise ValueError(f"bad --sweep {text!r}: use NAME=V1,V2,... e.g. N=128,256,512")
    name, values = text.split("=", 1)
    name = name.strip().upper()
    if not name.isalpha():
        raise ValueError(f"bad --sweep variable {name!r}: use a letter such as N")
    try:
        points = [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"bad --sweep values {values!r}: use positive integers separated by commas") from None
    if not points or min(points) <= 0:
        raise ValueError(f"bad --sweep values {values!r}: use positive integers separated by commas")
    return name, points


def _sweep(args, profiles) -> int:
    from rich.progress import Progress

    from costmodel.latency import estimate

    from .ops import parse_shape, run_op

    var, points = _parse_sweep(args.sweep)
    compute = _compute_model(args)
    if var not in args.shape.upper():
        raise ValueError(f"--sweep variable {var} does not appear in --shape {args.shape}")
    rows = []
    with Progress(transient=True, console=None if not (args.json or args.csv) else _stderr_console()) as bar:
        task = bar.add_task(f"{args.name} over {var}", total=len(points))
        for value in points:
            shape = parse_shape(args.shape, {var: value})
            session = _session_for(args)
            run_op(session, args.name, shape, axis=args.axis, k=args.k, n=args.n, method=args.method, seed=args.seed)
            c = session.cost()
            row = {var: value, "shape": list(shape), "rounds": c.rounds, "sequential_rounds": c.sequential_rounds,
                   "sent_bytes": list(c.sent), "offline_bytes": c.offline_bytes,
                   "latency_s": {p.name: estimate(session, p, compute=compute).total_s for p in profiles}}
            rows.append(row)
            bar.advance(task)
    result = {"op": args.name, "shape": args.shape, "variable": var, "parties": args.parties,
              "backend": args.backend, "points": rows}
    csv_lines = [",".join([var, "rounds", "sequential_rounds", "max_sent_bytes", "offline_bytes"]
                          + [f"latency_s_{p.name}" for p in profiles])]
    for r in rows:
        csv_lines.append(",".join(str(v) for v in [r[var], r["rounds"], r["sequential_rounds"], max(r["sent_bytes"]),
                                                    r["offline_bytes"]] + [r["latency_s"][p.name] for p in profiles]))
    if args.plot:
        _write_output(args.plot, lambda path: _plot(result, profiles, path), "--plot")
    if _emit_structured(args, json.dumps(result, indent=2), "\n".join(csv_lines) + "\n"):
        return 0
    from rich.table import Table

    table = Table(title=f"{args.name}, shape {args.shape}, {args.parties} parties, {args.backend} backend")
    for col in [var, "rounds", "bytes / party", "offline bytes"] + [f"time {p.name}" for p in profiles]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r[var]), str(r["rounds"]), f"{max(r['sent_bytes']):,.0f}", f"{r['offline_bytes']:,.0f}",
                      *[_fmt_s(r["latency_s"][p.name]) for p in profiles])
    console = _console()
    console.print(table)
    if args.plot:
        console.print(f"plot written to {args.plot}")
    return 0








def _compare(args) -> int:
    from costmodel.report import from_json, render_comparison, to_csv

    reports = []
    for path in args.reports:
        try:
            reports.append(from_json(Path(path).read_text()))
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror}") from None
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a saved mpsim report (mpsim op ... --save FILE): {err}") from None
    if args.json:
        sys.stdout.write(json.dumps(_comparison_dict(reports), indent=2) + "\n")
        return 0
    if args.csv:
        sys.stdout.write("".join(to_csv(r) for r in reports))
        return 0
    render_comparison(reports, _console())
    return 0


def _comparison_dict(reports) -> dict:
    """Totals of each run and their ratios against the first (what `compare` prints, as data)."""
    runs = []
    for r in reports:
        t = r.as_dict()["totals"]
        runs.append({"name": r.name, "rounds": t["rounds"], "max_sent_bytes": max(t["sent_bytes"]),
                     "offline_bytes": t["offline_bytes"],
                     "seconds": {name: e["total_s"] for name, e in t["estimates"].items()}})
    base = runs[0]

    def ratio(a, b):
        return a / b if b else None

    for run in runs:
        run["ratio_vs_first"] = {
            "rounds": ratio(run["rounds"], base["rounds"]),
            "max_sent_bytes": ratio(run["max_sent_bytes"], base["max_sent_bytes"]),
            "offline_bytes": ratio(run["offline_bytes"], base["offline_bytes"]),
            "seconds": {k: ratio(v, base["seconds"].get(k, 0)) for k, v in run["seconds"].items()},
        }
    return {"runs": runs}














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
    _check_output(args.plot, "--plot")
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
    console = _console()
    if not console.is_terminal:  # a pipe or a file: no terminal width to respect, keep the 11 columns legible
        console.width = 160
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
        decode_args = argparse.Namespace(
            model=args.model, seq=seq, policy="full", compare="mpcache", parties=args.parties,
            backend=args.backend, no_reuse=False, attention_only=False, steps=1, net="lan,wan", compute=False,
            json=args.json, csv=args.csv, scheme=args.scheme)
        code = _decode(decode_args)
        if not (args.json or args.csv):
            _console().print(
                "[yellow]Note:[/] per-step cost after a prefilled cache; the one-off setup (sharing or masking "
                "weights and cache, MPCache's look-once static eviction) is the last row. The MPCache paper's cost claims, "
                "measured: docs/results.md; quality on a real model: docs/quality.md.")
            _console().print(f"Suite: {args.scheme} ({_SUITES.get(args.scheme, '')}). Others: "
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
    op.add_argument("--net", default="lan,wan", help="profiles: names or BANDWIDTH/PING, comma-separated")
    op.add_argument("--sweep", default=None, help="VAR=V1,V2,... with VAR in --shape, e.g. N=128,256,512")
    op.add_argument("--plot", default=None, help="with --sweep: write the curves to this PNG")
    op.add_argument("--save", default=None, help="write the report as JSON to this file")
    op.add_argument("--compute", action="store_true",
                    help="add local compute time, calibrated on this machine's kernels")
    _structured(op)
    op.set_defaults(run=_op)

    compare = sub.add_parser("compare", help="saved reports side by side")
    compare.add_argument("reports", nargs="+", help="JSON reports (mpsim op ... --save FILE)")
    _structured(compare)
    compare.set_defaults(run=_compare)

    decode = sub.add_parser("decode", help="per-step cost of KV-cache policies in private decoding")
    decode.add_argument("--model", default="llama2-7b", help="built-in model (gpt2, mpcache-proxy, llama2-7b, ...)")
    decode.add_argument("--seq", type=_positive, default=2048, help="tokens in the KV cache before the step")
    decode.add_argument("--policy", default="full", help="policy (full, streaming, ...)")
    decode.add_argument("--compare", default="", help="more policies, comma-separated, for side-by-side ratios")
    decode.add_argument("--parties", type=_positive, default=None, help="parties (default 2; 3 with --scheme aby3)")
    _scheme_option(decode)
    decode.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    decode.add_argument("--steps", type=_positive, default=1, help="decode steps; the last one is reported")
    decode.add_argument("--no-reuse", action="store_true", help="plain Beaver products (no reusable masks)")
    decode.add_argument("--attention-only", action="store_true", help="skip the MLP")
    decode.add_argument("--net", default="lan,wan")
    decode.add_argument("--compute", action="store_true", help="add calibrated local compute time")
    decode.add_argument("--softmax", choices=("exact", "puma"), default="exact",
                        help="every softmax of the run (attention, prefill selections): exact (default) or puma (the "
                             "MPCache scripts' hack_softmax)")
    decode.add_argument("--inventory", action="store_true",
                        help="also list the correlations the step consumes (kind, parameters, units, dealer bytes); "
                             "the JSON always has them")
    _structured(decode)
    decode.set_defaults(run=_decode)

    sweep = sub.add_parser("sweep", help="per-step latency and communication of policies over sequence lengths")
    sweep.add_argument("--model", default="llama2-7b")
    sweep.add_argument("--seq", default="512,1024,2048,4096", help="comma-separated sequence lengths")
    sweep.add_argument("--policy", default="full", help="comma-separated policies")
    sweep.add_argument("--parties", type=_positive, default=None, help="parties (default 2; 3 with --scheme aby3)")
    _scheme_option(sweep)
    sweep.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    sweep.add_argument("--net", default="lan,wan")
    sweep.add_argument("--compute", action="store_true", help="add calibrated local compute time")
    sweep.add_argument("--softmax", choices=("exact", "puma"), default="exact",
                       help="every softmax of the run (attention, prefill selections): exact (default) or puma (the "
                             "MPCache scripts' hack_softmax)")
    sweep.add_argument("--plot", default=None, help="write latency and communication curves to this PNG")
    _structured(sweep)
    sweep.set_defaults(run=_sweep_decode)

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
    quality.add_argument("--json", action="store_true", help="print JSON")
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
    demo.add_argument("--backend", choices=("count", "ideal", "share"), default="count")
    _structured(demo)
    demo.set_defaults(run=_demo)
    return parser






def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, KeyError, IndexError, NotImplementedError) as err:
        message = err.args[0] if err.args else str(err)
        print(f"mpsim {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

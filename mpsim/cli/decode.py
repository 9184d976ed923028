"""``mpsim decode`` and ``mpsim sweep``: per-step costs of KV-cache policies in private decoding."""
from __future__ import annotations

import json

from .common import _check_output, _compute_model, _approx, _console, _default_parties, _emit_structured, _fmt_s, \
    _stderr_console, _write_output
from .plots import _plot_decode


def _decode(args) -> int:
    """Per-step breakdown of one or more KV policies on a model, with ratios against the first."""
    from mpcache.workload import BREAKDOWN, compare

    names = [args.policy] + [p for p in (args.compare.split(",") if args.compare else []) if p and p != args.policy]
    _default_parties(args)
    summaries = compare(args.model, args.seq, names, parties=args.parties, backend=args.backend,
                        reuse=not args.no_reuse, attention_only=args.attention_only, steps=args.steps,
                        profiles=args.net, compute=_compute_model(args), approx=_approx(args), scheme=args.scheme)
    result = {"model": args.model, "seq_len": args.seq, "parties": args.parties,
              "policies": [s.as_dict() for s in summaries]}
    csv_rows = ["policy,rounds,max_sent_bytes,offline_bytes," + ",".join(f"latency_s_{k}" for k in summaries[0].latency_s)]
    for s_ in summaries:
        csv_rows.append(",".join(str(v) for v in [s_.name, s_.rounds, max(s_.sent_bytes), s_.offline_bytes,
                                                   *s_.latency_s.values()]))
    if _emit_structured(args, json.dumps(result, indent=2), "\n".join(csv_rows) + "\n"):
        return 0
    from rich.table import Table

    base = summaries[0]
    table = Table(title=f"One private decode step: {args.model}, {args.seq} tokens, {args.parties} parties "
                        f"({args.backend} backend, {args.scheme}, reuse {'on' if summaries[0].config['reuse'] else 'off'})")
    table.add_column("scope", no_wrap=True)
    for s_ in summaries:
        table.add_column(f"{s_.name}\nMB/party", justify="right")
    for scope in BREAKDOWN:
        if any(scope in s_.scopes for s_ in summaries):
            table.add_row(scope, *[f"{max(s_.scopes[scope]['sent_bytes']) / 1e6:,.2f}" if scope in s_.scopes else "-"
                                   for s_ in summaries])
    table.add_row("step total", *[f"{max(s_.sent_bytes) / 1e6:,.2f}" for s_ in summaries], style="bold")
    table.add_row("rounds", *[str(s_.rounds) for s_ in summaries])
    for prof in base.latency_s:
        table.add_row(f"latency {prof}", *[_fmt_s(s_.latency_s[prof]) for s_ in summaries])
    table.add_row("one-off setup MB/party", *[f"{max(s_.setup['sent_bytes']) / 1e6:,.1f}" for s_ in summaries],
                  style="dim")
    console = _console()
    console.print(table)
    for s_ in summaries[1:]:
        ratios = ", ".join(f"{prof} {base.latency_s[prof] / s_.latency_s[prof]:.2f}x" for prof in base.latency_s)
        console.print(f"{base.name} / {s_.name}: communication {max(base.sent_bytes) / max(s_.sent_bytes):.2f}x, "
                      f"latency {ratios} (above 1: {base.name} costs more)")
    if getattr(args, "inventory", False):
        console.print(_inventory_table(summaries, args))
    return 0


def _short_count(n: int) -> str:
    """1,234 / 12.3k / 5.43M / 2.1G: counts that fit a narrow column."""
    for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e4)):
        if n >= size:
            return f"{n / (size if suffix != 'k' else 1e3):.3g}{suffix}"
    return f"{n:,}"


def _inventory_table(summaries, args):
    """The step's correlations per policy: kind, one unit's parameters, units, and the dealer's bytes."""
    from rich.table import Table

    from costmodel.preprocessing import dealer_bits

    K = summaries[0].config.get("ring_bits", 64)
    counts = [{(k, d): u for k, d, u in s_.inventory} for s_ in summaries]
    kinds = sorted({kd for c in counts for kd in c}, key=lambda kd: (kd[0], repr(kd[1])))
    table = Table(title=f"Correlations consumed by the step ({args.scheme}; dealer MB: to all parties)")
    table.add_column("correlation", no_wrap=True)
    table.add_column("one unit", no_wrap=True)
    for s_ in summaries:
        table.add_column(f"{s_.name}\nunits", justify="right")
        table.add_column(f"{s_.name}\ndealer MB", justify="right")
    for kind, dims in kinds:
        cells = []
        for s_, count in zip(summaries, counts):
            units = count.get((kind, dims), 0)
            mb = sum(dealer_bits({(kind, dims): units}, K, s_.parties)) / 8e6
            cells += [_short_count(units) if units else "-", f"{mb:,.2f}" if units else "-"]
        table.add_row(kind, " x ".join(str(v) for v in dims) or "-", *cells)
    return table


def _sweep_decode(args) -> int:
    """Latency and communication of KV policies against sequence length (table, JSON/CSV, optional PNG)."""
    from rich.progress import Progress

    from mpcache.workload import measure

    try:
        seqs = [int(v) for v in args.seq.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"bad --seq {args.seq!r}: use positive integers separated by commas") from None
    if not seqs or min(seqs) <= 0:
        raise ValueError(f"bad --seq {args.seq!r}: use positive integers separated by commas")
    policies = [p for p in args.policy.split(",") if p]
    _check_output(args.plot, "--plot")
    _default_parties(args)
    compute = _compute_model(args)
    points = []
    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(f"{args.model}", total=len(seqs) * len(policies))
        for seq in seqs:
            for pol in policies:
                s_ = measure(args.model, seq, pol, parties=args.parties, backend=args.backend, profiles=args.net,
                             compute=compute, approx=_approx(args), scheme=args.scheme)
                points.append({"seq_len": seq, "policy": pol, "rounds": s_.rounds, "sent_bytes": s_.sent_bytes,
                               "offline_bytes": s_.offline_bytes, "latency_s": s_.latency_s})
                bar.advance(task)
    result = {"model": args.model, "parties": args.parties, "scheme": args.scheme, "points": points}
    profiles = list(points[0]["latency_s"])
    csv_rows = ["seq_len,policy,rounds,max_sent_bytes,offline_bytes," + ",".join(f"latency_s_{p}" for p in profiles)]
    for pt in points:
        csv_rows.append(",".join(str(v) for v in [pt["seq_len"], pt["policy"], pt["rounds"], max(pt["sent_bytes"]),
                                                   pt["offline_bytes"], *pt["latency_s"].values()]))
    if args.plot:
        _write_output(args.plot, lambda path: _plot_decode(result, policies, profiles, path), "--plot")
    if _emit_structured(args, json.dumps(result, indent=2), "\n".join(csv_rows) + "\n"):
        return 0
    from rich.table import Table

    table = Table(title=f"Per decode step, {args.model}, {args.parties} parties ({args.scheme})")
    for col in ["tokens", "policy", "rounds", "MB / party"] + [f"latency {p}" for p in profiles]:
        table.add_column(col, justify="right")
    for pt in points:
        table.add_row(str(pt["seq_len"]), pt["policy"], str(pt["rounds"]), f"{max(pt['sent_bytes']) / 1e6:,.2f}",
                      *[_fmt_s(pt["latency_s"][p]) for p in profiles])
    _console().print(table)
    if args.plot:
        _console().print(f"plot written to {args.plot}")
    return 0

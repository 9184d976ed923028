"""``mpsim decode`` and ``mpsim sweep``: per-step costs of KV-cache policies in private decoding.

Both take the model (``--model`` or a Hugging Face ``--model-config``), policies with hyperparameters
(``mpcache:keep_ratio=0.2,cluster_sizes=16/8``), ``--ring``, ``--seed`` and ``--seeds N`` (N seeds from
``--seed``: every number becomes the mean over seeds, and the step totals carry a 95% Student-t interval,
for randomized protocols such as the shuffle top-k), ``--by layer|protocol|scope`` (the step's flat
breakdown instead of the paper's scopes) and ``--save FILE.json``. ``decode --trace FILE.json`` writes the
step as a Chrome/Perfetto trace.

The JSON of both commands carries ``schema`` (``mpsim.decode`` / ``mpsim.sweep``) and ``schema_version`` 1,
so ``mpsim compare`` reads it beside saved op reports.
"""
from __future__ import annotations

import json
import sys

from .common import _check_output, _check_plot, _compute_model, _approx, _console, _default_parties, \
    _fmt_s, _generators, _positive_ints, _print_table, _save_and_emit, _stderr_console, \
    _write_output
from .plots import _plot_decode

DECODE_SCHEMA = "mpsim.decode"
SWEEP_SCHEMA = "mpsim.sweep"
SCHEMA_VERSION = 1
_MB_NOTE = "MB: online megabytes sent by the busiest party (the maximum over parties)"
_OFFLINE_NOTE = ("offline: the step's preprocessing under the generator (dealer: what the dealer sends its busiest "
                 "receiver; otherwise what the busiest party sends), its flights and its seconds on each network "
                 "with compute (costmodel.generators)")


def _model(args):
    from mpcache.models import get_model, load_model_config

    if getattr(args, "model_config", None):
        return load_model_config(args.model_config)
    return get_model(args.model)


def _policies(text: str) -> list:
    from mpcache.policies import policy_from_spec, split_specs

    policies = []
    for spec in split_specs(text):
        policy = policy_from_spec(spec)
        if policy not in policies:  # a policy named twice (or spelled two ways) is measured once
            policies.append(policy)
    if not policies:
        raise ValueError(f"bad policy list {text!r}: name at least one policy")
    return policies


def _label(policy) -> str:
    """The policy's name, with the hyperparameters that differ from its defaults, as --policy spells them."""
    from dataclasses import fields

    def spelled(value):
        return "/".join(str(v) for v in value) if isinstance(value, tuple) else str(value)

    changed = [f"{f.name}={spelled(getattr(policy, f.name))}" for f in fields(policy)
               if f.init and getattr(policy, f.name) != f.default]
    return policy.name + (f":{','.join(changed)}" if changed else "")


def _progress(total: int, what: str):
    """A progress bar on stderr, shown only on a terminal (pipes and CI logs stay clean)."""
    from rich.progress import Progress

    bar = Progress(transient=True, console=_stderr_console(), disable=not sys.stderr.isatty())
    bar.start()
    task = bar.add_task(what, total=total)
    return bar, (lambda: bar.advance(task))


def _zero_like(value):
    if isinstance(value, dict):
        return {k: _zero_like(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zero_like(v) for v in value]
    return 0 if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _mean(values: list):
    """The elementwise mean of JSON values of one shape (numbers, lists, dicts: a key one seed lacks counts
    as zero there, e.g. a correlation only some permutations need); other values must agree."""
    first = values[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for v in values for k in v))
        filler = {k: next(v[k] for v in values if k in v) for k in keys}
        return {k: _mean([v[k] if k in v else _zero_like(filler[k]) for v in values]) for k in keys}
    if isinstance(first, list):
        if any(len(v) != len(first) for v in values):
            raise ValueError("seeds disagree on the number of parties")
        return [_mean([v[i] for v in values]) for i in range(len(first))]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return first if all(v == first for v in values) else sum(values) / len(values)
    if any(v != first for v in values):
        raise ValueError(f"seeds disagree on {first!r}")
    return first


def _keyed(d: dict) -> dict:
    """A step's JSON with its lists of rows keyed (breakdown rows by group, the inventory by kind and
    unit), so that seeds are averaged row by row."""
    d = dict(d, inventory={json.dumps([c["kind"], c["dims"]]): c["units"] for c in d["inventory"]})
    if "breakdown" in d:
        d["breakdown"] = dict(d["breakdown"], rows={r["group"]: r for r in d["breakdown"]["rows"]})
    return d


def _unkeyed(d: dict) -> dict:
    d = dict(d, inventory=[{"kind": k, "dims": dims, "units": u}
                           for (k, dims), u in ((json.loads(key), u) for key, u in d["inventory"].items())])
    if "breakdown" in d:
        d["breakdown"] = dict(d["breakdown"], rows=list(d["breakdown"]["rows"].values()))
    return d


def _seed_stats(runs: list) -> dict:
    """Mean and 95% interval over seeds of the step totals (``costmodel.stats.interval``)."""
    from costmodel.stats import interval

    stats = {"seeds": [r.config["seed"] for r in runs],
             "rounds": interval([r.rounds for r in runs]),
             "max_sent_bytes": interval([max(r.sent_bytes) for r in runs]),
             "offline_bytes": interval([r.offline_bytes for r in runs])}
    stats["latency_s"] = {p: interval([r.latency_s[p] for r in runs]) for p in runs[0].latency_s}
    return stats


def _policy_result(runs: list) -> dict:
    """One policy's JSON: the seeds' mean of every number, plus ``seed_stats`` when there are several."""
    d = _unkeyed(_mean([_keyed(r.as_dict() | {"config": None}) for r in runs]))
    d["config"] = runs[0].config
    if len(runs) > 1:
        d["seed_stats"] = _seed_stats(runs)
    return d


def _measure_policies(args, model, seq: int, policies, tick, compute=None, traces=None) -> list[dict]:
    """Every policy over --seeds seeds at one length; ``compute`` is calibrated once by the caller."""
    from mpcache.workload import measure

    results = []
    for policy in policies:
        runs = []
        for seed in range(args.seed, args.seed + args.seeds):
            hook = _trace_hook(args, _label(policy), traces) if traces is not None and seed == args.seed else None
            runs.append(measure(model, seq, policy, parties=args.parties, backend=args.backend,
                                reuse=not getattr(args, "no_reuse", False),
                                attention_only=getattr(args, "attention_only", False),
                                steps=getattr(args, "steps", 1), profiles=args.net, compute=compute,
                                approx=_approx(args), scheme=args.scheme, ring_bits=args.ring, seed=seed,
                                by=args.by, after_step=hook, generators=args.generators))
            tick()
        result = _policy_result(runs)
        result["label"] = _label(policy)
        results.append(result)
    return results


def _trace_hook(args, label: str, traces: list):
    """After the step: its trace on the --trace-net profile (default: the first of --net), kept in ``traces``."""
    def hook(session, mark):
        from costmodel.trace import chrome_trace

        traces.append((label, chrome_trace(session, args.trace_net or args.net.split(",")[0], since=mark)))

    return hook


def _merged_trace(traces: list) -> dict:
    """One trace file with a process per policy (the trace's own process renumbered)."""
    events, other = [], {}
    for pid, (label, trace) in enumerate(traces):
        for event in trace["traceEvents"]:
            event = dict(event, pid=pid)
            if event.get("ph") == "M" and event.get("name") == "process_name":
                event["args"] = {"name": f"{label}: {event['args'].get('name', '')}".rstrip(": ")}
            events.append(event)
        other[label] = trace.get("otherData", {})
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": other}


def _header(args, model) -> dict:
    from dataclasses import asdict

    return {"model": model.name, "model_config": asdict(model), "parties": args.parties, "scheme": args.scheme,
            "backend": args.backend, "ring_bits": args.ring, "seed": args.seed, "seeds": args.seeds,
            "by": args.by, "offline_generators": args.generators}


def _cell(value: float, stats: dict | None, fmt) -> str:
    if stats is None or stats["n"] == 1 or fmt(stats["hi"]) == fmt(stats["lo"]):
        return fmt(value)
    return f"{fmt(stats['mean'])} [{fmt(stats['lo'])}, {fmt(stats['hi'])}]"


def _rows(result: dict):
    """(name, MB of the busiest party, rounds, latency per profile) of the policy's rows."""
    if "breakdown" in result:
        return {r["group"]: r for r in result["breakdown"]["rows"]}
    return result["scopes"]


def _decode(args) -> int:
    """Per-step breakdown of one or more KV policies on a model, with ratios against the first."""
    from mpcache.workload import BREAKDOWN

    model = _model(args)
    policies = _policies(args.policy + ("," + args.compare if args.compare else ""))
    _default_parties(args)
    args.generators = _generators(args)
    _check_output(args.save, "--save")
    _check_output(args.trace, "--trace")
    traces = [] if args.trace else None
    compute = _compute_model(args)
    bar, tick = _progress(len(policies) * args.seeds, f"{model.name}, {args.seq} tokens")
    try:
        results = _measure_policies(args, model, args.seq, policies, tick, compute, traces)
    finally:
        bar.stop()
    payload = {"schema": DECODE_SCHEMA, "schema_version": SCHEMA_VERSION, **_header(args, model),
               "seq_len": args.seq, "policies": results}
    if args.trace:
        _write_output(args.trace, lambda path: open(path, "w").write(json.dumps(_merged_trace(traces))), "--trace")
    profiles = list(results[0]["latency_s"])
    if _save_and_emit(args, payload, _decode_csv(results, profiles, args.by)):
        return 0
    _decode_table(args, model, results, profiles, BREAKDOWN)
    return 0


def _decode_csv(results, profiles, by) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["policy", "row", "rounds", "max_sent_bytes", "offline_bytes"] + [f"latency_s_{p}" for p in profiles])
    for r in results:
        for name, row in _rows(r).items():
            writer.writerow([r["label"], name, row["rounds"], max(row["sent_bytes"]), row["offline_bytes"],
                             *row["latency_s"].values()])
        writer.writerow([r["label"], "step total", r["rounds"], max(r["sent_bytes"]), r["offline_bytes"],
                         *r["latency_s"].values()])
        for gen, price in r.get("offline", {}).items():
            writer.writerow([r["label"], f"offline ({gen})", price["rounds"], price["max_bytes"], "",
                             *price["seconds"].values()])
    return out.getvalue()


def _decode_table(args, model, results, profiles, paper_rows) -> None:
    from rich.table import Table

    base = results[0]
    reuse = "on" if base["config"]["reuse"] else "off"
    seeds = f", mean of {args.seeds} seeds [95% interval]" if args.seeds > 1 else ""
    table = Table(title=f"One private decode step: {model.name}, {args.seq} tokens, {args.parties} parties "
                        f"({args.backend} backend, {args.scheme}, K={args.ring}, reuse {reuse}{seeds})",
                  caption=f"{_MB_NOTE}. A row's rounds and latency are those of its messages alone: rows "
                          "communicating at the same depth share rounds, so only bytes add up to the total. "
                          f"{_OFFLINE_NOTE}")
    table.add_column(args.by or "scope", no_wrap=True)
    for r in results:
        for col in ["MB", "rounds"] + profiles:
            table.add_column(f"{r['label']}\n{col}", justify="right")
    rows = [_rows(r) for r in results]
    names = list(paper_rows) if args.by is None else list(dict.fromkeys(n for rs in rows for n in rs))
    for name in names:
        if not any(name in rs for rs in rows):
            continue
        cells = []
        for rs in rows:
            row = rs.get(name)
            cells += (["-"] * (2 + len(profiles)) if row is None else
                      [f"{max(row['sent_bytes']) / 1e6:,.2f}", f"{row['rounds']:,.0f}",
                       *[_fmt_s(row["latency_s"][p]) for p in profiles]])
        table.add_row(name, *cells)
    totals = []
    for r in results:
        st = r.get("seed_stats", {})
        totals += [_cell(max(r["sent_bytes"]) / 1e6, _scaled(st.get("max_sent_bytes"), 1e-6), lambda v: f"{v:,.2f}"),
                   _cell(r["rounds"], st.get("rounds"), lambda v: f"{v:,.0f}"),
                   *[_cell(r["latency_s"][p], st.get("latency_s", {}).get(p), _fmt_s) for p in profiles]]
    table.add_row("step total (online)", *totals, style="bold")
    for gen in args.generators:
        offline, whole = [], []
        for r in results:
            price = r["offline"][gen]
            offline += [f"{price['max_bytes'] / 1e6:,.2f}", f"{price['rounds']:,.0f}",
                        *[_fmt_s(price["seconds"][p]) for p in profiles]]
            whole += [f"{(max(r['sent_bytes']) + price['max_bytes']) / 1e6:,.2f}",
                      f"{r['rounds'] + price['rounds']:,.0f}",
                      *[_fmt_s(r["latency_s"][p] + price["seconds"][p]) for p in profiles]]
        table.add_row(f"offline ({gen})", *offline)
        table.add_row(f"online + offline ({gen})", *whole, style="bold")
    setup = []
    for r in results:
        setup += [f"{max(r['setup']['sent_bytes']) / 1e6:,.1f}", f"{r['setup']['rounds']:,.0f}"] + [""] * len(profiles)
    table.add_row("one-off setup", *setup, style="dim")
    console = _console(args)
    console.print(table)
    for r in results[1:]:
        ratios = ", ".join(f"{p} {base['latency_s'][p] / r['latency_s'][p]:.2f}x" for p in profiles)
        console.print(f"{base['label']} / {r['label']}: communication "
                      f"{max(base['sent_bytes']) / max(r['sent_bytes']):.2f}x, latency {ratios} "
                      f"(above 1: {base['label']} costs more)")
        for gen in args.generators:
            b, o = base["offline"][gen], r["offline"][gen]
            ratios = ", ".join(f"{p} {(base['latency_s'][p] + b['seconds'][p]) / (r['latency_s'][p] + o['seconds'][p]):.2f}x"
                               for p in profiles)
            console.print(f"  with offline ({gen}): communication "
                          f"{(max(base['sent_bytes']) + b['max_bytes']) / (max(r['sent_bytes']) + o['max_bytes']):.2f}x, "
                          f"latency {ratios}")
    if getattr(args, "inventory", False):
        console.print(_inventory_table(results, args))
    if args.trace:
        console.print(f"trace written to {args.trace} (open it in https://ui.perfetto.dev or chrome://tracing)")
    if args.save:
        console.print(f"saved to {args.save}")


def _scaled(stats, factor):
    if stats is None:
        return None
    return {**stats, "mean": stats["mean"] * factor, "lo": stats["lo"] * factor, "hi": stats["hi"] * factor}


def _short_count(n: float) -> str:
    """1,234 / 12.3k / 5.43M / 2.1G: counts that fit a narrow column."""
    for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e4)):
        if n >= size:
            return f"{n / (size if suffix != 'k' else 1e3):.3g}{suffix}"
    return f"{n:,.0f}"


def _inventory_table(results, args):
    """The step's correlations per policy: kind, one unit's parameters, units, and the dealer's bytes."""
    from rich.table import Table

    from costmodel.preprocessing import dealer_bits

    counts = [{(c["kind"], tuple(c["dims"])): c["units"] for c in r["inventory"]} for r in results]
    kinds = sorted({kd for c in counts for kd in c}, key=lambda kd: (kd[0], repr(kd[1])))
    table = Table(title=f"Correlations consumed by the step ({args.scheme}; dealer MB: to all parties)")
    table.add_column("correlation", no_wrap=True)
    table.add_column("one unit", no_wrap=True)
    for r in results:
        table.add_column(f"{r['label']}\nunits", justify="right")
        table.add_column(f"{r['label']}\ndealer MB", justify="right")
    for kind, dims in kinds:
        cells = []
        for count in counts:
            units = count.get((kind, dims), 0)
            mb = sum(dealer_bits({(kind, dims): units}, args.ring, args.parties)) / 8e6
            cells += [_short_count(units) if units else "-", f"{mb:,.2f}" if units else "-"]
        table.add_row(kind, " x ".join(str(v) for v in dims) or "-", *cells)
    return table


def _sweep_decode(args) -> int:
    """Latency and communication of KV policies against sequence length (table, JSON/CSV, optional plot)."""
    seqs = _positive_ints(args.seq, "--seq")
    model = _model(args)
    policies = _policies(args.policy)
    _check_plot(args.plot)
    _check_output(args.save, "--save")
    _default_parties(args)
    args.generators = _generators(args)
    points = []
    compute = _compute_model(args)
    bar, tick = _progress(len(seqs) * len(policies) * args.seeds, model.name)
    try:
        for seq in seqs:
            for r in _measure_policies(args, model, seq, policies, tick, compute):
                point = {"seq_len": seq, "policy": r["label"], "rounds": r["rounds"], "sent_bytes": r["sent_bytes"],
                         "offline_bytes": r["offline_bytes"], "latency_s": r["latency_s"]}
                for key in ("seed_stats", "breakdown", "offline"):
                    if key in r:
                        point[key] = r[key]
                points.append(point)
    finally:
        bar.stop()
    result = {"schema": SWEEP_SCHEMA, "schema_version": SCHEMA_VERSION, **_header(args, model), "points": points}
    profiles = list(points[0]["latency_s"])
    if _save_and_emit(args, result, _sweep_csv(points, profiles, args),
                      lambda path: _plot_decode(result, profiles, path)):
        return 0
    _sweep_table(args, model, points, profiles)
    return 0


def _sweep_csv(points, profiles, args) -> str:
    head = ["seq_len", "policy"] + (["row"] if args.by else []) + ["rounds", "max_sent_bytes", "offline_bytes"]
    head += [f"latency_s_{p}" for p in profiles]
    if args.seeds > 1:
        head += ["rounds_lo", "rounds_hi"] + [f"latency_s_{p}_{end}" for p in profiles for end in ("lo", "hi")]
    head += [c for g in args.generators for c in [f"offline_bytes_{g}"] + [f"offline_s_{g}_{p}" for p in profiles]]
    lines = [",".join(head)]
    for pt in points:
        rows = [(r["group"], r) for r in pt["breakdown"]["rows"]] if args.by else []
        for name, row in rows + [("step total", pt)]:
            cells = [pt["seq_len"], pt["policy"]] + ([name] if args.by else [])
            cells += [row["rounds"], max(row["sent_bytes"]), row["offline_bytes"], *row["latency_s"].values()]
            if args.seeds > 1:
                st = pt["seed_stats"] if row is pt else None
                cells += ([st["rounds"]["lo"], st["rounds"]["hi"]]
                          + [st["latency_s"][p][end] for p in profiles for end in ("lo", "hi")]) if st else \
                    [""] * (2 + 2 * len(profiles))
            for g in args.generators:
                price = pt["offline"][g] if row is pt else None
                cells += [price["max_bytes"]] + [price["seconds"][p] for p in profiles] if price else \
                    [""] * (1 + len(profiles))
            lines.append(",".join(f'"{c}"' if isinstance(c, str) and "," in c else str(c) for c in cells))
    return "\n".join(lines) + "\n"


def _sweep_table(args, model, points, profiles) -> None:
    from rich.table import Table

    seeds = f", mean of {args.seeds} seeds [95% interval]" if args.seeds > 1 else ""
    table = Table(title=f"Per decode step, {model.name}, {args.parties} parties ({args.backend} backend, "
                        f"{args.scheme}, K={args.ring}{seeds})", caption=_MB_NOTE)
    cols = ["tokens", "policy"] + ([args.by] if args.by else []) + ["rounds", "MB"] + [f"latency {p}" for p in profiles]
    cols += [c for g in args.generators for c in [f"offline MB ({g})"] + [f"with offline ({g}) {p}" for p in profiles]]
    for col in cols:
        table.add_column(col, justify="left" if col in ("policy", args.by) else "right")
    for pt in points:
        st = pt.get("seed_stats", {})
        blank = [""] * (len(args.generators) * (1 + len(profiles)))
        for row in pt["breakdown"]["rows"] if args.by else []:
            table.add_row(str(pt["seq_len"]), pt["policy"], row["group"], f"{row['rounds']:,.0f}",
                          f"{max(row['sent_bytes']) / 1e6:,.2f}", *[_fmt_s(row["latency_s"][p]) for p in profiles],
                          *blank, style="dim")
        offline = [c for g in args.generators for c in
                   [f"{pt['offline'][g]['max_bytes'] / 1e6:,.2f}"]
                   + [_fmt_s(pt["latency_s"][p] + pt["offline"][g]["seconds"][p]) for p in profiles]]
        table.add_row(str(pt["seq_len"]), pt["policy"], *(["step total"] if args.by else []),
                      _cell(pt["rounds"], st.get("rounds"), lambda v: f"{v:,.0f}"),
                      _cell(max(pt["sent_bytes"]) / 1e6, _scaled(st.get("max_sent_bytes"), 1e-6), lambda v: f"{v:,.2f}"),
                      *[_cell(pt["latency_s"][p], st.get("latency_s", {}).get(p), _fmt_s) for p in profiles],
                      *offline)
    _print_table(args, table)

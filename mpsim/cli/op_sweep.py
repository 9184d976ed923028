"""``mpsim op NAME --sweep N=...``: one operation over a range of sizes, optionally over several seeds.

Every point runs ``--seeds`` sessions (seeds ``--seed`` .. ``--seed + N - 1``): its numbers are the means,
and with more than one seed the JSON and CSV carry the 95% Student-t interval of rounds and latency
(``costmodel.stats``), the table prints it, and the plot draws it as error bars. A randomized protocol (the
shuffle top-k) then gives a curve of its expected cost instead of one permutation's.
"""
from __future__ import annotations


from .common import _compute_model, _fmt_s, _positive_ints, _print_table, _save_and_emit, \
    _session_for
from .decode import _cell, _progress
from .plots import _plot

SCHEMA = "mpsim.op_sweep"


def _parse_sweep(text: str) -> tuple[str, list[int]]:
    if "=" not in text:
        raise ValueError(f"bad --sweep {text!r}: use NAME=V1,V2,... e.g. N=128,256,512")
    name, values = text.split("=", 1)
    name = name.strip().upper()
    if not name.isalpha():
        raise ValueError(f"bad --sweep variable {name!r}: use a letter such as N")
    return name, _positive_ints(values, "--sweep values")


def _run(args, shape, profiles, compute, seed: int) -> tuple[dict, object]:
    from costmodel.latency import estimate

    from .ops import run_op

    args_seed, args.seed = args.seed, seed
    try:
        session = _session_for(args)
    finally:
        args.seed = args_seed
    run_op(session, args.name, shape, axis=args.axis, k=args.k, n=args.n, method=args.method, seed=seed)
    c = session.cost()
    return ({"rounds": c.rounds, "sequential_rounds": c.sequential_rounds, "sent_bytes": list(c.sent),
             "offline_bytes": c.offline_bytes,
             "latency_s": {p.name: estimate(session, p, compute=compute).total_s for p in profiles}}, session)


def seed_summary(runs: list[dict]) -> dict:
    """Means of the runs' numbers, and their 95% intervals (``seed_stats``) when there are several."""
    from costmodel.stats import interval

    from .decode import _mean

    point = _mean(runs)
    if len(runs) > 1:
        point["seed_stats"] = {"rounds": interval([r["rounds"] for r in runs]),
                               "max_sent_bytes": interval([max(r["sent_bytes"]) for r in runs]),
                               "latency_s": {p: interval([r["latency_s"][p] for r in runs]) for p in runs[0]["latency_s"]}}
    return point


def _sweep(args, profiles) -> int:
    from costmodel.breakdown import breakdown

    from .ops import parse_shape

    var, values = _parse_sweep(args.sweep)
    compute = _compute_model(args)
    if var not in args.shape.upper():
        raise ValueError(f"--sweep variable {var} does not appear in --shape {args.shape}")
    points = []
    bar, tick = _progress(len(values) * args.seeds, f"{args.name} over {var}")
    try:
        for value in values:
            shape = parse_shape(args.shape, {var: value})
            runs = []
            for seed in range(args.seed, args.seed + args.seeds):
                run, session = _run(args, shape, profiles, compute, seed)
                if args.by:
                    run["breakdown"] = {g["group"]: g for g in breakdown(session, args.by, profiles)}
                runs.append(run)
                tick()
            point = {var: value, "shape": list(shape), **seed_summary(runs)}
            if args.by:
                point["breakdown"] = {"by": args.by, "rows": list(point["breakdown"].values())}
            points.append(point)
    finally:
        bar.stop()
    result = {"schema": SCHEMA, "schema_version": 1, "op": args.name, "shape": args.shape, "variable": var, "parties": args.parties,
              "backend": args.backend, "scheme": args.scheme, "ring_bits": args.ring, "seed": args.seed,
              "seeds": args.seeds, "points": points}
    if _save_and_emit(args, result, _csv(result, profiles, args), lambda path: _plot(result, profiles, path)):
        return 0
    _table(result, profiles, args)
    return 0


def _csv(result, profiles, args) -> str:
    var = result["variable"]
    head = [var] + (["row"] if args.by else []) + ["rounds", "sequential_rounds", "max_sent_bytes", "offline_bytes"]
    head += [f"latency_s_{p.name}" for p in profiles]
    if args.seeds > 1:
        head += ["rounds_lo", "rounds_hi"] + [f"latency_s_{p.name}_{e}" for p in profiles for e in ("lo", "hi")]
    lines = [",".join(head)]
    for pt in result["points"]:
        rows = [(g["group"], g) for g in pt["breakdown"]["rows"]] if args.by else []
        for name, row in rows + [("total", pt)]:
            cells = [pt[var]] + ([name] if args.by else [])
            cells += [row["rounds"], row.get("sequential_rounds", ""), max(row["sent_bytes"]), row["offline_bytes"]]
            cells += [row["latency_s"][p.name] for p in profiles]
            if args.seeds > 1:
                st = pt.get("seed_stats") if row is pt else None
                cells += ([st["rounds"]["lo"], st["rounds"]["hi"]]
                          + [st["latency_s"][p.name][e] for p in profiles for e in ("lo", "hi")]) if st else \
                    [""] * (2 + 2 * len(profiles))
            lines.append(",".join(str(c) for c in cells))
    return "\n".join(lines) + "\n"


def _table(result, profiles, args) -> None:
    from rich.table import Table

    var = result["variable"]
    seeds = f", mean of {args.seeds} seeds [95% interval]" if args.seeds > 1 else ""
    table = Table(title=f"{args.name}, shape {args.shape}, {args.parties} parties, {args.backend} backend, "
                        f"{args.scheme}, K={args.ring}{seeds}",
                  caption="bytes: online bytes of the busiest party (the maximum over parties)")
    cols = [var] + ([args.by] if args.by else []) + ["rounds", "bytes", "offline bytes"]
    for col in cols + [f"time {p.name}" for p in profiles]:
        table.add_column(col, justify="left" if col == args.by else "right")
    for pt in result["points"]:
        for g in pt["breakdown"]["rows"] if args.by else []:
            table.add_row(str(pt[var]), g["group"], f"{g['rounds']:,.0f}", f"{max(g['sent_bytes']):,.0f}",
                          f"{g['offline_bytes']:,.0f}", *[_fmt_s(g["latency_s"][p.name]) for p in profiles],
                          style="dim")
        st = pt.get("seed_stats", {})
        table.add_row(str(pt[var]), *(["total"] if args.by else []),
                      _cell(pt["rounds"], st.get("rounds"), lambda v: f"{v:,.1f}" if args.seeds > 1 else f"{v:,.0f}"),
                      f"{max(pt['sent_bytes']):,.0f}", f"{pt['offline_bytes']:,.0f}",
                      *[_cell(pt["latency_s"][p.name], st.get("latency_s", {}).get(p.name), _fmt_s) for p in profiles])
    _print_table(args, table)

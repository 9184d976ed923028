"""``mpsim generate``: the cost of one generated answer per policy (prefill, setup, N decode steps), online
and offline, and after how many generated tokens each policy's setup has paid for itself against full
attention (``mpcache.answer``)."""
from __future__ import annotations

from .common import _check_output, _console, _default_parties, _fmt_s, _generators, _save_and_emit
from .decode import _label, _model, _policies, _progress

SCHEMA = "mpsim.answer"


def _break_evens(answers, profiles, generators) -> dict:
    """label -> metric -> tokens (None: never) against full attention (or the first policy without it)."""
    from mpcache.answer import break_even

    base_label, base = next(((lab, a) for lab, a in answers if a.policy == "full"), answers[0])
    metrics = {"online_bytes": lambda s: max(s.sent_bytes)}
    for p in profiles:
        metrics[f"online_s_{p}"] = lambda s, p=p: s.latency_s[p]
        for g in generators:
            metrics[f"with_offline_s_{g}_{p}"] = lambda s, p=p, g=g: s.latency_s[p] + s.offline[g]["seconds"][p]
    out = {}
    for label, a in answers:
        if label != base_label:
            out[label] = {"against": base_label, **{m: break_even(a, base, f) for m, f in metrics.items()}}
    return out


def _generate(args) -> int:
    from mpcache.answer import answer

    model = _model(args)
    policies = _policies(args.policy + ("," + args.compare if args.compare else ""))
    _default_parties(args)
    generators = _generators(args)
    _check_output(args.save, "--save")
    bar, tick = _progress(len(policies) * args.new, f"{model.name}: prompt {args.prompt}, {args.new} new tokens")
    try:
        answers = [(_label(p), answer(model, args.prompt, args.new, p, parties=args.parties, backend=args.backend,
                                      scheme=args.scheme, ring_bits=args.ring, seed=args.seed, profiles=args.net,
                                      generators=generators, prefill=args.prefill, tick=tick)) for p in policies]
    finally:
        bar.stop()
    profiles = list(answers[0][1].prefill.latency_s)
    evens = _break_evens(answers, profiles, generators)
    payload = {"schema": SCHEMA, "schema_version": 1, "model": model.name, "prompt": args.prompt, "new": args.new,
               "prefill": args.prefill, "parties": args.parties, "scheme": args.scheme, "backend": args.backend,
               "ring_bits": args.ring, "offline_generators": generators,
               "answers": [{"label": label, **a.as_dict()} for label, a in answers], "break_even": evens}
    if _save_and_emit(args, payload, _csv(answers, profiles, generators)):
        return 0
    _table(args, model, answers, profiles, generators, evens)
    return 0


def _rows(a, generators):
    """(row name, segment) of an answer, in order; the reused scope is shown, not counted."""
    from mpcache.answer import Segment

    rows = [("prefill", a.prefill), ("setup (charged)", a.setup)]
    if a.reused is not None:
        rows.append((f"  reused from the prefill ({a.reused_scope})", a.reused))
    rows.append((f"{len(a.steps)} decode steps", Segment.sum(a.steps)))
    return rows


def _csv(answers, profiles, generators) -> str:
    head = ["policy", "row", "rounds", "max_sent_bytes"] + [f"latency_s_{p}" for p in profiles]
    head += [c for g in generators for c in [f"offline_bytes_{g}"] + [f"offline_s_{g}_{p}" for p in profiles]]
    lines = [",".join(head)]
    for label, a in answers:
        for name, seg in _rows(a, generators) + [("answer total", a.total())]:
            cells = [label, name.strip(), seg.rounds, max(seg.sent_bytes)] + [seg.latency_s[p] for p in profiles]
            cells += [c for g in generators for c in [seg.offline[g]["max_bytes"]]
                      + [seg.offline[g]["seconds"][p] for p in profiles]]
            lines.append(",".join(f'"{c}"' if isinstance(c, str) and "," in c else str(c) for c in cells))
    return "\n".join(lines) + "\n"


def _tokens(n) -> str:
    if n is None:
        return "never"
    return f"{n:,.0f}" if float(n).is_integer() else f"~{n:,.0f} (extrapolated)"


def _table(args, model, answers, profiles, generators, evens) -> None:
    from rich.table import Table

    mode = ("private prefill (secret weights and prompt)" if args.prefill == "private" else
            "plaintext prefill by the data owner, cache then shared (the MPCache paper's evaluation)")
    table = Table(title=f"One answer: {model.name}, prompt {args.prompt} tokens, {args.new} new, {args.parties} parties "
                        f"({args.backend} backend, {args.scheme}, K={args.ring}); {mode}",
                  caption="MB: sent by the busiest party (the maximum over parties); offline under each generator "
                          "(costmodel.generators); a reused row is already in the prefill and not added again")
    table.add_column("part", no_wrap=True)
    for label, _ in answers:
        for col in ["MB", "rounds"] + profiles:
            table.add_column(f"{label}\n{col}", justify="right")
    rows = [dict(_rows(a, generators)) for _, a in answers]
    for name in dict.fromkeys(n for r in rows for n in r):  # every policy's rows, first seen first
        cells = []
        for r in rows:
            seg = r.get(name)
            cells += ["-"] * (2 + len(profiles)) if seg is None else \
                [f"{max(seg.sent_bytes) / 1e6:,.1f}", f"{seg.rounds:,}", *[_fmt_s(seg.latency_s[p]) for p in profiles]]
        table.add_row(name, *cells, style="dim" if name.startswith("  ") else None)
    totals = [a.total() for _, a in answers]
    table.add_row("answer (online)", *[c for t in totals for c in [f"{max(t.sent_bytes) / 1e6:,.1f}", f"{t.rounds:,}",
                                                                    *[_fmt_s(t.latency_s[p]) for p in profiles]]],
                  style="bold")
    for g in generators:
        table.add_row(f"offline ({g})", *[c for t in totals for c in
                                          [f"{t.offline[g]['max_bytes'] / 1e6:,.1f}", f"{t.offline[g]['rounds']:,}",
                                           *[_fmt_s(t.offline[g]["seconds"][p]) for p in profiles]]])
        table.add_row(f"answer + offline ({g})", *[c for t in totals for c in
                                                   [f"{(max(t.sent_bytes) + t.offline[g]['max_bytes']) / 1e6:,.1f}",
                                                    f"{t.rounds + t.offline[g]['rounds']:,}",
                                                    *[_fmt_s(t.latency_s[p] + t.offline[g]["seconds"][p])
                                                      for p in profiles]]], style="bold")
    console = _console(args)
    console.print(table)
    for label, even in evens.items():
        parts = [f"online bytes after {_tokens(even['online_bytes'])}"]
        parts += [f"{p} online after {_tokens(even[f'online_s_{p}'])}" for p in profiles]
        parts += [f"{p} with offline ({g}) after {_tokens(even[f'with_offline_s_{g}_{p}'])}" for g in generators
                  for p in profiles]
        console.print(f"{label} breaks even with {even['against']}: " + "; ".join(parts) + " generated tokens")
    if args.save:
        console.print(f"saved to {args.save}")

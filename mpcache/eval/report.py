"""Tables and the accuracy-cost plot of a quality study (``study.run``'s result dict)."""
from __future__ import annotations


def _fmt_bytes(n) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g} B"


def _fmt_s(s) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def rows(result: dict) -> list[list[str]]:
    """One row per (budget, policy): quality beside MPC cost per decode step."""
    out = []
    for r in result["results"]:
        c = r.get("cost")
        err = r.get("layer_error") or []
        out.append([
            f"{r['budget']:g}", r["policy"], f"{r['attended']:.3f}", f"{r['top1_agreement']:.3f}", f"{r['kl']:.4f}",
            f"{100 * r['perplexity_increase']:+.1f}%", f"{sum(err) / len(err):.3f}" if err else "-",
            _fmt_bytes(c["sent_bytes"]) if c else "-", str(c["rounds"]) if c else "-",
            _fmt_s(c["latency_s"].get("lan")) if c else "-", _fmt_s(c["latency_s"].get("wan")) if c else "-",
        ])
    return out


HEADER = ["budget", "policy", "attended", "top-1 agree", "KL", "ppl. increase", "attn. rel. error",
          "MPC bytes/party", "rounds", "LAN", "WAN"]


def render(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"Quality vs the full cache: {result['model']}, {result['windows']} windows of "
                        f"{result['context']} tokens, {result['steps']} teacher-forced steps each")
    for h in HEADER:
        table.add_column(h, justify="left" if h == "policy" else "right")
    last = None
    for row in rows(result):
        if last is not None and row[0] != last:
            table.add_section()
        last = row[0]
        table.add_row(*row)
    console.print(table)
    for section, title in (("needle", "Needle retrieval"), ("numerics", "MPC numerics")):
        if section in result:
            console.print(markdown_section(result, section, title))


def markdown_table(result: dict) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(result)]
    return "\n".join(lines) + "\n"


def markdown_section(result: dict, section: str, title: str = "") -> str:
    if section == "needle":
        cells: dict = {}
        for r in result["needle"]:
            key = (r["policy"], r["budget"])
            cells.setdefault(key, []).append(r["found"])
        contexts = sorted({r["context"] for r in result["needle"]})
        depths = sorted({r["depth"] for r in result["needle"]})
        lines = [f"{title}: found / cases over contexts {contexts} x depths {depths}", "",
                 "| policy | budget | found |", "|---|---|---|"]
        lines += [f"| {p} | {b:g} | {sum(v)}/{len(v)} |" for (p, b), v in cells.items()]
        return "\n".join(lines) + "\n"
    lines = [f"{title}", "", "| setting | top-1 agree | KL | ppl. increase |", "|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['top1_agreement']:.3f} | {r['kl']:.4f} | {100 * r['perplexity_increase']:+.2f}% |"
              for r in result["numerics"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
    """Top-1 agreement against MPC bytes per decode step, one curve per policy over the budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in result["policies"]:
        pts = [(r["cost"]["sent_bytes"] / 1e6, r["top1_agreement"], r["budget"]) for r in result["results"]
               if r["policy"] == name and r.get("cost")]
        if not pts:
            continue
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        for x, y, b in pts:
            ax.annotate(f"{b:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    for name in ("oracle", "random"):
        ys = [(r["budget"], r["top1_agreement"]) for r in result["results"] if r["policy"] == name]
        for b, y in ys:
            ax.axhline(y, linestyle=":" if name == "random" else "--", linewidth=0.8,
                       color="grey" if name == "random" else "black")
        if ys:
            ax.plot([], [], linestyle=":" if name == "random" else "--", color="grey" if name == "random" else "black",
                    label=f"{name} (per budget)")
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ax.set_xticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if lo <= t <= hi])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("MPC MB sent per party, one decode step (count backend, log scale)")
    ax.set_ylabel("top-1 agreement with the full cache")
    ax.set_title(f"{result['model']}: quality vs MPC cost (labels: budget)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

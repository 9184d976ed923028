"""Figures of the command line (needs the ``[plot]`` extra): an op's sweep and a decode sweep."""
from __future__ import annotations


def _plot(result, profiles, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'mpsim[plot]'") from None
    var = result["variable"]
    xs = [r[var] for r in result["points"]]
    fig, (ax_t, ax_b) = plt.subplots(1, 2, figsize=(10, 4))
    for p in profiles:
        ax_t.plot(xs, [r["latency_s"][p.name] for r in result["points"]], marker="o", label=p.name)
    ax_t.set_xlabel(var)
    ax_t.set_ylabel("estimated latency (s)")
    ax_t.set_title(f"{result['op']}: latency")
    ax_t.legend()
    ax_b.plot(xs, [max(r["sent_bytes"]) / 1e6 for r in result["points"]], marker="o", color="tab:red")
    ax_b.set_xlabel(var)
    ax_b.set_ylabel("online MB sent per party")
    ax_b.set_title(f"{result['op']}: communication")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_decode(result, policies, profiles, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'mpsim[plot]'") from None
    fig, axes = plt.subplots(1, len(profiles) + 1, figsize=(5 * (len(profiles) + 1), 4))
    for pol in policies:
        pts = [p for p in result["points"] if p["policy"] == pol]
        xs = [p["seq_len"] for p in pts]
        for ax, prof in zip(axes, profiles):
            ax.plot(xs, [p["latency_s"][prof] for p in pts], marker="o", label=pol)
            ax.set_title(f"latency per step ({prof})")
            ax.set_ylabel("s")
        axes[-1].plot(xs, [max(p["sent_bytes"]) / 1e6 for p in pts], marker="o", label=pol)
        axes[-1].set_title("communication per step")
        axes[-1].set_ylabel("MB sent per party")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length")
        ax.legend()
    fig.suptitle(result["model"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

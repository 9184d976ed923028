"""Figures of the command line (needs the ``[plot]`` extra): an op's sweep and a decode sweep.

Drawn for a paper: one axis per network and one for communication (so a LAN curve is never squashed against
a WAN one), a log-2 x axis when the lengths span a factor of 4 or more, units chosen for each axis' range,
y from zero, error bars for the 95% interval over seeds, one legend for the figure, and the configuration
(parties, backend, scheme, ring, seeds) under the title. The file type follows the name: PNG, PDF or SVG.
"""
from __future__ import annotations

_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6))
_BYTE_UNITS = (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0))


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'mpsim[plot]'") from None
    plt.rcParams["svg.fonttype"] = "none"  # SVG text stays text: editable and searchable in a paper's figure
    plt.rcParams["pdf.fonttype"] = 42  # TrueType in PDFs, as publishers ask
    return plt


def _unit(values, units):
    """The largest unit in which the largest value is at least 1."""
    top = max((abs(v) for v in values), default=0.0)
    return next(((name, size) for name, size in units if top >= size), units[-1])


def _x_axis(ax, xs, label):
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 4:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:,}" for x in xs])
        ax.minorticks_off()
    ax.set_xlabel(label)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)


def _series(ax, xs, ys, scale, stats=None, **style):
    """A curve in the axis' unit, with the interval's error bars when there are several seeds."""
    ys = [y / scale for y in ys]
    if stats and all(st is not None for st in stats):
        lower = [max(y - st["lo"] / scale, 0.0) for y, st in zip(ys, stats)]
        upper = [max(st["hi"] / scale - y, 0.0) for y, st in zip(ys, stats)]
        ax.errorbar(xs, ys, yerr=[lower, upper], marker="o", capsize=3, **style)
    else:
        ax.plot(xs, ys, marker="o", **style)


def _config_line(result) -> str:
    seeds = result.get("seeds", 1)
    parts = [f"{result.get('parties')} parties", f"{result.get('backend')} backend", result.get("scheme", "additive"),
             f"K={result.get('ring_bits', 64)}"]
    parts.append(f"mean of {seeds} seeds, 95% interval" if seeds > 1 else f"seed {result.get('seed', 0)}")
    return ", ".join(parts)


def _figure(plt, panels: int):
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
    return fig, list(axes[0])


def _finish(plt, fig, title: str, result, path: str, legend: bool) -> None:
    fig.suptitle(f"{title}\n{_config_line(result)}", fontsize=10)
    if legend:
        handles, labels = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _plot(result, profiles, path):
    """An op's sweep: latency on each network, and the busiest party's online bytes."""
    plt = _pyplot()
    var, points = result["variable"], result["points"]
    xs = [p[var] for p in points]
    fig, axes = _figure(plt, len(profiles) + 1)
    for ax, prof in zip(axes, profiles):
        ys = [p["latency_s"][prof.name] for p in points]
        unit, scale = _unit(ys, _TIME_UNITS)
        _series(ax, xs, ys, scale, [p.get("seed_stats", {}).get("latency_s", {}).get(prof.name) for p in points],
                color="tab:blue")
        ax.set_title(f"latency on {prof.name} ({prof.describe()})", fontsize=9)
        ax.set_ylabel(f"estimated latency ({unit})")
        _x_axis(ax, xs, var)
    ys = [max(p["sent_bytes"]) for p in points]
    unit, scale = _unit(ys, _BYTE_UNITS)
    _series(axes[-1], xs, ys, scale, [p.get("seed_stats", {}).get("max_sent_bytes") for p in points], color="tab:red")
    axes[-1].set_title("communication", fontsize=9)
    axes[-1].set_ylabel(f"online {unit} sent by the busiest party")
    _x_axis(axes[-1], xs, var)
    _finish(plt, fig, f"{result['op']}, shape {result['shape']}", result, path, legend=False)


def _plot_decode(result, profiles, path):
    """A decode sweep: per-step latency on each network and communication, one curve per policy."""
    plt = _pyplot()
    policies = list(dict.fromkeys(p["policy"] for p in result["points"]))
    fig, axes = _figure(plt, len(profiles) + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, prof in zip(axes, profiles):
        ys_all = [p["latency_s"][prof] for p in result["points"]]
        unit, scale = _unit(ys_all, _TIME_UNITS)
        for i, pol in enumerate(policies):
            pts = [p for p in result["points"] if p["policy"] == pol]
            _series(ax, [p["seq_len"] for p in pts], [p["latency_s"][prof] for p in pts], scale,
                    [p.get("seed_stats", {}).get("latency_s", {}).get(prof) for p in pts],
                    color=colors[i % len(colors)], label=pol)
        ax.set_title(f"latency per step on {prof}", fontsize=9)
        ax.set_ylabel(f"estimated latency ({unit})")
        _x_axis(ax, sorted({p["seq_len"] for p in result["points"]}), "tokens in the KV cache")
    unit, scale = _unit([max(p["sent_bytes"]) for p in result["points"]], _BYTE_UNITS)
    for i, pol in enumerate(policies):
        pts = [p for p in result["points"] if p["policy"] == pol]
        _series(axes[-1], [p["seq_len"] for p in pts], [max(p["sent_bytes"]) for p in pts], scale,
                [p.get("seed_stats", {}).get("max_sent_bytes") for p in pts], color=colors[i % len(colors)], label=pol)
    axes[-1].set_title("communication per step", fontsize=9)
    axes[-1].set_ylabel(f"online {unit} sent by the busiest party")
    _x_axis(axes[-1], sorted({p["seq_len"] for p in result["points"]}), "tokens in the KV cache")
    _finish(plt, fig, f"One private decode step of {result['model']}", result, path, legend=True)

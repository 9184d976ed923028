"""``mpsim compare A.json B.json ...``: saved results side by side, with ratios against the first.

It reads an op report (``mpsim op --save``: one run), an op sweep (one run per point), a decode JSON (one
run per policy), a decode sweep (one per point) and an answer (``mpsim generate``: one per policy, its
totals); ``--csv`` prints one comparison table, ``--json`` the runs with their ratios.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from .common import _console
from .decode import DECODE_SCHEMA, SWEEP_SCHEMA
from .generate import SCHEMA as ANSWER_SCHEMA
from .op_sweep import SCHEMA as OP_SWEEP_SCHEMA


def _runs_of(path: str) -> list[dict]:
    """The runs a saved file holds: a report (``mpsim op --save``) is one run; a decode JSON is one run per
    policy, a decode sweep's one per point (``mpsim decode/sweep --save`` or ``--json``)."""
    from costmodel.report import from_json

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a saved mpsim result (invalid JSON: {err})") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    try:
        if schema == DECODE_SCHEMA:
            return [_decode_run(f"{p['label']} ({data['model']}, {data['seq_len']} tokens)", p)
                    for p in data["policies"]]
        if schema == SWEEP_SCHEMA:
            return [_decode_run(f"{p['policy']} ({data['model']}, {p['seq_len']} tokens)", p) for p in data["points"]]
        if schema == ANSWER_SCHEMA:
            return [_decode_run(f"{a['label']} answer ({data['model']}, prompt {data['prompt']}, {data['new']} new)",
                                a["total"]) for a in data["answers"]]
        if schema == OP_SWEEP_SCHEMA:
            var = data["variable"]
            return [_decode_run(f"{data['op']} {data['shape']} {var}={p[var]}", p) for p in data["points"]]
        report = from_json(text)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a saved mpsim result (missing {err})") from None
    except ValueError as err:
        raise ValueError(f"{path} is not a saved mpsim result (mpsim op/decode/sweep ... --save FILE): {err}") from None
    t = report.totals
    return [{"name": report.name, "rounds": t["rounds"], "max_sent_bytes": max(t["sent_bytes"]),
             "offline_bytes": t["offline_bytes"], "seconds": {n: e["total_s"] for n, e in t["estimates"].items()}}]


def _decode_run(name: str, entry: dict) -> dict:
    return {"name": name, "rounds": entry["rounds"], "max_sent_bytes": max(entry["sent_bytes"]),
            "offline_bytes": entry["offline_bytes"], "seconds": dict(entry["latency_s"])}


def _compare(args) -> int:
    runs = [run for path in args.reports for run in _runs_of(path)]
    data = _comparison_dict(runs)
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    metrics = _comparison_metrics(data["runs"])
    if args.csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        base = data["runs"][0]["name"]
        writer.writerow(["metric"] + [c for r in data["runs"] for c in
                                      ([r["name"]] if r is data["runs"][0] else [r["name"], f"{r['name']} / {base}"])])
        for label, values, ratios in metrics:
            writer.writerow([label] + [c for i, v in enumerate(values) for c in
                                       ([v] if i == 0 else [v, ratios[i]])])
        sys.stdout.write(out.getvalue())
        return 0
    from rich.markup import escape
    from rich.table import Table

    from costmodel.profiles import format_time
    from costmodel.report import format_bytes

    base = data["runs"][0]["name"]
    table = Table(title=f"Comparison (ratios against {escape(base)})",
                  caption="bytes/party: the busiest party's online bytes (the maximum over parties)")
    table.add_column("metric")
    for i, r in enumerate(data["runs"]):
        table.add_column(escape(r["name"]), justify="right")
        if i:
            table.add_column(f"{escape(r['name'])} / {escape(base)}", justify="right")
    for label, values, ratios in metrics:
        fmt = format_time if label.startswith("time") else format_bytes if "bytes" in label else (lambda v: f"{v:,.4g}")
        cells = []
        for i, v in enumerate(values):
            cells.append("-" if v is None else fmt(v))
            if i:
                cells.append("-" if ratios[i] is None else f"{ratios[i]:.2f}x")
        table.add_row(label, *cells)
    _console(args).print(table)
    return 0


def _comparison_metrics(runs) -> list:
    """(label, value per run, ratio per run against the first) for every metric of the comparison."""
    profiles = list(dict.fromkeys(n for r in runs for n in r["seconds"]))
    rows = [("rounds", [r["rounds"] for r in runs], [r["ratio_vs_first"]["rounds"] for r in runs]),
            ("bytes/party (max)", [r["max_sent_bytes"] for r in runs],
             [r["ratio_vs_first"]["max_sent_bytes"] for r in runs]),
            ("offline bytes", [r["offline_bytes"] for r in runs], [r["ratio_vs_first"]["offline_bytes"] for r in runs])]
    for n in profiles:
        rows.append((f"time on {n}", [r["seconds"].get(n) for r in runs],
                     [r["ratio_vs_first"]["seconds"].get(n) for r in runs]))
    return rows


def _comparison_dict(runs: list[dict]) -> dict:
    """The runs' totals and their ratios against the first (what `compare` prints, as data)."""
    base = runs[0]

    def ratio(a, b):
        return None if a is None or not b else a / b

    for run in runs:
        run["ratio_vs_first"] = {
            "rounds": ratio(run["rounds"], base["rounds"]),
            "max_sent_bytes": ratio(run["max_sent_bytes"], base["max_sent_bytes"]),
            "offline_bytes": ratio(run["offline_bytes"], base["offline_bytes"]),
            "seconds": {k: ratio(v, base["seconds"].get(k)) for k, v in run["seconds"].items()},
        }
    return {"runs": runs}
